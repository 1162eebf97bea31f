"""``data=hf``: documents from a dataset the datasets library loads, from the hub or a local
folder, through the library's own cache (:mod:`dmx.data.hub` decides how to reach it).

The training documents are ``data.split``; validation is the dataset's own ``validation``
split when it has one (``data.val_split=auto``), a split named by ``data.val_split``, or
``data.val_frac`` of the training split (``none``), held out as :mod:`dmx.data.source`
holds out a text corpus' documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from dmx.common.errors import UserError, one_line
from dmx.config import DataConfig
from dmx.data import hub
from dmx.data.source import Source, hash_documents, is_validation, text_value

_HF_BATCH = 1000


def hub_source(cfg: DataConfig) -> Source:
    """``datasets.load_dataset(name, config, split=split)``, through the library's own cache;
    ``name`` may be a local folder of data files the library can load."""
    where = f"data.name={cfg.name}"
    read = _hf_reader(_load_hf(cfg), cfg, where)
    read_val = None
    own = _own_validation(cfg)
    if own is not None:
        read_val = _hf_reader(own, cfg, f"{where} validation split")

    def hash_content() -> str:
        parts = [hash_documents(read())]
        if read_val is not None:
            parts.append(hash_documents(read_val()))
        return hashlib.sha256("/val:".join(parts).encode()).hexdigest()

    return Source(
        describe=where + (" with its validation split" if read_val else ""),
        read=read,
        is_val=lambda i: is_validation(cfg.split_seed, i, cfg.val_frac),
        hash_content=hash_content,
        split_hint="data.val_split=none" if read_val else "data.val_frac",
        read_val=read_val,
    )


# The split a hub dataset keeps for validation, by the convention the hub's datasets follow.
HF_VALIDATION_SPLIT = "validation"


def _own_validation(cfg: DataConfig) -> Any:
    """The dataset's own validation split, when data.val_split asks for it and it exists."""
    if cfg.val_split == "none" or cfg.split == HF_VALIDATION_SPLIT:
        return None
    wanted = HF_VALIDATION_SPLIT if cfg.val_split == "auto" else cfg.val_split
    try:
        return hub.load(cfg.name, cfg.config, split=wanted)
    except Exception as err:  # noqa: BLE001 - auto: no such split means re-split train
        if cfg.val_split == "auto":
            return None
        raise UserError(
            f"data.name={cfg.name} data.val_split={cfg.val_split}: the split could not be "
            f"loaded ({one_line(err)}); name one of the dataset's splits, or "
            "data.val_split=none to hold out data.val_frac of data.split"
        ) from None


def _hf_reader(dataset: Any, cfg: DataConfig, where: str) -> Callable[[], Iterator[str]]:
    field = cfg.text_field
    columns = list(dataset.column_names)
    if field not in columns:
        raise UserError(
            f"{where} has no column {field!r}; set data.text_field to one of: {', '.join(columns)}"
        )
    column = dataset.select_columns([field])

    def read() -> Iterator[str]:
        for batch in column.iter(batch_size=_HF_BATCH):
            for value in batch[field]:
                yield text_value(value, where, field, columns)

    return read


def _load_hf(cfg: DataConfig) -> Any:
    if not hub.installed():
        raise UserError(
            "data=hf needs the datasets library: pip install 'datasets>=2.19'; or read local "
            "files with data=text data.path=PATH"
        )
    try:
        return hub.load(cfg.name, cfg.config, split=cfg.split)
    except Exception as err:
        # No network and nothing cached: the library raises ConnectionError (OfflineMode,
        # LocalEntryNotFound...). Anything else (a wrong name, config or split) says why.
        why = (
            "no network and not in the HuggingFace cache"
            if isinstance(err, ConnectionError)
            else one_line(err)
        )
        raise UserError(
            f"data.name={cfg.name}"
            + (f" data.config={cfg.config}" if cfg.config else "")
            + f" data.split={cfg.split}: the dataset could not be loaded ({why}); load it "
            "once with a network, or read local files with data=text data.path=PATH"
        ) from None


__all__ = ["HF_VALIDATION_SPLIT", "hub_source"]
