"""The catalogue of what a report shows: each metric's key in metrics.json, its column
header and its format, in column order, and which of them a baseline comparison tests.

One place to add a metric: the table, the CSV and JSON, the plots and the comparison all
read it from here, while :mod:`dmx.report.stats` computes on the numbers without knowing
which metric they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmx.data.glue import TASKS as GLUE_TASKS


@dataclass(frozen=True)
class Metric:
    """A summarised metric: its key in metrics.json, a column header, a format spec."""

    key: str
    label: str
    spec: str  # format spec applied to the mean and the std alike

    def format(self, value: float) -> str:
        return format(value, self.spec)

    def format_delta(self, value: float) -> str:
        """A difference, always signed, so that "+0.012" never reads as a level."""
        return format(value, f"+{self.spec}")


# The metrics every report shows, in column order.
METRICS: tuple[Metric, ...] = (
    Metric("final_val_loss", "val loss", ".3f"),
    Metric("best_val_loss", "best val loss", ".3f"),
    Metric("final_val_acc", "val acc", ".2%"),
    Metric("final_train_loss", "train loss", ".3f"),
    Metric("tokens_per_s", "tokens/s", ",.0f"),
)

# What the masks did, measured on the batches: shown when some run recorded them (runs
# older than the diagnostics, and full attention, have none).
DIAGNOSTICS: tuple[Metric, ...] = (
    Metric("mask_rate", "mask rate", ".1%"),
    Metric("mask_diversity", "masks/seq", ".1f"),
    Metric("attention_density", "attn density", ".2f"),
    # PMI units: the share of the masked tokens that lay in units of two or more words.
    Metric("mask_multiword_share", "multi-word", ".1%"),
    # Adaptive masking: where the per-id rates ended, over the training tokens.
    Metric("adaptive_rate_p05", "rate p5", ".1%"),
    Metric("adaptive_rate_p95", "rate p95", ".1%"),
)


ZERO_SHOT_PREFIXES = ("pairs_", "blimp_")
# Zero-shot minimal pairs (eval=embedded, eval=blimp): the mean accuracy over paradigms,
# shown and compared when some run recorded it. Chance is 50%.
ZERO_SHOT: tuple[Metric, ...] = (
    Metric("pairs_acc", "pairs acc", ".1%"),
    Metric("blimp_acc", "BLiMP", ".1%"),
)

# BLiMP's fields, in BLiMP's order: the first of the detail columns (dmx report --zero-shot).
BLIMP_FIELDS = ("morphology", "syntax", "semantics", "syntax_semantics")
_NOT_DETAIL = {"blimp_acc", "pairs_acc", "blimp_pairs"}


def zero_shot_detail(keys: set[str]) -> tuple[Metric, ...]:
    """A column for every per-field and per-phenomenon figure some run recorded
    (``blimp_<field>``, ``blimp_<phenomenon>``, ``pairs_<phenomenon>``): BLiMP's fields in
    BLiMP's order, then the phenomena by name."""
    found = sorted(k for k in keys if k.startswith(ZERO_SHOT_PREFIXES) and k not in _NOT_DETAIL)
    fields = [f"blimp_{f}" for f in BLIMP_FIELDS if f"blimp_{f}" in found]
    rest = [k for k in found if k not in fields]
    return tuple(
        Metric(k, k.replace("blimp_", "BLiMP ", 1).replace("pairs_", "pairs ", 1), ".1%")
        for k in (*fields, *rest)
    )


# What a fine-tuning evaluation records: shown, and compared, when some run recorded it.
FINETUNE: tuple[Metric, ...] = (
    Metric("finetune_acc", "finetune acc", ".2%"),
    Metric("finetune_f1", "finetune F1", ".3f"),
    Metric("finetune_precision", "finetune precision", ".3f"),
    Metric("finetune_recall", "finetune recall", ".3f"),
    # The protocol's spread: best minus worst fine-tuning seed's accuracy at the chosen lr.
    Metric("finetune_seed_spread", "ft-seed spread", ".3f"),
)

# GLUE (finetune=glue): the score, then each task's figures in GLUE's order, shown and
# compared when some run recorded them.
_GLUE_FORMATS = {"acc": ".2%", "f1": ".3f", "mcc": ".3f", "pearson": ".3f", "spearman": ".3f"}


def _glue_metrics() -> tuple[Metric, ...]:
    """glue_score, then glue_<task>_<metric> per task (MNLI's mismatched dev split as
    glue_mnli_mm_acc), as dmx.downstream.finetune names them in metrics.json."""
    metrics = [
        Metric("glue_score", "GLUE score", ".3f"),
        # The mean over tasks of best minus worst fine-tuning seed at each chosen lr.
        Metric("glue_seed_spread", "ft-seed spread", ".3f"),
    ]
    for task in GLUE_TASKS.values():
        for split, _ in task.dev_files:
            extra = split.removeprefix("dev").lstrip("_")  # "" for dev, "mm" for dev_mm
            for name in task.metrics:
                key = "_".join(p for p in ("glue", task.key, extra, name) if p)
                label = f"{task.name}{'-' + extra if extra else ''} {name}"
                metrics.append(Metric(key, label, _GLUE_FORMATS[name]))
    return tuple(metrics)


GLUE = _glue_metrics()

# The metrics a baseline comparison tests: what the experiment measures. Speed and the mask
# diagnostics differ by construction (a static mask is cheaper, K copies give K masks), so a
# p-value on them would only restate the setup.
RESULT_KEYS: tuple[str, ...] = ("final_val_loss", "best_val_loss", "final_val_acc")
FINETUNE_PREFIXES = ("finetune_", "glue_")
# Counts, not results.
NOT_RESULTS = ("blimp_pairs",)


def is_result(metric: Metric) -> bool:
    """Whether a baseline comparison tests it: not the spread over fine-tuning seeds, which
    says how far to trust a figure, not what the experiment did."""
    if metric.key.endswith("_seed_spread") or metric.key in NOT_RESULTS:
        return False
    return metric.key in RESULT_KEYS or metric.key.startswith(
        (*FINETUNE_PREFIXES, *ZERO_SHOT_PREFIXES)
    )
