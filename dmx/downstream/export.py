"""``dmx export RUN OUT``: a pretrained encoder as a HuggingFace ``transformers`` model.

dmx's encoder is a pre-LayerNorm Transformer: LayerNorm before attention and before the
feed-forward block, one more after the last block, learned absolute positions, exact GELU,
and BERT's MLM head (a dense layer, GELU, LayerNorm, then the tied embedding with its own
bias). BERT and RoBERTa in transformers are post-LayerNorm; XLM-RoBERTa-XL is this very
architecture, so the export is ``XLMRobertaXLForMaskedLM`` with every weight copied, no
approximation:

- ``qkv`` splits into query, key and value (dmx orders its output q, k, v, each head-major,
  as transformers does);
- RoBERTa-style models number positions from ``pad_token_id + 1`` (and give padding the
  pad position), so dmx's position ``i`` becomes row ``PAD_ID + 1 + i``;
- one token type, all zeros (dmx pretrains on one segment and adds none).

The tokenizer goes with it as ``PreTrainedTokenizerFast``, with a template that wraps text
as dmx's encoder saw it, ``[CLS] a [SEP]`` (pairs ``[CLS] a [SEP] b [SEP]``). A test loads
the folder with ``AutoModelForMaskedLM`` and ``AutoTokenizer`` and checks the logits equal
dmx's own.

What cannot be exported faithfully is refused: a learned attention gate, and encoders
pretrained under another attention pattern than full attention (transformers would attend
where the encoder never learned to).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from dmx.common.errors import UserError
from dmx.common.run_folder import CONFIG_FILE, ENCODER_FILE, METRICS_FILE, read_metrics
from dmx.config import Config
from dmx.config.validate import finetune_config
from dmx.data.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS, UNK_ID
from dmx.model import MaskedLM
from dmx.training.encoder import load_encoder

ARCHITECTURE = "XLMRobertaXLForMaskedLM"
LAYER_NORM_EPS = 1e-5  # torch's nn.LayerNorm default, which dmx's encoder uses


def run_config(run_dir: Path) -> Config:
    """The config a finished run was trained under, checked."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder; give a run's folder (it holds encoder.pt)")
    if not (run_dir / ENCODER_FILE).is_file():
        raise UserError(
            f"{run_dir} holds no pretrained encoder ({ENCODER_FILE}); dmx export needs a run "
            "trained by dmx train to the end of pretraining"
        )
    try:
        saved = OmegaConf.load(run_dir / CONFIG_FILE)
    except (OSError, ValueError) as err:
        raise UserError(f"{run_dir / CONFIG_FILE} does not read ({err})") from None
    return finetune_config(saved, [], where=str(run_dir / CONFIG_FILE))


def hf_config(encoder: MaskedLM) -> Any:
    from transformers import XLMRobertaXLConfig

    s = encoder.shape
    return XLMRobertaXLConfig(
        vocab_size=s.vocab_size,
        hidden_size=s.d_model,
        num_hidden_layers=s.n_layers,
        num_attention_heads=s.n_heads,
        intermediate_size=s.d_ff,
        hidden_act="gelu",
        hidden_dropout_prob=s.dropout,
        attention_probs_dropout_prob=s.attn_dropout,
        max_position_embeddings=s.max_seq_len + PAD_ID + 1,
        type_vocab_size=1,
        layer_norm_eps=LAYER_NORM_EPS,
        pad_token_id=PAD_ID,
        bos_token_id=CLS_ID,
        eos_token_id=SEP_ID,
        tie_word_embeddings=True,
        architectures=[ARCHITECTURE],
    )


def hf_state_dict(encoder: MaskedLM) -> dict[str, torch.Tensor]:
    """dmx's weights under transformers' names (see the module's docstring)."""
    s = encoder.shape
    dmx = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
    positions = torch.zeros(s.max_seq_len + PAD_ID + 1, s.d_model)
    positions[PAD_ID + 1 :] = dmx["pos.weight"]
    out = {
        "roberta.embeddings.word_embeddings.weight": dmx["tok.weight"],
        "roberta.embeddings.position_embeddings.weight": positions,
        "roberta.embeddings.token_type_embeddings.weight": torch.zeros(1, s.d_model),
        "roberta.encoder.LayerNorm.weight": dmx["ln_f.weight"],
        "roberta.encoder.LayerNorm.bias": dmx["ln_f.bias"],
        "lm_head.dense.weight": dmx["head_transform.0.weight"],
        "lm_head.dense.bias": dmx["head_transform.0.bias"],
        "lm_head.layer_norm.weight": dmx["head_transform.2.weight"],
        "lm_head.layer_norm.bias": dmx["head_transform.2.bias"],
        "lm_head.bias": dmx["head_bias"],
        "lm_head.decoder.weight": dmx["tok.weight"],
        "lm_head.decoder.bias": dmx["head_bias"],
    }
    for i in range(s.n_layers):
        src, dst = f"blocks.{i}.", f"roberta.encoder.layer.{i}."
        q, k, v = dmx[src + "attn.qkv.weight"].chunk(3, dim=0)
        qb, kb, vb = dmx[src + "attn.qkv.bias"].chunk(3, dim=0)
        pairs = {
            "attention.self_attn_layer_norm": "ln1",
            "attention.output.dense": "attn.out",
            "LayerNorm": "ln2",
            "intermediate.dense": "ff.0",
            "output.dense": "ff.2",
        }
        for theirs, ours in pairs.items():
            out[f"{dst}{theirs}.weight"] = dmx[f"{src}{ours}.weight"]
            out[f"{dst}{theirs}.bias"] = dmx[f"{src}{ours}.bias"]
        for name, weight, bias in (("query", q, qb), ("key", k, kb), ("value", v, vb)):
            out[f"{dst}attention.self.{name}.weight"] = weight.contiguous()
            out[f"{dst}attention.self.{name}.bias"] = bias.contiguous()
    return out


def hf_tokenizer(tokenizer: Any, max_length: int) -> Any:
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    wrapped = Tokenizer.from_str(tokenizer.to_str())
    if wrapped.post_processor is None:  # dmx's own tokenizer: wrap as its sequences are
        wrapped.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)],
        )
    pad, unk, cls, sep, mask = SPECIAL_TOKENS
    assert (PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID) == (0, 1, 2, 3, 4)
    return PreTrainedTokenizerFast(
        tokenizer_object=wrapped,
        pad_token=pad,
        unk_token=unk,
        cls_token=cls,
        sep_token=sep,
        mask_token=mask,
        model_max_length=max_length,
    )


def export(run_dir: Path, out: Path) -> Path:
    """Write the run's encoder and tokenizer to ``out`` (a new folder), atomically: the
    folder appears whole or not at all."""
    run_dir, out = Path(run_dir), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty folder; give a new folder")
    config = run_config(run_dir)
    if config.attention.pattern != "full":
        raise UserError(
            f"{run_dir} was pretrained with attention={config.attention.pattern}; transformers' "
            "XLM-RoBERTa-XL attends to every position, so the export would not compute what "
            "this encoder learned; export a run pretrained with attention=full"
        )
    encoder, tokenizer = load_encoder(config, run_dir)
    if encoder.shape.gate:  # pragma: no cover - learned_gate is refused above already
        raise UserError(f"{run_dir}'s encoder has a learned attention gate; it has no export")
    from transformers import XLMRobertaXLForMaskedLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one line of dmx's says what was written
    model = XLMRobertaXLForMaskedLM(hf_config(encoder))
    missing, unexpected = model.load_state_dict(hf_state_dict(encoder), strict=False)
    assert not unexpected and not [k for k in missing if "position_ids" not in k], (
        missing,
        unexpected,
    )
    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        hf_tokenizer(tokenizer, encoder.shape.max_seq_len).save_pretrained(staging)
        (staging / "dmx_run.json").write_text(_provenance(run_dir), encoding="utf-8")
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _provenance(run_dir: Path) -> str:
    """What the exported encoder is: the run it came from and what it measured."""
    import json

    metrics = read_metrics(run_dir) if (run_dir / METRICS_FILE).exists() else {}
    keep = ("mask_strategy", "final_val_loss", "best_val_loss", "tokens_seen", "seed", "git")
    return json.dumps(
        {"run": str(run_dir.resolve()), **{k: metrics.get(k) for k in keep}}, indent=2
    )


__all__ = ["export", "hf_config", "hf_state_dict", "hf_tokenizer"]
