"""The report's pictures (val_loss.png, final_metrics.png, differences.png) and its W&B
run, on fake runs with a history.csv each."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest
import yaml
from matplotlib import colormaps
from matplotlib.figure import Figure
from typer.testing import CliRunner

from dmx import report as rep
from dmx.cli import app
from dmx.common.errors import UserError
from dmx.common.files import atomic_write_text, write_json
from dmx.common.run_folder import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, write_history
from dmx.report import plots
from dmx.report.plots.adaptive import adaptive_trace
from dmx.report.plots.curves import curve
from dmx.report.plots.style import PIXELS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_run(
    path: Path,
    seed: int,
    copies: int | None,
    losses: list[float] | None,
    steps: list[int] | None = None,
    **config: Any,
) -> Path:
    """A done run; ``losses`` its validation losses at ``steps`` (10, 20, ... by default),
    None for a run older than history.csv."""
    strategy = "dynamic" if copies is None else f"static(K={copies})"
    final = losses[-1] if losses else 2.0
    write_json(
        path / METRICS_FILE,
        {
            "status": "done",
            "seed": seed,
            "mask_strategy": strategy,
            "final_val_loss": final,
            "best_val_loss": min(losses) if losses else final,
            "final_val_acc": 0.3 - 0.01 * final,
            "final_train_loss": final - 0.2,
            "tokens_per_s": 1000.0,
            "wandb_id": f"id-{path.name}",
        },
    )
    run_config = {"seed": seed, "mask": {"copies": copies, "prob": 0.15}, **config}
    atomic_write_text(path / CONFIG_FILE, yaml.safe_dump(run_config, sort_keys=False))
    if losses is not None:
        steps = steps or [10 * (i + 1) for i in range(len(losses))]
        write_history(
            path / HISTORY_FILE,
            [
                {"epoch": i + 1, "step": s, "val_loss": v, "val_acc": 0.1}
                for i, (s, v) in enumerate(zip(steps, losses, strict=True))
            ],
        )
    return path


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """static(K=1) with 3 seeds, dynamic with 2 (min–max band), 4 validations each."""
    root = tmp_path / "sweep"
    for seed in range(3):
        write_run(root / f"static_s{seed}", seed, 1, [5.0, 4.0, 3.5 + 0.1 * seed, 3.4 + seed])
    for seed in range(2):
        write_run(root / f"dynamic_s{seed}", seed, None, [5.0, 3.8, 3.0 - 0.2 * seed, 2.9])
    return root


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk, which must come first."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# The groups' colours, in the order of the rows (tab10), as 0-255 RGB.
TAB10 = np.round(np.array(colormaps["tab10"].colors) * 255)


def pixels_of(path: Path, rgb: np.ndarray, alpha: float = 1.0) -> int:
    """How many pixels of the PNG show ``rgb`` drawn at ``alpha`` over white (within 2 of
    255 per channel, for rounding)."""
    image = matplotlib.image.imread(path)[..., :3] * 255
    target = alpha * rgb + (1 - alpha) * 255
    return int((np.abs(image - target).max(axis=-1) <= 2).sum())


class Drawn(dict[str, Figure]):
    """The figures write_plots drew, by file name; with ``save`` false, none is rendered to
    a PNG (rendering is most of a plot's time, and these tests read the figures)."""

    save = True


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> Drawn:
    drawn = Drawn()
    save = plots.save

    def spy(figure: Figure, path: Path) -> Path:
        drawn[path.name] = figure
        return save(figure, path) if drawn.save else path

    monkeypatch.setattr(plots, "save", spy)
    return drawn


@pytest.mark.slow
def test_both_pngs_are_written_at_their_size(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures" / "new"  # made, parents too
    rows = rep.load(sweep, baseline="mask=static")
    written = rep.write_plots(rows, out, "sweep")
    names = ["val_loss.png", "final_metrics.png", "differences.png"]  # the last: --baseline
    assert written == [out / name for name in names]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert PIXELS == (1320, 780)
    for path in written:
        assert png_size(path) == PIXELS
        assert matplotlib.image.imread(path).shape == (780, 1320, 4)
    # What is in them: each group's line, 2 points wide across the axes (over a thousand
    # pixels of its colour), and its points and whiskers in the colour of its row.
    val_loss, final, _ = written
    for color in TAB10[:2]:
        assert pixels_of(val_loss, color) > 1000
        assert pixels_of(final, color) > 300
    assert pixels_of(val_loss, TAB10[2]) == pixels_of(final, TAB10[2]) == 0


def test_the_loss_plot_draws_each_groups_mean_and_band(
    sweep: Path, tmp_path: Path, figures: Drawn
) -> None:
    figures.save = False
    rows = rep.load(sweep, baseline="mask=static")
    rep.write_plots(rows, tmp_path / "figures", "sweep")
    (ax,) = figures["val_loss.png"].axes
    lines = {line.get_label(): line for line in ax.lines}
    assert list(lines) == ["mask=dynamic (n=2)", "mask=static(K=1) [baseline] (n=3)"]
    dynamic, static = lines.values()
    assert dynamic.get_xdata().tolist() == static.get_xdata().tolist() == [10, 20, 30, 40]
    # dynamic: 3.0 and 2.8 at step 30; static: 3.5, 3.6, 3.7 at 30, 3.4, 4.4, 5.4 at 40.
    assert dynamic.get_ydata().tolist() == pytest.approx([5.0, 3.8, 2.9, 2.9])
    assert static.get_ydata().tolist() == pytest.approx([5.0, 4.0, 3.6, 4.4])
    # The bands: min-max of two seeds, mean +- the sample std of three (1.0 at step 40).
    band = {}
    for collection in ax.collections:
        vertices = collection.get_paths()[0].vertices
        band[len(band)] = {x: sorted(vertices[vertices[:, 0] == x, 1]) for x in (30, 40)}
    assert (band[0][30][0], band[0][30][-1]) == pytest.approx((2.8, 3.0))
    assert (band[1][40][0], band[1][40][-1]) == pytest.approx((3.4, 5.4))


def _points(ax: Any) -> list[tuple[float, float, float]]:
    """Each group's (mean, low, high) as drawn: the point and its whisker."""
    drawn = []
    for container in ax.containers:
        mean = float(container.lines[0].get_xdata()[0])
        ((low, _), (high, _)) = container.lines[2][0].get_segments()[0]
        drawn.append((mean, float(low), float(high)))
    return drawn


def _seed_dots(ax: Any) -> list[list[float]]:
    from matplotlib.collections import PathCollection

    return [c.get_offsets()[:, 0].tolist() for c in ax.collections if isinstance(c, PathCollection)]


@pytest.mark.slow
def test_the_metrics_plot_shows_each_groups_mean_interval_and_seeds_on_a_fitted_axis(
    sweep: Path, tmp_path: Path, figures: Drawn
) -> None:
    figures.save = False
    rows = rep.load(sweep, baseline="mask=static")
    rep.write_plots(rows, tmp_path / "figures", "sweep")
    panels = {ax.get_title(): ax for ax in figures["final_metrics.png"].axes}
    assert list(panels) == ["val loss", "best val loss", "val acc"]
    # Per seed, from the planted losses (dynamic first, static second; acc = 0.3 - final/100).
    seeds = {
        "val loss": ([2.9, 2.9], [3.4, 4.4, 5.4]),
        "best val loss": ([2.9, 2.8], [3.4, 3.6, 3.7]),
        "val acc": ([0.271, 0.271], [0.266, 0.256, 0.246]),
    }
    for title, (dynamic, static) in seeds.items():
        ax = panels[title]
        means = [mean for mean, _, _ in _points(ax)]
        assert means == pytest.approx([np.mean(dynamic), np.mean(static)]), title
        assert _seed_dots(ax) == [pytest.approx(dynamic), pytest.approx(static)], title
        # The axis fits what is drawn: not from zero, and no percentage past 100%.
        drawn = [v for point in _points(ax) for v in point] + dynamic + static
        left, right = ax.get_xlim()
        assert min(drawn) - 0.2 * (max(drawn) - min(drawn)) < left < min(drawn), title
        assert max(drawn) < right < max(drawn) + 0.5 * (max(drawn) - min(drawn)), title
    # The static whisker of val loss: the 95% CI of three seeds, t(0.975, 2) = 4.3027 times
    # the standard error 1/sqrt(3).
    _, low, high = _points(panels["val loss"])[1]
    assert (low, high) == pytest.approx((4.4 - 4.3027 / 3**0.5, 4.4 + 4.3027 / 3**0.5), abs=1e-3)
    assert [t.get_text() for t in panels["val loss"].texts] == ["2.900", "4.400"]
    assert [t.get_text() for t in panels["val acc"].texts] == ["27.10%", "25.60%"]


@pytest.mark.slow
def test_the_differences_plot_shows_each_seeds_paired_difference_and_zero(
    tmp_path: Path, figures: Drawn
) -> None:
    """Three seeds each: dynamic's final losses 3.0, 3.2, 3.1 against static's 3.5, 3.6,
    3.8, so the paired differences are -0.5, -0.4, -0.7."""
    figures.save = False
    for seed, (dyn, sta) in enumerate([(3.0, 3.5), (3.2, 3.6), (3.1, 3.8)]):
        write_run(tmp_path / "sweep" / f"d{seed}", seed, None, [4.0, dyn])
        write_run(tmp_path / "sweep" / f"s{seed}", seed, 1, [4.0, sta])
    rows = rep.load(tmp_path / "sweep", baseline="mask=static")
    written = rep.write_plots(rows, tmp_path / "figures", "sweep")
    assert [p.name for p in written] == ["val_loss.png", "final_metrics.png", "differences.png"]
    figure = figures["differences.png"]
    panels = {ax.get_title(): ax for ax in figure.axes if ax.get_visible()}
    assert list(panels) == ["val loss − baseline", "best val loss − baseline",
                            "val acc − baseline"]  # fmt: skip
    ax = panels["val loss − baseline"]
    diffs = [-0.5, -0.4, -0.7]
    assert _seed_dots(ax) == [pytest.approx(diffs)]
    ((mean, low, high),) = _points(ax)
    half = 4.3027 * np.std(diffs, ddof=1) / 3**0.5  # t(0.975, 2) x the standard error
    assert (mean, low, high) == pytest.approx(
        (np.mean(diffs), np.mean(diffs) - half, np.mean(diffs) + half), abs=1e-3
    )
    assert [t.get_text() for t in ax.texts] == ["-0.533"]
    (zero,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert list(zero.get_xdata()) == [0.0, 0.0]
    left, right = ax.get_xlim()
    assert left < min(diffs) and right > 0.0  # zero is on the axis, and every seed
    # Without a baseline there is nothing to differ from: no differences.png.
    again = rep.write_plots(rep.load(tmp_path / "sweep"), tmp_path / "plain", "sweep")
    assert [p.name for p in again] == ["val_loss.png", "final_metrics.png"]


def test_curve_is_the_mean_and_std_on_shared_steps(sweep: Path) -> None:
    rows = {row.label: row for row in rep.load(sweep)}
    static = curve(rows["mask=static(K=1)"])
    assert static is not None and static.n == 3
    assert static.steps.tolist() == [10, 20, 30, 40]
    last = [3.4, 4.4, 5.4]
    assert static.mean[-1] == pytest.approx(np.mean(last))
    assert static.high[-1] - static.mean[-1] == pytest.approx(1.0)  # sample std of 3.4, 4.4, 5.4
    assert static.low[-1] == pytest.approx(np.mean(last) - 1.0)

    dynamic = curve(rows["mask=dynamic"])  # two seeds: the band is their range
    assert dynamic is not None and dynamic.n == 2
    assert dynamic.mean.tolist() == pytest.approx([5.0, 3.8, 2.9, 2.9])
    assert (dynamic.low[2], dynamic.high[2]) == pytest.approx((2.8, 3.0))


def test_curve_interpolates_when_validation_schedules_differ(tmp_path: Path) -> None:
    write_run(tmp_path / "a", 0, 1, [4.0, 3.0, 2.0], steps=[10, 20, 30])
    write_run(tmp_path / "b", 1, 1, [5.0, 3.0], steps=[15, 35])
    (row,) = rep.load(tmp_path)
    c = curve(row)
    assert c is not None
    # The union of steps within the range both runs cover: 15 to 30.
    assert c.steps.tolist() == [15, 20, 30]
    a = [3.5, 3.0, 2.0]  # run a at 15 interpolated between 4.0 and 3.0
    b = [5.0, 5.0 - 2.0 * 5 / 20, 5.0 - 2.0 * 15 / 20]
    assert c.mean.tolist() == pytest.approx([(x + y) / 2 for x, y in zip(a, b, strict=True)])


def test_runs_stopping_early_keep_the_steps_all_share(tmp_path: Path) -> None:
    write_run(tmp_path / "a", 0, 1, [4.0, 3.0, 2.0, 1.5])
    write_run(tmp_path / "b", 1, 1, [4.2, 3.2])
    (row,) = rep.load(tmp_path)
    c = curve(row)
    assert c is not None
    assert (c.steps.tolist(), c.mean.tolist()) == ([10, 20], pytest.approx([4.1, 3.1]))


@pytest.mark.slow
def test_eight_groups_with_long_labels(tmp_path: Path, figures: Drawn) -> None:
    for g in range(8):
        for seed in range(3):
            write_run(
                tmp_path / f"g{g}_s{seed}",
                seed,
                [1, 10, None][g % 3],
                [6.0, 4.0 + 0.1 * g, 3.0 + 0.1 * g + 0.05 * seed],
                model={"name": f"model_{g // 3}", "d_model": 128 * (1 + g // 3)},
                data={"name": "wikitext-103-raw", "path": f"/datasets/corpus_{g % 2}/train.txt"},
            )
    rows = rep.load(tmp_path)
    assert len(rows) == 8
    written = rep.write_plots(rows, tmp_path / "plots", "a sweep with eight groups")
    assert [png_size(p) for p in written] == [PIXELS, PIXELS]
    # Every group is drawn, and told apart: eight lines in eight colours, each ending at its
    # group's mean final loss (3.0 + 0.1 g + 0.05, the seeds' mean), each labelled.
    (ax,) = figures["val_loss.png"].axes
    assert len(ax.lines) == 8 and len({line.get_color() for line in ax.lines}) == 8
    assert sorted(line.get_ydata()[-1] for line in ax.lines) == pytest.approx(
        [3.05 + 0.1 * g for g in range(8)]
    )
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert len(legend) == 8 and all(label.endswith("(n=3)") for label in legend)
    for color in TAB10[:8]:
        assert pixels_of(written[0], color) > 300
    means = [mean for mean, _, _ in _points(figures["final_metrics.png"].axes[0])]
    assert sorted(means) == pytest.approx([3.05 + 0.1 * g for g in range(8)])


def test_runs_without_history_leave_out_the_loss_plot(tmp_path: Path) -> None:
    write_run(tmp_path / "run" / "a", 0, 1, None)
    out = tmp_path / "plots"
    with pytest.warns(rep.PlotWarning, match="no done run has a readable history.csv"):
        written = rep.write_plots(rep.load(tmp_path / "run"), out, "old runs")
    assert written == [out / "final_metrics.png"]


def test_plot_onto_a_file_is_refused(sweep: Path, tmp_path: Path) -> None:
    target = tmp_path / "taken.png"
    target.write_bytes(b"not a folder")
    with pytest.raises(UserError) as info:
        rep.write_plots(rep.load(sweep), target, "sweep")
    assert str(info.value) == f"--plot wants a folder to write PNGs into; {target} is a file"
    result = CliRunner().invoke(app, ["report", str(sweep), "--plot", str(target)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert (
        result.stderr
        == f"dmx: error: --plot wants a folder to write PNGs into; {target} is a file\n"
    )
    assert target.read_bytes() == b"not a folder"


@pytest.mark.slow
def test_cli_plot_prints_the_paths(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "figs"
    result = CliRunner().invoke(
        app, ["report", str(sweep), "--baseline", "mask=static", "--plot", str(out), "-f", "md"]
    )
    assert result.exit_code == 0, result.stderr
    names = ["val_loss.png", "final_metrics.png", "differences.png"]
    assert result.stderr.splitlines() == [f"wrote {out / name}" for name in names]
    assert result.stdout.startswith("| group | n |")  # the report itself stays clean


@pytest.mark.slow
def test_wandb_offline_writes_a_report_run(sweep: Path, tmp_path: Path) -> None:
    """The conftest sets WANDB_MODE=offline and WANDB_DIR=tmp_path."""
    result = CliRunner().invoke(
        app, ["report", str(sweep), "--baseline", "mask=static", "--wandb", "-f", "json"]
    )
    assert result.exit_code == 0, result.stderr
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    assert len(list(run_dir.glob("run-*.wandb"))) == 1
    assert result.stderr.splitlines()[-1] == (
        f"W&B report run saved offline in {run_dir}; upload it with: wandb sync {run_dir}"
    )
    # The table: label, n, statistics, and the comparison, as logged.
    (table_file,) = (run_dir / "files" / "media" / "table").glob("report_*.table.json")
    table = json.loads(table_file.read_text())
    columns = table["columns"]
    assert columns[:5] == [
        "label",
        "n",
        "final_val_loss_mean",
        "final_val_loss_std",
        "final_val_loss_ci95",
    ]
    assert columns[-8:] == [
        "baseline",
        "final_val_loss_delta",
        "final_val_loss_p",
        "best_val_loss_delta",
        "best_val_loss_p",
        "final_val_acc_delta",
        "final_val_acc_p",
        "wandb_runs",  # the training runs it summarises: their W&B ids (offline)
    ]
    dynamic = dict(zip(columns, table["data"][0], strict=True))
    assert sorted(dynamic["wandb_runs"].split()) == ["id-dynamic_s0", "id-dynamic_s1"]
    report = json.loads(result.stdout)
    assert dynamic["label"] == "mask=dynamic"
    assert dynamic["final_val_loss_delta"] == pytest.approx(report[0]["final_val_loss"]["delta"])
    assert dynamic["final_val_loss_delta"] == pytest.approx(2.9 - (3.4 + 4.4 + 5.4) / 3)
    assert dynamic["final_val_loss_p"] == pytest.approx(report[0]["final_val_loss"]["p"])
    # --wandb without --plot draws the plots in a temporary folder, for the run only.
    media = run_dir / "files" / "media" / "images"
    assert sorted(p.name.split("_0_")[0] for p in media.iterdir()) == [
        "differences",
        "final_metrics",
        "val_loss",
    ]


def _adaptive_record(shift: float) -> dict[str, Any]:
    """adaptive_rates.json as AdaptiveRates.record writes it, rates spreading over 3 updates."""
    history = []
    for k, step in enumerate((20, 40, 60)):
        spread = 0.01 * (k + 1) + shift
        quantiles = {
            f"adaptive_rate_p{q:02d}": 0.15 + spread * (q - 50) / 50 for q in (5, 25, 50, 75, 95)
        }
        bands = [0.15 - spread, 0.15 - spread / 2, 0.15 + spread / 2, 0.15 + spread]
        history.append({"step": step, **quantiles, "adaptive_rate_std": spread, "bands": bands})
    bands = [{"ids": 3, "token_share": 0.25} for _ in range(4)]
    return {"prob": 0.15, "bands": bands, "history": history}


@pytest.mark.slow
def test_adaptive_rates_png_averages_the_seeds_tables(sweep: Path, tmp_path: Path) -> None:
    for seed, shift in ((0, 0.0), (1, 0.02)):
        write_json(sweep / f"dynamic_s{seed}" / "adaptive_rates.json", _adaptive_record(shift))
    rows = rep.load(sweep)
    dynamic = next(r for r in rows if r.strategy == "dynamic")
    trace = adaptive_trace(dynamic)
    assert trace is not None and trace.n == 2
    assert trace.steps.tolist() == [20.0, 40.0, 60.0]
    assert trace.quantiles["p95"].tolist() == pytest.approx(
        [0.15 + 0.9 * s for s in (0.02, 0.03, 0.04)]
    )
    assert trace.bands.shape == (3, 4)
    static = next(r for r in rows if r.strategy == "static(K=1)")
    assert adaptive_trace(static) is None
    out = tmp_path / "figures"
    written = rep.write_plots(rows, out, "sweep")
    assert out / "adaptive_rates.png" in written
    assert png_size(out / "adaptive_rates.png") == PIXELS


@pytest.mark.slow
def test_no_adaptive_run_no_adaptive_png(sweep: Path, tmp_path: Path) -> None:
    rep.write_plots(rep.load(sweep), tmp_path / "figures", "sweep")
    assert not (tmp_path / "figures" / "adaptive_rates.png").exists()
