"""Benchmarks measured in this process, next to HuggingFace at the same shape: the masking
strategies against its collator (:mod:`dmx.bench.masking`), the training step against its
BERT with the machine's matrix-multiply peak (:mod:`dmx.bench.model`, engines in
:mod:`dmx.bench.engines`, figures and table in :mod:`dmx.bench.results`), and preprocessing
a large corpus (:mod:`dmx.bench.data`). Nothing is imported here: each bench pulls in only
what it times.

Layer 2 of 9: imported by the CLI only; may import the run and everything below it, through
their public functions, so what it times is what a run does."""
