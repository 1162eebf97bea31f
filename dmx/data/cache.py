"""The token cache a caller asks for: each corpus is tokenized once, then reused.

:func:`load_or_tokenize` is the one way in. The folder is
``<cache_dir>/<name>-<fingerprint>/``; the fingerprint covers everything that changes the
streams (the corpus' content, every parsing setting, the tokenizer, and FORMAT_VERSION) and
nothing else, so a run finds the cache that any earlier run of the same corpus built.
``meta.json`` marks a complete cache, and a cache that fails to load (a file missing,
truncated or corrupt) is rebuilt, never fatal.

Only the naming and the choice between reusing and building live here; the streams' layout
and reading are dmx.data.token_stream, the building dmx.data.tokenize_corpus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from dmx.config import DataConfig
from dmx.data.source import Source
from dmx.data.token_stream import FORMAT_VERSION, META, Tokenized, open_cache
from dmx.data.tokenize_corpus import build_cache
from dmx.data.tokenizer import file_fingerprint, recipe_fingerprint

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """$DMX_CACHE_DIR, else $XDG_CACHE_HOME/dmx, else ~/.cache/dmx."""
    if os.environ.get("DMX_CACHE_DIR"):
        return Path(os.environ["DMX_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dmx"


def fingerprint(cfg: DataConfig, content_hash: str) -> str:
    """Everything that changes the token streams, and nothing else.

    Not seq_len, batch_size or packing: sequences are cut at load time, so one cache
    serves them all. Not data.path either: the content is hashed, so a moved file is the
    same corpus and an edited one is another.
    """
    keys: dict[str, Any] = {"format": FORMAT_VERSION, "source": cfg.source, "name": cfg.name}
    if cfg.source == "embedded":
        keys |= {"corpus_seed": cfg.corpus_seed, "n_docs": cfg.n_docs, "val_docs": cfg.val_docs}
    else:
        keys |= {
            "config": cfg.config,
            "split": cfg.split,
            "text_field": cfg.text_field,
            "doc_split": cfg.doc_split,
            "val_frac": cfg.val_frac,
            "split_seed": cfg.split_seed,
            # Which validation set: its content is in the content hash.
            "val_path": bool(cfg.val_path),
            "val_split": cfg.val_split,
        }
    keys["content"] = content_hash
    keys["tokenizer"] = (
        {"file": file_fingerprint(cfg.tokenizer)}
        if cfg.tokenizer
        else recipe_fingerprint(cfg.vocab_size)
    )
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def folder_name(name: str, fp: str) -> str:
    """``<name>-<fingerprint>``, the name made safe for a folder: a hub name has a slash
    (user_dataset), a local dataset folder is a path (its last part names it)."""
    if Path(name).is_absolute() or name.startswith((".", "~")):
        name = Path(name).name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "corpus"
    return f"{safe[-60:]}-{fp}"


def load_or_tokenize(
    cfg: DataConfig, source: Source, cache_dir: str | Path | None = None
) -> Tokenized:
    """The cached streams for this corpus and settings, tokenizing them if need be."""
    started = time.perf_counter()
    fp = fingerprint(cfg, source.hash_content())
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = root / folder_name(cfg.name, fp)
    if (folder / META).exists():
        try:
            cached = open_cache(folder, fp)
            log.info("corpus: reusing cache %s (%.2f s)", folder, time.perf_counter() - started)
            return cached
        except Exception as err:  # a damaged cache is rebuilt, never fatal
            log.warning("corpus: cache %s unreadable (%s); rebuilding", folder, err)
    build_cache(cfg, source, folder, fp)
    return open_cache(folder, fp)
