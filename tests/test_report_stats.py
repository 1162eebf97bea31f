"""The baseline comparison: Δ, p, effect size and seeds for power, checked against scipy and
statsmodels on hand-made run folders; choosing the baseline; every format that shows it."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import statistics
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import run_dmx
from rich.cells import cell_len
from rich.console import Console
from scipy import stats
from statsmodels.stats.power import TTestIndPower, TTestPower
from typer.testing import CliRunner

from dmx import report as rep
from dmx.cli import app
from dmx.common.errors import UserError
from dmx.common.files import atomic_write_text, write_json
from dmx.common.run_folder import CONFIG_FILE, METRICS_FILE
from dmx.report.cells import delta_cell
from dmx.report.latex import escape
from dmx.report.stats import PAIRED, WELCH

# The losses of a real sweep (tiny model, embedded corpus, 25 epochs), seeds 0, 1, 2.
STATIC = [6.324, 6.333, 6.449]
DYNAMIC = [5.615, 5.603, 5.606]
STATIC_ACC = [0.1074, 0.1059, 0.1031]
DYNAMIC_ACC = [0.1399, 0.1403, 0.1400]


def config(seed: int, copies: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "seed": seed,
        "model": {"name": "tiny", "n_layers": 2},
        "mask": {"copies": copies, "prob": 0.15},
        "logger": {"name": "none", "project": "dmx"},
        **extra,
    }


def strategy(copies: int | None) -> str:
    return "dynamic" if copies is None else f"static(K={copies})"


def write_run(
    path: Path, config: dict[str, Any], loss: float, acc: float = 0.5, **metrics: Any
) -> Path:
    copies = config["mask"]["copies"]
    write_json(
        path / METRICS_FILE,
        {
            "status": "done",
            "seed": config["seed"],
            "error": None,
            "mask_strategy": strategy(copies),
            "final_val_loss": loss,
            "best_val_loss": loss - 0.1,
            "final_val_acc": acc,
            "final_train_loss": loss + 0.1,
            "tokens_per_s": 1000.0 + 10 * config["seed"],
            **metrics,
        },
    )
    atomic_write_text(path / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    return path


def write_group(
    root: Path, copies: int | None, losses: list[float], seeds: list[int] | None = None, **kw: Any
) -> None:
    for i, (seed, loss) in enumerate(zip(seeds or range(len(losses)), losses, strict=True)):
        extra = {k: v[i] for k, v in kw.items()}
        write_run(root / f"{strategy(copies)}_s{seed}", config(seed, copies), loss, **extra)


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    write_group(root, 1, STATIC, acc=STATIC_ACC)
    write_group(root, None, DYNAMIC, acc=DYNAMIC_ACC)
    return root


def by_label(rows: list[rep.Row]) -> dict[str, rep.Row]:
    return {row.label: row for row in rows}


def printed(rows: list[rep.Row], width: int) -> list[str]:
    console = Console(record=True, width=width)
    rep.render(rows, "table", console)
    return console.export_text().splitlines()


def cells_of(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


# ---------------------------------------------------------------------------- the numbers


def independent_power(d: float, n: int) -> float:
    """The same for two independent groups of n each: df 2n - 2, noncentrality d sqrt(n/2)."""
    critical = stats.t.isf(0.025, 2 * n - 2)
    return float(stats.nct.sf(critical, 2 * n - 2, d * math.sqrt(n / 2)))


def paired_power(d: float, n: int) -> float:
    """Power of the two-sided paired t-test at alpha=0.05, from scipy's noncentral t: the
    chance t lands beyond the critical value on the effect's side (the other side's share
    is below 1e-15 for the effects it is used on)."""
    critical = stats.t.isf(0.025, n - 1)
    return float(stats.nct.sf(critical, n - 1, d * math.sqrt(n)))


def test_paired_t_test_by_seed_matches_scipy(sweep: Path) -> None:
    rows = by_label(rep.load(sweep, baseline="mask=static"))
    assert rows["mask=static(K=1)"].is_baseline
    assert rows["mask=static(K=1)"].comparisons == {}
    loss = rows["mask=dynamic"].comparisons["final_val_loss"]
    assert loss.test == "paired t"
    assert loss.seeds == (0, 1, 2)
    assert loss.delta == pytest.approx(statistics.mean(DYNAMIC) - statistics.mean(STATIC))
    assert loss.delta == pytest.approx(-0.7606667, abs=1e-7)
    assert loss.p == pytest.approx(stats.ttest_rel(DYNAMIC, STATIC).pvalue)
    assert loss.p == pytest.approx(0.0029790, abs=1e-7)
    diffs = [d - s for d, s in zip(DYNAMIC, STATIC, strict=True)]
    assert loss.effect_size == pytest.approx(statistics.mean(diffs) / statistics.stdev(diffs))
    # So large an effect that statsmodels' two-sided power is nan from 3 seeds on: by the
    # noncentral t itself, 3 seeds reach 80% power and 2 do not.
    d = abs(loss.effect_size)
    assert paired_power(d, 2) == pytest.approx(TTestPower().power(d, 2, 0.05))
    assert paired_power(d, 2) < 0.8 <= paired_power(d, 3)
    assert loss.n_for_80_power == 3

    acc = rows["mask=dynamic"].comparisons["final_val_acc"]
    assert acc.p == pytest.approx(stats.ttest_rel(DYNAMIC_ACC, STATIC_ACC).pvalue)
    assert acc.delta == pytest.approx(statistics.mean(DYNAMIC_ACC) - statistics.mean(STATIC_ACC))


def test_moderate_effect_needs_the_seeds_statsmodels_solves_for(tmp_path: Path) -> None:
    base, other = [2.1, 2.2, 2.3, 2.0], [2.0, 2.5, 2.1, 2.3]
    write_group(tmp_path, 1, base)
    write_group(tmp_path, None, other)
    (row,) = [r for r in rep.load(tmp_path, baseline="mask=static(K=1)") if not r.is_baseline]
    c = row.comparisons["final_val_loss"]
    diffs = [o - b for o, b in zip(other, base, strict=True)]
    d_z = statistics.mean(diffs) / statistics.stdev(diffs)
    assert c.effect_size == pytest.approx(d_z)
    assert c.effect_size == pytest.approx(0.2851759, abs=1e-6)  # 0.075 / sqrt(0.2075 / 3)
    assert c.n_for_80_power == math.ceil(TTestPower().solve_power(d_z, power=0.8, alpha=0.05))
    assert c.n_for_80_power == 99
    assert c.p == pytest.approx(stats.ttest_rel(other, base).pvalue)


def test_welch_when_the_seeds_differ(tmp_path: Path) -> None:
    base, other = [2.1, 2.4, 2.2], [2.5, 2.3, 2.9, 2.6]
    write_group(tmp_path, 1, base, seeds=[0, 1, 2])
    write_group(tmp_path, None, other, seeds=[0, 1, 2, 3])
    rows = by_label(rep.load(tmp_path, baseline="mask.copies=1"))
    c = rows["mask=dynamic"].comparisons["final_val_loss"]
    assert c.test == "welch t"
    assert (c.n, c.n_baseline, c.seeds) == (4, 3, ())
    assert c.delta == pytest.approx(2.575 - 2.2333333)
    assert c.p == pytest.approx(stats.ttest_ind(other, base, equal_var=False).pvalue)
    pooled = math.sqrt((3 * statistics.variance(other) + 2 * statistics.variance(base)) / 5)
    d = (statistics.mean(other) - statistics.mean(base)) / pooled
    assert c.effect_size == pytest.approx(d)
    assert c.effect_size == pytest.approx(0.3416667 / math.sqrt((0.1875 + 0.0466667) / 5))
    assert c.n_for_80_power == math.ceil(TTestIndPower().solve_power(d, power=0.8, alpha=0.05))
    assert c.n_for_80_power == 8


def test_pairs_are_matched_by_seed_not_by_order() -> None:
    group = [(10, 2.0), (2, 2.6), (1, 2.1)]
    base = [(1, 2.0), (2, 2.2), (10, 2.3)]
    c = rep.compare(group, base)
    assert (c.test, c.seeds) == ("paired t", (1, 2, 10))
    assert c.p == pytest.approx(stats.ttest_rel([2.1, 2.6, 2.0], [2.0, 2.2, 2.3]).pvalue)
    assert c.p != pytest.approx(stats.ttest_rel([2.0, 2.6, 2.1], [2.0, 2.2, 2.3]).pvalue)


def test_shifted_seeds_of_equal_count_are_not_paired(tmp_path: Path) -> None:
    write_group(tmp_path, 1, [2.0, 2.1, 2.3], seeds=[0, 1, 2])
    write_group(tmp_path, None, [1.8, 1.9, 2.2], seeds=[1, 2, 3])
    rows = by_label(rep.load(tmp_path, baseline="mask=static"))
    c = rows["mask=dynamic"].comparisons["final_val_loss"]
    assert c.test == "welch t"
    assert c.p == pytest.approx(
        stats.ttest_ind([1.8, 1.9, 2.2], [2.0, 2.1, 2.3], equal_var=False).pvalue
    )


def test_no_p_with_one_run_a_side(tmp_path: Path) -> None:
    write_group(tmp_path, 1, [2.0, 2.2])
    write_group(tmp_path, None, [1.5])
    rows = by_label(rep.load(tmp_path, baseline="mask=static"))
    c = rows["mask=dynamic"].comparisons["final_val_loss"]
    assert (c.delta, c.p, c.test, c.effect_size, c.n_for_80_power) == (
        pytest.approx(-0.6),
        None,
        None,
        None,
        None,
    )


def test_no_effect_needs_no_number_of_seeds() -> None:
    c = rep.compare([(0, 1.0), (1, 2.0)], [(0, 1.0), (1, 2.0)])
    assert (c.delta, c.p, c.effect_size, c.n_for_80_power) == (0.0, None, None, None)
    # The same shift on every seed: no spread at all, an infinite effect, two seeds enough,
    # and a t-test that is undefined (scipy says p = 0 there, which overstates it).
    c = rep.compare([(0, 1.0), (1, 2.0)], [(0, 1.5), (1, 2.5)])
    assert (c.delta, c.p, c.effect_size, c.n_for_80_power) == (-0.5, None, -math.inf, 2)
    assert c.undefined == "equal differences" and c.p_exact == 0.5  # 2 of 4 sign flips
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy: "nearly identical" data
        assert stats.ttest_rel([1.0, 2.0], [1.5, 2.5]).pvalue == 0.0
    assert rep.seeds_for_power(0.0, paired=True) is None
    assert rep.seeds_for_power(50.0, paired=False) == 2  # two seeds detect it already
    assert independent_power(50.0, 2) >= 0.8
    assert rep.seeds_for_power(1.5, paired=False) == 9
    assert independent_power(1.5, 8) < 0.8 <= independent_power(1.5, 9)
    assert independent_power(1.5, 9) == pytest.approx(TTestIndPower().power(1.5, 9, 0.05))


def test_only_result_metrics_are_compared(tmp_path: Path) -> None:
    for copies, seed in itertools.product([1, None], range(2)):
        write_run(
            tmp_path / f"{strategy(copies)}_{seed}",
            config(seed, copies),
            2.0 + seed,
            finetune_acc=0.7 + 0.01 * seed,
            finetune_f1=0.6 + 0.02 * seed,
            mask_rate=0.15,
        )
    rows = by_label(rep.load(tmp_path, baseline="mask=static"))
    assert [m.key for m in rows["mask=dynamic"].metrics] == [
        "final_val_loss",
        "best_val_loss",
        "final_val_acc",
        "final_train_loss",
        "tokens_per_s",
        "finetune_acc",
        "finetune_f1",
        "mask_rate",
    ]
    assert list(rows["mask=dynamic"].comparisons) == [
        "final_val_loss",
        "best_val_loss",
        "final_val_acc",
        "finetune_acc",
        "finetune_f1",
    ]


# ---------------------------------------------------------------------------- the baseline


@pytest.fixture
def three(tmp_path: Path) -> Path:
    """static(K=1), static(K=10) and dynamic at mask.prob 0.15, and dynamic at 0.3."""
    for copies, seed in itertools.product([1, 10, None], range(2)):
        write_run(tmp_path / f"{strategy(copies)}_{seed}", config(seed, copies), 2.0 + seed)
    for seed in range(2):
        run = config(seed, None)
        run["mask"]["prob"] = 0.3
        write_run(tmp_path / f"dynamic30_{seed}", run, 1.5 + seed)
    return tmp_path


@pytest.mark.parametrize(
    ("specs", "label"),
    [
        (["mask=static(K=10)"], "mask=static(K=10), prob=0.15"),
        (["mask.copies=1"], "mask=static(K=1), prob=0.15"),
        (["mask.copies=1.0"], "mask=static(K=1), prob=0.15"),
        (["mask=dynamic", "prob=0.3"], "mask=dynamic, prob=0.3"),
        (["mask.prob=0.3"], "mask=dynamic, prob=0.3"),
        (["copies=10"], "mask=static(K=10), prob=0.15"),
    ],
)
def test_baseline_by_config_key_or_label_name(three: Path, specs: list[str], label: str) -> None:
    rows = rep.summarize(rep.collect(three))
    assert rep.find_baseline(rows, specs).short_label == label


def test_strategy_name_alone_when_one_group_has_it(sweep: Path) -> None:
    rows = rep.summarize(rep.collect(sweep))
    assert rep.find_baseline(rows, "mask=static").label == "mask=static(K=1)"
    assert rep.find_baseline(rows, "mask=static(K=1)").label == "mask=static(K=1)"
    assert rep.find_baseline(rows, "mask=dynamic").label == "mask=dynamic"


def test_exact_strategy_wins_over_a_prefix(tmp_path: Path) -> None:
    for name, seed in itertools.product(["dynamic", "span dynamic"], range(2)):
        run = config(seed, None)
        run["mask"]["unit"] = "span" if name.startswith("span") else "token"
        write_run(tmp_path / f"{name}_{seed}", run, 2.0, mask_strategy=name)
    rows = rep.summarize(rep.collect(tmp_path))
    assert [r.label for r in rows] == ["mask=span dynamic", "mask=dynamic"]
    assert rep.find_baseline(rows, "mask=dynamic").label == "mask=dynamic"
    assert rep.find_baseline(rows, "mask=span dynamic").label == "mask=span dynamic"


def test_attention_pattern_by_its_group_name(tmp_path: Path) -> None:
    for pattern, seed in itertools.product(["full", "window"], range(2)):
        write_run(
            tmp_path / f"{pattern}_{seed}",
            config(seed, None, attention={"pattern": pattern, "window": 16}),
            2.0,
        )
    rows = rep.summarize(rep.collect(tmp_path))
    assert rep.find_baseline(rows, "attention=full").label == "attention.pattern=full"


def test_baseline_matching_several_groups_names_them(three: Path) -> None:
    rows = rep.summarize(rep.collect(three))
    with pytest.raises(UserError) as info:
        rep.find_baseline(rows, "mask=static")
    assert str(info.value) == (
        "--baseline mask=static matches 2 groups: mask=static(K=1), prob=0.15 | "
        "mask=static(K=10), prob=0.15; name one of them, e.g. --baseline mask=static(K=1)"
    )
    with pytest.raises(UserError) as info:
        rep.find_baseline(rows, "mask=dynamic")
    assert str(info.value) == (
        "--baseline mask=dynamic matches 2 groups: mask=dynamic, prob=0.15 | "
        "mask=dynamic, prob=0.3; name one of them, e.g. "
        "--baseline mask=dynamic --baseline prob=0.15"
    )


def test_baseline_no_group_has_lists_the_groups(sweep: Path) -> None:
    rows = rep.summarize(rep.collect(sweep))
    with pytest.raises(UserError) as info:
        rep.find_baseline(rows, "mask=span")
    assert str(info.value) == (
        "no group has mask=span; the groups are: mask=dynamic | mask=static(K=1)"
    )
    with pytest.raises(UserError) as info:
        rep.find_baseline(rows, "mask.copies=3")
    assert str(info.value) == (
        "no group has mask.copies=3; the groups are: mask=dynamic | mask=static(K=1)"
    )


def test_unknown_baseline_key(sweep: Path) -> None:
    rows = rep.summarize(rep.collect(sweep))
    with pytest.raises(UserError) as info:
        rep.find_baseline(rows, "optimizer=adam")
    assert str(info.value) == (
        "unknown baseline key 'optimizer': no run's config has it; label names: mask, copies; "
        "pass a config key or label name, e.g. --baseline mask=static or "
        "--baseline mask.copies=1"
    )


def test_ambiguous_short_key_asks_for_the_full_one(tmp_path: Path) -> None:
    for seed in range(2):
        write_run(
            tmp_path / f"s{seed}",
            config(seed, 1, data={"dropout": 0.1}, optim={"dropout": 0.0}),
            2.0,
        )
    rows = rep.summarize(rep.collect(tmp_path))
    with pytest.raises(UserError) as info:
        rep.find_baseline(rows, "dropout=0.1")
    assert str(info.value) == (
        "baseline key 'dropout' could be any of data.dropout, optim.dropout; "
        "write the full key, e.g. --baseline data.dropout=0.1"
    )


def test_baseline_needs_two_groups(tmp_path: Path) -> None:
    write_group(tmp_path, 1, [2.0, 2.1])
    with pytest.raises(UserError) as info:
        rep.load(tmp_path, baseline="mask.copies=1")
    assert str(info.value) == (
        "--baseline compares groups, but these runs form one group (all); "
        "report a folder whose runs differ in some setting"
    )


@pytest.mark.parametrize("spec", ["static", "=static", "mask=", "mask"])
def test_baseline_without_key_and_value_fails_before_reading(tmp_path: Path, spec: str) -> None:
    with pytest.raises(UserError) as info:
        rep.report(tmp_path / "not-there", "md", baseline=spec)
    assert str(info.value) == (
        "--baseline takes KEY=VALUE, e.g. --baseline mask=static or --baseline mask.copies=1; "
        f"got {spec!r}"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--baseline", "mask=span"],
            "dmx: error: no group has mask=span; the groups are: mask=dynamic | mask=static(K=1)\n",
        ),
        (
            ["--baseline", "nope=1"],
            "dmx: error: unknown baseline key 'nope': no run's config has it; label names: "
            "mask, copies; pass a config key or label name, e.g. --baseline mask=static or "
            "--baseline mask.copies=1\n",
        ),
        (["--format", "xlsx"], None),
    ],
)
def test_cli_bad_baseline_is_one_line_and_exit_2(
    sweep: Path, args: list[str], message: str | None
) -> None:
    result = CliRunner().invoke(app, ["report", str(sweep), *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("dmx: error: ")
    if message is not None:
        assert result.stderr == message


@pytest.mark.slow
def test_the_installed_command_exits_2_on_a_baseline_no_group_has(sweep: Path) -> None:
    result = run_dmx("report", str(sweep), "-b", "mask=span", cwd=sweep, check=False)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "dmx: error: no group has mask=span; the groups are: mask=dynamic | mask=static(K=1)\n"
    )


# ---------------------------------------------------------------------------- formats


def test_json_rows_gain_the_comparison(sweep: Path) -> None:
    data = json.loads(rep.report(sweep, "json", baseline="mask=static") or "")
    dynamic, static = data
    assert (dynamic["label"], dynamic["baseline"]) == ("mask=dynamic", False)
    assert (static["label"], static["baseline"]) == ("mask=static(K=1)", True)
    loss = dynamic["final_val_loss"]
    assert list(loss) == [
        "mean",
        "std",
        "median",
        "ci95",
        "n",
        "delta",
        "p",
        "p_exact",
        "undefined",
        "effect_size",
        "n_for_80_power",
        "test",
    ]
    assert loss["delta"] == pytest.approx(-0.7606667, abs=1e-7)
    assert loss["p"] == pytest.approx(stats.ttest_rel(DYNAMIC, STATIC).pvalue)
    assert (loss["n_for_80_power"], loss["test"]) == (3, "paired t")
    assert set(dynamic["tokens_per_s"]) == {"mean", "std", "median", "ci95", "n"}
    assert set(static["final_val_loss"]) == {"mean", "std", "median", "ci95", "n"}


def test_json_without_baseline_keeps_its_shape(sweep: Path) -> None:
    data = json.loads(rep.report(sweep, "json") or "")
    assert all("baseline" not in row for row in data)
    assert set(data[0]["final_val_loss"]) == {"mean", "std", "median", "ci95", "n"}


def test_csv_gains_delta_and_p_columns(sweep: Path) -> None:
    text = rep.report(sweep, "csv", baseline="mask=static") or ""
    header = next(csv.reader(io.StringIO(text)))
    assert header[-9:] == [
        "final_val_loss_delta",
        "final_val_loss_p",
        "final_val_loss_p_exact",
        "best_val_loss_delta",
        "best_val_loss_p",
        "best_val_loss_p_exact",
        "final_val_acc_delta",
        "final_val_acc_p",
        "final_val_acc_p_exact",
    ]
    dynamic, static = csv.DictReader(io.StringIO(text))
    assert float(dynamic["final_val_loss_delta"]) == pytest.approx(-0.7606667, abs=1e-7)
    assert float(dynamic["final_val_loss_p"]) == pytest.approx(
        stats.ttest_rel(DYNAMIC, STATIC).pvalue
    )
    assert float(dynamic["final_val_loss_p_exact"]) == pytest.approx(0.25)  # 3 seeds, one way
    assert (static["final_val_loss_delta"], static["final_val_loss_p"]) == ("", "")
    assert "final_val_loss_delta" not in (rep.report(sweep, "csv") or "")


NOTE = (
    "Δ and p against `mask=static(K=1)`: paired t-test over seeds 0, 1, 2; "
    "d, n80 (val loss): Cohen's d_z, seeds per group for 80% power; "
    "exact: the permutation test over the same values (every sign flip of the paired "
    "differences, least p 2/2^n: 0.250 for 3 seeds)"
)


def test_markdown_has_a_comparison_table(sweep: Path) -> None:
    lines = (rep.report(sweep, "md", baseline="mask=static") or "").splitlines()
    start = lines.index("| group | n | Δ val loss | d | n80 | Δ best val loss | Δ val acc |")
    assert lines[start - 1] == ""
    assert lines[start + 1 :] == [
        "|---|--:|--:|--:|--:|--:|--:|",
        "| mask=dynamic | 3 | -0.761 (p=0.003, exact 0.250) | -10.55 | 3 "
        "| -0.761 (p=0.003, exact 0.250) | +3.46% (p=0.001, exact 0.250) |",
        "",
        NOTE,
    ]
    assert lines[2].startswith("| mask=dynamic | 3 | 0 | 0 | 0 | 5.608 ± 0.006 |")


def test_latex_is_a_booktabs_tabular_with_the_comparison(sweep: Path) -> None:
    text = rep.report(sweep, "latex", baseline="mask=static") or ""
    lines = text.splitlines()
    assert lines[:4] == [
        "% mean ± sample std over the n done runs of each group",
        r"\begin{tabular}{lrrrrrrrrr}",
        r"\toprule",
        r"group & n & failed & running & unfinished & val loss & best val loss & val acc "
        r"& train loss & tokens/s \\",
    ]
    assert lines[4] == r"\midrule"
    assert lines[5].startswith(
        r"mask=dynamic & 3 & 0 & 0 & 0 & 5.608 $\pm$ 0.006 & 5.508 $\pm$ 0.006 & "
        r"14.01\% $\pm$ 0.02\% &"
    )
    assert lines[7:9] == [r"\bottomrule", r"\end{tabular}"]
    assert lines[9:] == [
        "",
        "% " + NOTE.replace("`", ""),
        r"\begin{tabular}{lrrrrrr}",
        r"\toprule",
        r"group & n & $\Delta$ val loss & d & n80 & $\Delta$ best val loss & $\Delta$ val acc \\",
        r"\midrule",
        r"mask=dynamic & 3 & -0.761 (p=0.003, exact 0.250) & -10.55 & 3 & "
        r"-0.761 (p=0.003, exact 0.250) & +3.46\% (p=0.001, exact 0.250) \\",
        r"\bottomrule",
        r"\end{tabular}",
    ]
    no_baseline = rep.report(sweep, "latex") or ""
    assert no_baseline.count(r"\begin{tabular}") == 1


def test_latex_escapes_what_latex_would_read_as_commands() -> None:
    assert escape("n_layers=4 50% & #1 ± Δ <0.001 {x} ~ ^ \\ $") == (
        r"n\_layers=4 50\% \& \#1 $\pm$ $\Delta$ $<$0.001 \{x\} \textasciitilde{} "
        r"\textasciicircum{} \textbackslash{} \$"
    )


def test_latex_is_a_format() -> None:
    assert rep.FORMATS == ("table", "md", "csv", "json", "latex")
    assert rep.check_format("latex") == "latex"


# ---------------------------------------------------------------------------- rich table


def test_comparison_table_at_100_columns(sweep: Path) -> None:
    lines = [line.rstrip() for line in printed(rep.load(sweep, baseline="mask=static"), 100)]
    assert max(cell_len(line) for line in lines) <= 100
    start = lines.index(next(line for line in lines if line.startswith("group") and "Δ" in line))
    assert cells_of(lines[start]) == ["group", "n", "Δ val loss", "d", "n80", "Δ best val loss"]
    assert cells_of(lines[start + 2]) == [
        "mask=dynamic",
        "3",
        "-0.761 (p=0.003, exact 0.250)",
        "-10.55",
        "3",
        "-0.761 (p=0.003, exact 0.250)",
    ]
    # The next unit, stacked below at this width, with the group again.
    start += 4
    assert cells_of(lines[start]) == ["group", "n", "Δ val acc"]
    assert cells_of(lines[start + 2]) == ["mask=dynamic", "3", "+3.46% (p=0.001, exact 0.250)"]
    note = " ".join(lines[start + 3 :])
    assert note == NOTE.replace("`", "")


MODELS = ("tiny", "small")
CORPORA = ("embedded", "text")


@pytest.fixture
def wide(tmp_path: Path) -> Path:
    """12 groups with long labels: 2 models x 2 corpora x 3 strategies, 3 seeds each."""
    for g, (model, corpus, copies) in enumerate(itertools.product(MODELS, CORPORA, [1, 10, None])):
        for seed in range(3):
            run = config(seed, copies)
            run["model"] = {"name": model, "n_layers": 2 if model == "tiny" else 4}
            run["data"] = {"name": corpus, "path": f"/datasets/{corpus}/train.txt"}
            write_run(
                tmp_path / f"g{g}_s{seed}",
                run,
                3.0 + 0.01 * g + 0.1 * seed + 0.003 * seed * g,
                finetune_acc=0.6 + 0.01 * g,
                finetune_f1=0.5 + 0.01 * seed,
            )
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("width", [80, 100])
def test_comparison_table_stays_readable(wide: Path, width: int) -> None:
    rows = rep.load(wide, baseline=["model=tiny", "data=text", "mask=static(K=1)"])
    base = next(i for i, row in enumerate(rows) if row.is_baseline)
    lines = [line.rstrip() for line in printed(rows, width)]
    assert max(cell_len(line) for line in lines) <= width

    headers = [cells_of(line) for line in lines if line.startswith("group")]
    comparison = [h for h in headers if any(c.startswith("Δ") or c == "d" for c in h)]
    assert all(h[:2] == ["group", "n"] for h in comparison)
    assert [c for h in comparison for c in h[2:]] == [
        "Δ val loss",
        "d",
        "n80",
        "Δ best val loss",
        "Δ val acc",
        "Δ finetune acc",
        "Δ finetune F1",
    ]
    # Every non-baseline group, numbered as in the main table, with every cell unbroken.
    first = lines.index(next(line for line in lines if line.startswith("group") and "Δ" in line))
    body = [cells_of(line) for line in lines[first:] if re.match(r"G\d+\s+\d+\s", line)]
    names = [f"G{i + 1}" for i in range(len(rows)) if i != base]
    assert list(dict.fromkeys(cells[0] for cells in body)) == names
    g1 = rows[0].comparisons["final_val_loss"]
    g1_cells = [c for cells in body if cells[0] == "G1" for c in cells[2:]]
    assert g1_cells[:3] == [
        f"{g1.delta:+.3f} (p={g1.p:.3f}, exact {g1.p_exact:.3f})",
        f"{g1.effect_size:+.2f}",
        str(g1.n_for_80_power),
    ]
    note = next(line for line in lines if line.startswith("Δ and p against"))
    assert note.startswith(f"Δ and p against G{base + 1} (model=tiny, mask=static(K=1), ")


def test_equal_differences_get_no_t_test_p_and_an_exact_one() -> None:
    """Three seeds all one way, the same shift each up to float rounding: the t-test is
    undefined and the sign-flip test's least p, 2 of 8 flips, is all three seeds can show."""
    base = [(0, 0.1), (1, 0.2), (2, 0.3)]
    group = [(s, v + 0.05) for s, v in base]  # 0.15 - 0.1 != 0.25 - 0.2 in the last bits
    c = rep.compare(group, base)
    assert c.test == PAIRED and c.p is None and c.undefined == "equal differences"
    assert c.p_exact == pytest.approx(0.25)
    metric = rep.Metric("final_val_loss", "val loss", ".3f")
    assert delta_cell(c, metric) == "+0.050 (p n/a, exact 0.250)"


def test_the_exact_p_counts_relabellings_by_hand() -> None:
    # Paired, differences +1, +2, -0.5: flips whose |mean| >= 2.5/3 are (+,+,±) and
    # (-,-,±): 4 of 8.
    c = rep.compare([(0, 2.0), (1, 3.0), (2, 0.5)], [(0, 1.0), (1, 1.0), (2, 1.0)])
    assert c.p_exact == pytest.approx(0.5)
    flips = list(itertools.product([1, -1], repeat=3))
    diffs = [1.0, 2.0, -0.5]
    means = [abs(sum(a * d for a, d in zip(f, diffs, strict=True))) for f in flips]
    extreme = [m for m in means if m >= 2.5 - 1e-12]
    assert c.p_exact == pytest.approx(len(extreme) / len(flips))
    assert c.p == pytest.approx(stats.ttest_rel([2.0, 3.0, 0.5], [1.0, 1.0, 1.0]).pvalue)
    # Welch (other seeds): every split of the 6 values into 3 and 3, 20 of them; the two
    # that put 4, 5, 6 on one side are as extreme as the data.
    c = rep.compare([(0, 4.0), (1, 5.0), (2, 6.0)], [(3, 1.0), (4, 2.0), (5, 3.0)])
    assert c.test == WELCH and c.p_exact == pytest.approx(2 / 20)
    # Beyond ten seeds a side, no exact test: the t-test's approximation is good there.
    many = [(s, float(s % 3)) for s in range(11)]
    assert rep.compare(many, [(s, v + 1.0 + s / 100) for s, v in many]).p_exact is None


def test_a_rerun_of_a_seed_is_one_replicate_not_two(sweep: Path) -> None:
    """A finished run with the config and seed of another (a rerun in another folder) is
    set aside: the newer counts, n and the paired test stay over distinct seeds."""
    import os

    older = sweep / "dynamic_s1"
    rerun = write_run(sweep / "rerun" / "dynamic_s1", config(1, None), 9.0)
    os.utime(older / METRICS_FILE, (1_000_000, 1_000_000))  # the rerun is newer
    rows = by_label(rep.load(sweep, baseline="mask=static"))
    dynamic = rows["mask=dynamic"]
    assert dynamic.n == 3 and dynamic.seeds == [0, 1, 2]
    assert [r.path for r in dynamic.duplicates] == [older]
    values = dict(dynamic.values("final_val_loss"))
    assert values[1] == 9.0  # the newer run's number
    assert dynamic.comparisons["final_val_loss"].test == PAIRED
    text = rep.report(sweep, "md", baseline="mask=static") or ""
    assert (
        f"- `mask=dynamic`: 1 finished run set aside, a seed the group already has (the newest "
        f"of each seed counts, n = 3): {older}"
    ) in text
    data = {row["label"]: row for row in json.loads(rep.report(sweep, "json") or "")}
    assert (data["mask=dynamic"]["n"], data["mask=dynamic"]["n_duplicates"]) == (3, 1)
    assert data["mask=static(K=1)"]["n_duplicates"] == 0
    assert rerun.exists()


def test_a_row_tested_on_some_metrics_and_not_others_says_which(tmp_path: Path) -> None:
    """Fine-tuning recorded by one run of a group: its loss is paired over three seeds, its
    fine-tuning accuracy cannot be tested; the note says so per metric, not "no test for
    mask=dynamic" beside "paired t-test for mask=dynamic"."""
    write_group(tmp_path, 1, STATIC, finetune_acc=[0.5, 0.6, 0.7])
    for seed, loss in enumerate(DYNAMIC):
        extra = {"finetune_acc": 0.9} if seed == 0 else {}
        write_run(tmp_path / f"dynamic_s{seed}", config(seed, None), loss, **extra)
    text = rep.report(tmp_path, "md", baseline="mask=static") or ""
    note = next(line for line in text.splitlines() if line.startswith("Δ and p against"))
    assert (
        "paired t-test over seeds 0, 1, 2 for `mask=dynamic` (val loss, best val loss, val "
        "acc); no test (fewer than 2 done runs) for `mask=dynamic` (finetune acc)"
    ) in note
