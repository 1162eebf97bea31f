"""Every allowed value of a setting, listed once.

The config schema (:mod:`dmx.config`) checks values against these at start, and the code
that acts on a value (the masker, the schedule, the attention patterns) refuses anything
else with the same list, so the two can never drift apart. Imports nothing: the lowest
layer, readable from the masking code (torch only) and the CLI alike.
"""

from __future__ import annotations

# mask: what is selected, how many, which tokens a rate prefers, the rate over training.
MASK_UNITS = ("token", "whole_word", "span", "pmi")
MASK_COUNTS = ("bernoulli", "fixed")
# Which tokens a rate prefers: fixed per-id weights from the corpus (corpus), InforMask's
# per-id rates (informask), weights that follow the model's losses (loss) or AMLM's rule
# from its accuracy (amlm). Before the names said what the rules do, corpus was
# "informative" and loss "adaptive": RENAMED_WEIGHTINGS turns an old name into a hint.
MASK_WEIGHTINGS = ("uniform", "corpus", "informask", "loss", "amlm")
RENAMED_WEIGHTINGS = {"informative": "corpus", "adaptive": "loss"}
CORPUS_WEIGHT_BY = ("neighbour_pmi", "inverse_frequency")
MASK_SCHEDULES = ("constant", "linear", "cosine", "step")

# attention: which keys a query may see.
ATTENTION_PATTERNS = (
    "full",
    "causal",
    "window",
    "block_sparse",
    "random_static",
    "random_dynamic",
    "learned_gate",
)

# data and fine-tuning.
DATA_SOURCES = ("embedded", "text", "hf")
DOC_SPLITS = ("blank_line", "line")
FINETUNE_TASKS = ("none", "tsv", "hf", "embedded", "glue")
POOLINGS = ("cls", "mean")
# eval: the zero-shot suite scored after pretraining, how a sentence is scored, and which
# encoder downstream starts from (the final one, or the one at the best validation loss).
EVAL_SUITES = ("none", "blimp", "embedded")
SCORINGS = ("pll_word_l2r", "pll")
ENCODERS = ("last", "best")

# impl: how a run runs. PRECISIONS are Lightning's names; BENCH_PRECISIONS are dmx bench's
# short names for the two it times, and the Lightning precision each stands for.
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true")
BENCH_PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed"}
# Lightning's profilers, for impl.profiler (none: off).
PROFILERS = ("none", "simple", "advanced", "pytorch")

# logger and the run as a whole.
LOGGERS = ("wandb", "none")
LOGGER_MODES = ("auto", "online", "offline", "disabled")
RESUME = ("auto", "true", "false")
