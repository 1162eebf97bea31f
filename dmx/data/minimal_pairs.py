"""Minimal pairs: a grammatical and an ungrammatical sentence that differ in one place,
grouped in paradigms (BLiMP's 67, of 1,000 pairs each, or the embedded grammar's own).

BLiMP is read from its own files (a folder of ``<paradigm>.jsonl``, one pair a line, with
``sentence_good``, ``sentence_bad``, ``field``, ``linguistics_term`` and ``UID``, as in the
BLiMP repository's data/) or from the hub's ``nyu-mll/blimp`` (one configuration a
paradigm). A subset of a paradigm is drawn by a keyed hash of (seed, paradigm, pair), so
every run of a comparison scores the same pairs, whatever else it reads.

Every mistake a user can fix (a folder with no .jsonl, a line that is not a pair, an
unknown paradigm) is a UserError whose one line names the fix.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dmx.common.errors import UserError, one_line
from dmx.data.text_source import json_lines
from dmx.masking.keyed import base_hash

HUB_BLIMP = "nyu-mll/blimp"
# The stream of base_hash that picks a paradigm's subset; its own number, so no other keyed
# draw from the same seed shares bits with it.
SUBSET_STREAM = 0xB11


@dataclass(frozen=True)
class Pair:
    good: str
    bad: str


@dataclass(frozen=True)
class Paradigm:
    """One paradigm's pairs, with BLiMP's labels: its field (morphology, syntax, semantics,
    syntax_semantics) and its phenomenon (``linguistics_term``), both as metric-name parts."""

    uid: str
    field: str
    phenomenon: str
    pairs: tuple[Pair, ...]


def name_part(text: str) -> str:
    """A label as part of a metric name: lower-cased, every run of other characters as
    ``_`` (BLiMP's ``syntax/semantics`` and ``s-selection``: syntax_semantics, s_selection)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def subset(paradigm: Paradigm, n: int | None, seed: int) -> Paradigm:
    """``n`` of the paradigm's pairs (all when None or more than it has), the same ones at
    every call: those whose keyed hash of (seed, paradigm, pair index) is smallest, in
    their original order."""
    if n is None or n >= len(paradigm.pairs):
        return paradigm
    key = int.from_bytes(hashlib.sha256(paradigm.uid.encode()).digest()[:4], "little")
    ranked = sorted(
        range(len(paradigm.pairs)), key=lambda i: base_hash(seed, SUBSET_STREAM + key, i)
    )
    return replace(paradigm, pairs=tuple(paradigm.pairs[i] for i in sorted(ranked[:n])))


def read_blimp(blimp_dir: str | None, paradigms: Sequence[str] | None) -> list[Paradigm]:
    """BLiMP's paradigms (all, or those named, in the order named) from ``blimp_dir`` or,
    when it is None, from the hub."""
    if blimp_dir is not None:
        return read_blimp_dir(Path(blimp_dir).expanduser(), paradigms)
    return read_blimp_hub(paradigms)


def read_blimp_dir(folder: Path, paradigms: Sequence[str] | None) -> list[Paradigm]:
    if not folder.is_dir():
        raise UserError(
            f"eval.blimp_dir={folder} is not a folder; point it at BLiMP's data/ folder "
            "(one <paradigm>.jsonl a paradigm)"
        )
    files = {path.stem: path for path in sorted(folder.glob("*.jsonl"))}
    if not files:
        raise UserError(
            f"eval.blimp_dir={folder} holds no .jsonl files; point it at BLiMP's data/ folder "
            "(one <paradigm>.jsonl a paradigm)"
        )
    chosen = choose(list(files), paradigms, f"eval.blimp_dir={folder}")
    return [_read_paradigm(files[uid]) for uid in chosen]


def choose(available: list[str], paradigms: Sequence[str] | None, where: str) -> list[str]:
    """The paradigms named (in the order named, each once), or all; a name ``where`` lacks
    is one line listing what it has."""
    if paradigms is None:
        return available
    unknown = [p for p in paradigms if p not in available]
    if unknown:
        shown = ", ".join(available[:5]) + (", ..." if len(available) > 5 else "")
        raise UserError(
            f"eval.paradigms names {', '.join(unknown)}, which {where} does not have; "
            f"choose from its {len(available)} paradigms ({shown}) or set eval.paradigms=null"
        )
    return list(dict.fromkeys(paradigms))


def _read_paradigm(path: Path) -> Paradigm:
    with open(path, encoding="utf-8") as f:
        lines = json_lines(f, path, "a BLiMP file is one pair as a JSON object")
        records = [_record(record, f"{path} line {number}") for number, record in lines]
    if not records:
        raise UserError(f"{path} holds no pairs; remove it or restore BLiMP's file")
    return _paradigm(path.stem, records)


def _record(record: Any, where: str) -> dict[str, str]:
    """One pair's fields, checked: both sentences are text; the labels default to none."""
    if not isinstance(record, dict):
        raise UserError(f"{where} is not a JSON object; each line of a BLiMP file is one pair")
    missing = [k for k in ("sentence_good", "sentence_bad") if not isinstance(record.get(k), str)]
    if missing:
        raise UserError(
            f"{where} has no {' or '.join(missing)}; a BLiMP pair needs sentence_good and "
            "sentence_bad (text)"
        )
    return {
        "good": record["sentence_good"],
        "bad": record["sentence_bad"],
        "field": str(record.get("field") or "none"),
        "phenomenon": str(record.get("linguistics_term") or "none"),
        "uid": str(record.get("UID") or ""),
    }


def _paradigm(uid: str, records: list[dict[str, str]]) -> Paradigm:
    first = records[0]
    return Paradigm(
        uid=first["uid"] or uid,
        field=name_part(first["field"]),
        phenomenon=name_part(first["phenomenon"]),
        pairs=tuple(Pair(r["good"], r["bad"]) for r in records),
    )


def read_blimp_hub(paradigms: Sequence[str] | None) -> list[Paradigm]:
    """The hub's nyu-mll/blimp, one configuration a paradigm, through the datasets cache."""
    from dmx.data import hub

    if not hub.installed():
        raise UserError(
            "eval=blimp without eval.blimp_dir reads the hub through the datasets library, "
            "which is not installed; pip install datasets, or set eval.blimp_dir"
        )
    available = _hub_paradigms()
    chosen = choose(available, paradigms, HUB_BLIMP)
    out = []
    for uid in chosen:
        try:
            rows = hub.load(HUB_BLIMP, uid, split="train")
        except Exception as err:  # noqa: BLE001 - one line naming the fix
            raise UserError(
                f"{HUB_BLIMP} ({uid}) does not load ({one_line(err)}); download BLiMP's data/ "
                "folder and set eval.blimp_dir"
            ) from None
        out.append(_paradigm(uid, [_record(dict(r), f"{HUB_BLIMP} {uid}") for r in rows]))
    return out


def _hub_paradigms() -> list[str]:
    """The hub's paradigm names: from the cache when it has them, else from the hub when it
    answers within seconds (never the library's half-minute of retries)."""
    import datasets

    from dmx.data import hub

    try:
        with hub.offline():
            return list(datasets.get_dataset_config_names(HUB_BLIMP))
    except Exception:  # noqa: BLE001 - not cached: ask the hub
        pass
    why = "the hub does not answer"
    if hub.hub_reachable():
        try:
            return list(datasets.get_dataset_config_names(HUB_BLIMP))
        except Exception as err:  # noqa: BLE001 - one line naming the fix
            why = one_line(err)
    raise UserError(
        f"{HUB_BLIMP}'s paradigms cannot be listed ({why}); download BLiMP's data/ folder "
        "and set eval.blimp_dir"
    )
