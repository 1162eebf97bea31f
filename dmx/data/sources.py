"""Which source a config names, opened: ``source=embedded`` (the generated corpus),
``source=text`` (files, :mod:`~dmx.data.text_source`) or ``source=hf`` (a dataset loaded by
the datasets library, from the hub or a local folder, :mod:`~dmx.data.hub_source`). Each is
checked as far as it can be without reading it all.
"""

from __future__ import annotations

from collections.abc import Iterator

from dmx.common.errors import UserError
from dmx.config import DataConfig
from dmx.data import embedded as generator
from dmx.data.source import Source, hash_documents
from dmx.data.text_source import text_source


def open_source(cfg: DataConfig) -> Source:
    """The source ``cfg`` names, checked as far as can be without reading it all."""
    if cfg.source == "embedded":
        return _embedded(cfg)
    if cfg.source == "text":
        return text_source(cfg)
    if cfg.source == "hf":
        from dmx.data.hub_source import hub_source  # the datasets library, only when asked

        return hub_source(cfg)
    raise UserError(f"data.source must be one of embedded, text, hf; got {cfg.source!r}")


def _embedded(cfg: DataConfig) -> Source:
    """The generated corpus, split as it always was: the last val_docs documents held out."""
    n_train = cfg.n_docs - cfg.val_docs

    def read() -> Iterator[str]:
        return iter(generator.generate_documents(cfg.corpus_seed, cfg.n_docs))

    return Source(
        describe=f"the embedded corpus (corpus_seed={cfg.corpus_seed}, n_docs={cfg.n_docs})",
        read=read,
        is_val=lambda i: i >= n_train,
        hash_content=lambda: hash_documents(read()),
        split_hint="data.val_docs",
        documents_hint=cfg.n_docs,
    )
