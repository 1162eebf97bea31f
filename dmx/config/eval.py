"""The zero-shot evaluation after pretraining (``eval=...``): minimal pairs scored by
pseudo-log-likelihood, a pair right only when its grammatical sentence scores strictly
higher (a tie is wrong: it would give a model that cannot tell them apart full marks)."""

from __future__ import annotations

from dataclasses import dataclass

from dmx.common.choices import ENCODERS, EVAL_SUITES, SCORINGS
from dmx.config.checks import check, check_choice


@dataclass
class EvalConfig:
    # none | blimp (BLiMP's 67 paradigms: blimp_dir, or the hub's nyu-mll/blimp) |
    # embedded (pairs made from the embedded grammar's rules, for the offline default).
    name: str = "none"
    # blimp: BLiMP's data/ folder, one <paradigm>.jsonl a paradigm (null: the hub).
    blimp_dir: str | None = None
    # Paradigm UIDs to score (null: all of them).
    paradigms: list[str] | None = None
    # Pairs scored per paradigm (null: all; BLiMP has 1,000): a seeded subset, the same
    # pairs for every run, so runs are paired.
    pairs_per_paradigm: int | None = None
    # The subset's seed (not the run's: every run of a comparison scores the same pairs).
    subset_seed: int = 0
    # pll_word_l2r (Kauf and Ivanova 2023: also mask the rest of the word) or pll (Salazar
    # et al. 2020: one token at a time).
    scoring: str = "pll_word_l2r"
    # Which encoder is scored: the final one (last, as RoBERTa's downstream figures are), or
    # the one at the best validation loss (best: is static masking's late loss only an
    # early-stopping problem?).
    encoder: str = "last"
    # Epochs of pretraining after which the encoder is also scored (on epoch_pairs pairs a
    # paradigm, the same seeded subset each time), into history.csv and W&B: zero-shot
    # accuracy over training, beside the loss. null: only at the end.
    epochs: list[int] | None = None
    epoch_pairs: int = 50
    # Masked copies scored per forward pass, as rows x length: speed and memory, never
    # results. On a 2-core CPU 4,096 was fastest (1,024 to 32,768 measured: docs/performance.md).
    batch_tokens: int = 4096

    def __post_init__(self) -> None:
        check_choice("eval.name", self.name, EVAL_SUITES)
        check_choice("eval.scoring", self.scoring, SCORINGS)
        check_choice("eval.encoder", self.encoder, ENCODERS)
        check(
            self.pairs_per_paradigm is None or self.pairs_per_paradigm >= 1,
            f"eval.pairs_per_paradigm must be at least 1 (null: every pair), got "
            f"{self.pairs_per_paradigm}",
        )
        check(
            self.paradigms is None or len(self.paradigms) > 0,
            "eval.paradigms=[] names no paradigm; list some, or set eval.paradigms=null for all",
        )
        check(self.batch_tokens >= 1, f"eval.batch_tokens must be >= 1, got {self.batch_tokens}")
        check(
            not self.epochs or self.name != "none",
            "eval.epochs scores minimal pairs during pretraining; choose them too "
            "(eval=embedded or eval=blimp)",
        )
        check(
            all(e >= 1 for e in self.epochs or ()),
            f"eval.epochs are epochs of pretraining, 1 or more; got {self.epochs}",
        )
        check(self.epoch_pairs >= 1, f"eval.epoch_pairs must be >= 1, got {self.epoch_pairs}")
