"""The encoder a run builds, keeps when pretraining ends, and hands downstream.

Pretraining builds it with :func:`new_encoder`; :func:`save_encoder` keeps it in the run
folder (``encoder.pt``) with the tokenizer it reads through; fine-tuning, ``dmx finetune``
and ``dmx export`` start from :func:`load_encoder`, so none of them reads the corpus again.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from tokenizers import Tokenizer

from dmx.common.errors import UserError
from dmx.common.files import atomic_write_bytes
from dmx.common.run_folder import ENCODER_FILE
from dmx.config import Config
from dmx.model import EncoderShape, MaskedLM


def new_encoder(config: Config, vocab_size: int) -> MaskedLM:
    """The run's encoder, initialised from torch's generator as it stands."""
    gate = config.attention.pattern == "learned_gate"
    return MaskedLM(EncoderShape.from_config(config.model, vocab_size, gate=gate))


def save_encoder(run_dir: Path, encoder: MaskedLM, tokenizer: Tokenizer) -> None:
    """Keep the pretrained encoder with the tokenizer it reads through: all a fine-tuning
    needs, so ``dmx finetune`` never reads the corpus again (which may have moved)."""
    state = {
        "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "tokenizer": tokenizer.to_str(),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(run_dir / ENCODER_FILE, buffer.getvalue())


def load_encoder(config: Config, run_dir: Path) -> tuple[MaskedLM, Tokenizer]:
    """The encoder :func:`save_encoder` kept, loaded safely (tensors and plain data only)."""
    path = run_dir / ENCODER_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        tokenizer = Tokenizer.from_str(state["tokenizer"])
        encoder = new_encoder(config, tokenizer.get_vocab_size())
        encoder.load_state_dict(state["encoder"])
    except FileNotFoundError:
        raise UserError(
            f"{run_dir} holds no pretrained encoder ({ENCODER_FILE}): only runs that "
            "finished pretraining keep one; train the run first (dmx train ...)"
        ) from None
    except Exception as err:  # noqa: BLE001 - any failure to load means: not usable
        raise UserError(
            f"{path} does not load ({type(err).__name__}: {err}); train the run again with "
            "resume=false"
        ) from None
    return encoder, tokenizer
