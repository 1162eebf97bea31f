"""Zero-shot evaluation: the pretrained encoder scores minimal pairs by pseudo-log-likelihood,
with no training at all; a pair is right only when its grammatical sentence scores strictly
higher (a tie is wrong, or a model that scores every sentence alike would get full marks).

The pairs are read and checked before pretraining (:func:`read_suite`), so a bad folder costs
seconds, not a run. Each paradigm's result is a file in the run folder,
``eval/<suite>/<paradigm>.json``, written atomically when the paradigm is scored: a rerun,
or ``dmx eval`` on the folder, scores only the paradigms not yet scored with the same
settings, so a killed evaluation goes on at the first one missing. ``eval/<suite>.json``
then holds every paradigm (``paradigms: {UID: {acc, n, field, phenomenon}}``) and the
settings, and metrics.json the means: ``blimp_acc`` (over paradigms, as BLiMP and BabyLM
report it), ``blimp_<field>``, ``blimp_<phenomenon>`` and ``blimp_pairs``; for the
embedded pairs ``pairs_acc`` and ``pairs_<phenomenon>``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from dmx.common.files import write_json
from dmx.common.run_folder import EVAL_DIR
from dmx.config import Config
from dmx.data.embedded import generate_documents
from dmx.data.embedded.pairs import read_embedded
from dmx.data.minimal_pairs import Paradigm, read_blimp, subset
from dmx.data.tokenizer import CLS_ID, MASK_ID, SEP_ID
from dmx.downstream.pll import Sentence, pll_scores
from dmx.model import MaskedLM
from dmx.training.trainer import resolve_precision

log = logging.getLogger("dmx")

# Each suite's prefix in metrics.json.
PREFIXES = {"blimp": "blimp", "embedded": "pairs"}


def read_suite(config: Config) -> list[Paradigm]:
    """The suite's paradigms, each cut to ``eval.pairs_per_paradigm`` (the same seeded
    subset in every run); empty for eval=none."""
    cfg = config.eval
    if cfg.name == "none":
        return []
    if cfg.name == "blimp":
        paradigms = read_blimp(cfg.blimp_dir, cfg.paradigms)
    else:
        # With the embedded corpus, no pair may repeat a sentence of its documents.
        data = config.data
        documents = (
            generate_documents(data.corpus_seed, data.n_docs) if data.source == "embedded" else ()
        )
        paradigms = read_embedded(data.corpus_seed, cfg.paradigms, documents)
    return [subset(p, cfg.pairs_per_paradigm, cfg.subset_seed) for p in paradigms]


def settings(config: Config) -> dict[str, Any]:
    """What a paradigm's score depends on besides the encoder: a file scored otherwise is
    scored again."""
    cfg = config.eval
    source = str(Path(cfg.blimp_dir).expanduser().resolve()) if cfg.blimp_dir else "hub"
    return {
        "suite": cfg.name,
        "source": source if cfg.name == "blimp" else f"corpus_seed={config.data.corpus_seed}",
        "scoring": cfg.scoring,
        "pairs_per_paradigm": cfg.pairs_per_paradigm,
        "subset_seed": cfg.subset_seed,
        "encoder": cfg.encoder,
    }


def evaluate(
    config: Config,
    encoder: MaskedLM,
    tokenizer: Tokenizer,
    paradigms: list[Paradigm],
    run_dir: Path,
) -> dict[str, Any]:
    """Score every paradigm not yet scored, write ``eval/<suite>.json``; returns the
    metrics.json fields."""
    if not paradigms:
        return {}
    suite, wanted = config.eval.name, settings(config)
    device = _device(config)
    encoder = encoder.to(device)
    bf16 = resolve_precision(config.impl).startswith("bf16")
    results: dict[str, dict[str, Any]] = {}
    began = time.perf_counter()
    for n, paradigm in enumerate(paradigms, start=1):
        path = run_dir / EVAL_DIR / suite / f"{paradigm.uid}.json"
        record = _read(path, wanted)
        if record is None:
            record = _score(config, encoder, tokenizer, paradigm, device, bf16)
            write_json(path, {**record, "settings": wanted})
            log.info(
                "eval: %s %d of %d (%s): %.1f%% of %d pairs",
                suite,
                n,
                len(paradigms),
                paradigm.uid,
                100 * record["acc"],
                record["n"],
            )
        results[paradigm.uid] = {k: record[k] for k in ("acc", "n", "field", "phenomenon")}
    write_json(run_dir / EVAL_DIR / f"{suite}.json", {"paradigms": results, "settings": wanted})
    metrics = summarize(PREFIXES[suite], results)
    metrics.update(eval_scoring=config.eval.scoring, eval_encoder=config.eval.encoder)
    metrics["eval_s"] = time.perf_counter() - began
    return metrics


def epoch_scorer(
    config: Config, paradigms: list[Paradigm], tokenizer: Tokenizer
) -> Callable[[MaskedLM], dict[str, float]]:
    """What ``eval.epochs`` runs after those epochs' validation: the suite's mean accuracy
    on ``eval.epoch_pairs`` pairs a paradigm (a seeded subset, the same each time), on the
    encoder where it trains. Nothing is written; the caller records it with the epoch."""
    cfg = config.eval
    chosen = [subset(p, cfg.epoch_pairs, cfg.subset_seed) for p in paradigms]
    prefix = PREFIXES[cfg.name]
    bf16 = resolve_precision(config.impl).startswith("bf16")

    def score(encoder: MaskedLM) -> dict[str, float]:
        device = next(encoder.parameters()).device
        accs = [_score(config, encoder, tokenizer, p, device, bf16)["acc"] for p in chosen]
        return {f"{prefix}_acc": _mean(accs)}

    return score


def without_suite(metrics: dict[str, Any], suite: str) -> dict[str, Any]:
    """metrics.json without a suite's earlier fields, so a new evaluation (other paradigms,
    another scoring) leaves none of the old per-phenomenon figures beside its own."""
    prefix = f"{PREFIXES[suite]}_"
    return {k: v for k, v in metrics.items() if not k.startswith(prefix)}


def summarize(prefix: str, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The means over paradigms: overall, per field (BLiMP only) and per phenomenon."""
    out: dict[str, Any] = {f"{prefix}_acc": _mean(r["acc"] for r in results.values())}
    groups: dict[str, list[float]] = defaultdict(list)
    for r in results.values():
        if prefix == "blimp":
            groups[r["field"]].append(r["acc"])
        groups[r["phenomenon"]].append(r["acc"])
    out.update({f"{prefix}_{name}": _mean(accs) for name, accs in sorted(groups.items())})
    if prefix == "blimp":
        out["blimp_pairs"] = sum(r["n"] for r in results.values())
    return out


def _mean(values: Any) -> float:
    values = list(values)
    return sum(values) / len(values)


def _read(path: Path, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """A paradigm scored before with the same settings; None when it is still to score
    (missing, unreadable: never finished, or scored otherwise)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("settings") != wanted or "acc" not in record:
        return None
    return record


def _score(
    config: Config,
    encoder: MaskedLM,
    tokenizer: Tokenizer,
    paradigm: Paradigm,
    device: torch.device,
    bf16: bool,
) -> dict[str, Any]:
    texts = [s for pair in paradigm.pairs for s in (pair.good, pair.bad)]
    sentences = tokenize(tokenizer, texts, encoder.shape.max_seq_len - 2)
    scores = pll_scores(
        encoder,
        sentences,
        config.eval.scoring,
        cls_id=CLS_ID,
        sep_id=SEP_ID,
        mask_id=MASK_ID,
        device=device,
        bf16=bf16,
        max_tokens=config.eval.batch_tokens,
    )
    right = sum(good > bad for good, bad in zip(scores[::2], scores[1::2], strict=True))
    return {
        "acc": right / len(paradigm.pairs),
        "n": len(paradigm.pairs),
        "correct": right,
        "field": paradigm.field,
        "phenomenon": paradigm.phenomenon,
    }


def tokenize(tokenizer: Tokenizer, texts: list[str], max_tokens: int) -> list[Sentence]:
    """Each text's ids and word index per token, no special tokens, cut to ``max_tokens``
    (the encoder's positions less [CLS] and [SEP])."""
    out = []
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        ids, words = encoding.ids[:max_tokens], encoding.word_ids[:max_tokens]
        out.append(Sentence(tuple(ids), tuple(-1 if w is None else w for w in words)))
    return out


def _device(config: Config) -> torch.device:
    on_gpu = config.impl.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return torch.device("cuda" if on_gpu else "cpu")
