"""The report as LaTeX: booktabs tabulars to paste into a paper.

The cells are markdown's, escaped, so that a number never differs between the two;
what is not a table (the caption, the method of the comparison, notes, failed runs)
comes as ``%`` comments, which keep a paste into a ``table`` float compiling.
"""

from __future__ import annotations

from collections.abc import Sequence

from dmx.common.errors import one_line
from dmx.report.baseline import method_note
from dmx.report.cells import (
    CAPTION,
    comparison_grid,
    failed_lines,
    has_baseline,
    main_grid,
    row_notes,
)
from dmx.report.summary import Row

# Characters LaTeX reads as commands in text mode. "<" and ">" print as other glyphs in
# the default OT1 font encoding, and Δ, ±, ≥ are no text-mode characters at all.
_ESCAPES: dict[str, str] = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"$<$",
    ">": r"$>$",
    "|": r"\textbar{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "∈": r"$\in$",
    "–": "--",
}


def escape(text: str) -> str:
    """Text as LaTeX typesets it verbatim, one character at a time, so an escape's own
    backslashes and braces are never escaped again."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def tabular(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """A booktabs tabular: the label column left-aligned, numbers right-aligned."""
    spec = "l" + "r" * (len(header) - 1)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    lines.append(" & ".join(escape(h) for h in header) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(escape(c) for c in cells) + r" \\" for cells in body]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def to_latex(rows: Sequence[Row]) -> str:
    """The main table, then with a baseline the comparison table, each after a comment
    saying what its numbers are; needs ``\\usepackage{booktabs}``."""
    lines = [f"% {CAPTION}", *tabular(*main_grid(rows))]
    if has_baseline(rows):
        note = method_note(rows, lambda i, row: row.label) or ""
        lines += ["", f"% {note}", *tabular(*comparison_grid(rows))]
    comments = row_notes(rows, lambda i, row: row.label)
    comments += [f"failed: {path}: {error}" for path, error in failed_lines(rows)]
    if comments:
        lines.append("")
        lines += [f"% {one_line(c)}" for c in comments]
    return "\n".join(lines) + "\n"
