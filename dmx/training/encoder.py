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
from dmx.common.run_folder import ENCODER_BEST_FILE, ENCODER_FILE
from dmx.config import Config
from dmx.model import EncoderShape, MaskedLM


def new_encoder(config: Config, vocab_size: int) -> MaskedLM:
    """The run's encoder, initialised from torch's generator as it stands."""
    gate = config.attention.pattern == "learned_gate"
    return MaskedLM(EncoderShape.from_config(config.model, vocab_size, gate=gate))


def encoder_file(which: str) -> str:
    """The file of the final encoder (``last``) or of the one at the best validation loss."""
    return ENCODER_BEST_FILE if which == "best" else ENCODER_FILE


def save_encoder(
    run_dir: Path, encoder: MaskedLM, tokenizer: Tokenizer, which: str = "last"
) -> None:
    """Keep the pretrained encoder with the tokenizer it reads through: all a fine-tuning
    needs, so ``dmx finetune`` never reads the corpus again (which may have moved)."""
    state = {
        "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "tokenizer": tokenizer.to_str(),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(run_dir / encoder_file(which), buffer.getvalue())


def load_encoder(config: Config, run_dir: Path, which: str = "last") -> tuple[MaskedLM, Tokenizer]:
    """The encoder :func:`save_encoder` kept (``which``: the final one, or the best),
    loaded safely (tensors and plain data only). A run that never pretrained has no best
    encoder but its initial one, which is both."""
    path = run_dir / encoder_file(which)
    if which == "best" and not path.is_file():
        if config.trainer.max_epochs == 0:
            return load_encoder(config, run_dir, "last")
        if (run_dir / ENCODER_FILE).is_file():
            raise UserError(
                f"{run_dir} kept no best encoder ({ENCODER_BEST_FILE}: runs trained by an "
                "older dmx have none); use the final one (encoder=last), or train the run "
                "again with resume=false"
            )
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
