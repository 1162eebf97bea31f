"""Small GLUE task files, written in each task's real layout (headerless CoLA, STS-B's
float scores, MNLI's two dev files, RTE's string labels)."""

from __future__ import annotations

import random
from pathlib import Path


def write(path: Path, lines: list[str], bom: bool = False, final_newline: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + ("\n" if final_newline else "")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


WORDS = "the a goat cow farmer baker bread milk eats bakes sells sees".split()


def glue_folder(root: Path, n_train: int = 24, n_dev: int = 10) -> Path:
    """A small GLUE folder in the real layouts: CoLA (no header), STS-B (float scores,
    pairs), MNLI (both dev files), RTE (string labels, pairs)."""
    rng = random.Random(0)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) + " ."

    def rows(n: int, make) -> list[str]:  # type: ignore[no-untyped-def]
        return [make(i) for i in range(n)]

    stsb = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    mnli = (
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
        "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
    )
    nli = ("contradiction", "entailment", "neutral")
    for split, n in (("train", n_train), ("dev", n_dev)):
        write(
            root / "CoLA" / f"{split}.tsv",
            rows(n, lambda i: f"gj04\t{i % 2}\t{'*' if i % 2 == 0 else ''}\t{sentence()}"),
        )
        write(
            root / "STS-B" / f"{split}.tsv",
            [
                stsb,
                *rows(
                    n, lambda i: f"{i}\tx\tx\tx\t{i}\tn\tn\t{sentence()}\t{sentence()}\t{i % 6}.000"
                ),
            ],
        )
        write(
            root / "RTE" / f"{split}.tsv",
            [
                "index\tsentence1\tsentence2\tlabel",
                *rows(
                    n,
                    lambda i: (
                        f"{i}\t{sentence()}\t{sentence()}\t"
                        f"{('entailment', 'not_entailment')[i % 2]}"
                    ),
                ),
            ],
        )
    mnli_files = {"train.tsv": n_train, "dev_matched.tsv": n_dev, "dev_mismatched.tsv": n_dev}
    for name, n in mnli_files.items():
        write(
            root / "MNLI" / name,
            [
                mnli,
                *rows(
                    n,
                    lambda i: (
                        f"{i}\t1\t1n\tg\t(a)\t(b)\t(a)\t(b)\t{sentence()}\t"
                        f"{sentence()}\t{nli[i % 3]}\t{nli[i % 3]}"
                    ),
                ),
            ],
        )
    return root
