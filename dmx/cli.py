"""The `dmx` command: train, sweep, report.

Thin on purpose. ``train`` and ``sweep`` hand their arguments to the real ``@hydra.main``
entry in :mod:`dmx.train` (by setting ``sys.argv``), so Hydra's overrides, multirun and
launchers work unchanged. Before that they compose the config once with Hydra's compose
API, so a mistake (an unknown choice, a bad value) stops at start with one line naming the
fix and exit code 2, before anything is trained or written.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from dmx import __version__
from dmx.errors import UserError, error_line
from dmx.overrides import hydra_overrides, is_override, override_value

try:  # Typer vendors Click since 0.2x; older Typer runs on Click itself
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[no-redef]


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """Click's usage errors (an unknown option, a missing argument, an unknown command)
    as dmx's one line and exit code 2, instead of a usage box."""
    try:
        yield
    except NoArgsIsHelpError:  # a bare `dmx`: the help, as asked for
        raise
    except UsageError as err:
        message = err.format_message().rstrip(".")
        command = err.ctx.command_path if err.ctx is not None else "dmx"
        raise fail(f"{message[:1].lower()}{message[1:]}; see `{command} --help`") from None


class _Group(TyperGroup):
    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        with _one_line_usage_errors():  # `dmx --bogus`
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_usage_errors():  # `dmx nosuch`, `dmx report DIR --bogus`
            return super().invoke(ctx)


app = typer.Typer(
    cls=_Group,
    help="dmx: does dynamic masking beat static masking, for your model, data and budget?",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,  # locals may hold secrets; a fault shows the stack only
)

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
DEFAULT_EXPERIMENT = "static_vs_dynamic"


def fail(message: object) -> typer.Exit:
    typer.echo(error_line(message), err=True)
    return typer.Exit(code=UserError.exit_code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dmx {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """dmx: does dynamic masking beat static masking, for your model, data and budget?"""


# Hydra flags after which nothing runs: the config or help is printed instead.
INSPECT_FLAGS = {
    "--cfg",
    "-c",
    "--info",
    "-i",
    "--help",
    "-h",
    "--hydra-help",
    "--shell-completion",
}


def _run_hydra(args: list[str]) -> None:
    from dmx import train as train_module

    # Hydra records the entry as the job's program, and Lightning re-runs it to start the
    # other processes of a data-parallel run: it must be dmx-train (installed beside dmx),
    # not dmx, whose own parser would not take Hydra's arguments.
    beside = Path(sys.argv[0]).with_name("dmx-train")
    entry = str(beside) if beside.is_file() else shutil.which("dmx-train") or sys.argv[0]
    # Hydra's parser wants its flags (and their values) before the overrides.
    flags = [a for a in args if not is_override(a)]
    saved = sys.argv
    sys.argv = [entry, *flags, *(a for a in args if is_override(a))]
    try:
        train_module.main()
    finally:
        sys.argv = saved


def _check_flags(args: list[str], command: str) -> None:
    """Hydra's flags read by Hydra's own parser, so that a mistake (``--bogus``, a word
    without ``=``) is one line naming the fix, not Hydra's usage text."""
    from hydra._internal.utils import get_args_parser

    see = f"see `dmx {command} --help`"

    def error(message: str) -> NoReturn:
        raise UserError(f"{message}; {see}")

    parser = get_args_parser()
    parser.error = error  # type: ignore[method-assign]
    parsed, unknown = parser.parse_known_args([a for a in args if not is_override(a)])
    if unknown:
        error(f"no such option: {' '.join(unknown)}")
    for word in parsed.overrides:  # a positional argument, but no key=value
        error(f"{word!r} is not an override; give key=value (e.g. mask=dynamic)")
    modes = ("run", "multirun", "cfg", "info", "shell_completion")
    if sum(getattr(parsed, m) not in (None, False) for m in modes) > 1:  # as Hydra counts them
        error("give only one of --run, --multirun, --cfg, --info and --shell-completion")


def _check(args: list[str], *, multirun: bool, command: str) -> list[str]:
    """Every value checked before anything runs; returns the first run's overrides."""
    from dmx.validate import check_overrides

    try:
        _check_flags(args, command)
        return check_overrides(args, multirun=multirun)
    except UserError as err:
        raise fail(err) from None


@app.command(context_settings=PASS_THROUGH)
def train(
    ctx: typer.Context,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Hydra overrides, key=value.")
    ] = None,
) -> None:
    """Train one run. Arguments are Hydra overrides; the run folder lands under outputs/runs/.

    [bold]Examples[/bold]

      dmx train mask=dynamic

      dmx train mask=static mask.copies=10 model=small trainer.max_epochs=20 seed=3

      dmx train mask=dynamic logger=none trainer.max_epochs=1

      dmx train hydra.run.dir=runs/my_run mask.prob=0.4

      dmx train --cfg job          [dim]# print the composed config and stop[/dim]
    """
    args = [*(overrides or []), *ctx.args]
    multirun = any(a in ("-m", "--multirun") for a in args)
    _check(args, multirun=multirun, command="train")
    _run_hydra(args)


@app.command(context_settings=PASS_THROUGH)
def sweep(
    ctx: typer.Context,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Hydra overrides, key=value.")
    ] = None,
    report_format: Annotated[
        str,
        typer.Option("--format", help="Format of the closing report: table, md, csv, json, latex."),
    ] = "table",
    per_seed: Annotated[
        bool, typer.Option("--per-seed", help="After the report, the same runs seed by seed.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Train every run again (resume=false), even those the sweep folder holds "
            "finished.",
        ),
    ] = False,
    wandb: Annotated[
        bool,
        typer.Option(
            "--wandb",
            help="Train nothing here: write the grid as a W&B sweep (wandb_sweep.yaml in the "
            "sweep folder), register it when online with an API key, and print the "
            "`wandb agent` command that runs it on any number of machines.",
        ),
    ] = False,
) -> None:
    """Run a grid (Hydra multirun) of an experiment preset, then print its report.

    Without experiment=NAME it runs experiment=static_vs_dynamic: mask in {static, dynamic}
    x seed in {0, 1, 2}. Every run lands in one sweep folder under outputs/sweeps/.

    [bold]Examples[/bold]

      dmx sweep

      dmx sweep experiment=static_vs_dynamic seed=0,1,2,3,4

      dmx sweep mask=static,dynamic mask.prob=0.15,0.4 trainer.max_epochs=10

      dmx sweep hydra.sweep.dir=outputs/sweeps/my_sweep logger=none

      dmx sweep --per-seed         [dim]# then one row per seed: does the gap hold at each?[/dim]

      dmx sweep --force            [dim]# train every run again, finished or not[/dim]

      dmx sweep --wandb experiment=dupe_factor   [dim]# the same grid as a W&B sweep[/dim]
    """
    from dmx.report import check_format
    from dmx.validate import sweep_dir as resolve_sweep_dir

    try:
        check_format(report_format)
    except UserError as err:
        raise fail(err) from None
    args = [*(overrides or []), *ctx.args]
    args = [a for a in args if a not in ("-m", "--multirun")]
    if override_value(args, "experiment") is None:
        args.insert(0, f"experiment={DEFAULT_EXPERIMENT}")
    first_run = _check(args, multirun=True, command="sweep")
    if INSPECT_FLAGS & set(args):  # print the config (or help) of the sweep; run nothing
        _run_hydra(args)
        return
    # conf/config.yaml names the sweep folder; it is resolved once, here, so the report
    # below reads the very folder Hydra writes. The same command finds the same folder:
    # its finished runs train nothing, its unfinished ones resume.
    folder = override_value(args, "hydra.sweep.dir")
    if folder is None:
        folder = resolve_sweep_dir([*first_run, *hydra_overrides(args)], grid=args)
        args.append(f"hydra.sweep.dir={folder}")
    if force:
        args.append("resume=false")
    if wandb:  # the same grid, run by W&B agents instead of this process
        from dmx import wandb_sweep

        try:
            spec = wandb_sweep.sweep_spec(args)
            sweep_id = wandb_sweep.save_sweep(spec, Path(folder))
        except UserError as err:
            raise fail(err) from None
        spec_path = Path(folder) / wandb_sweep.SPEC_FILE
        for line in wandb_sweep.next_steps(spec, spec_path, sweep_id):
            typer.echo(line)
        return
    _run_hydra(["--multirun", *args])
    typer.echo(f"\nsweep folder: {folder}")
    _print_report(Path(folder), report_format, None)
    if per_seed:
        typer.echo("\nSeed by seed:")
        _print_report(Path(folder), report_format, None, per_seed=True)


@app.command()
def report(
    folder: Annotated[
        Path, typer.Argument(help="A sweep folder, a run folder, or any folder of runs.")
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table, md, csv, json or latex.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    per_seed: Annotated[
        bool, typer.Option("--per-seed", help="One row per seed instead of pooling seeds.")
    ] = False,
    baseline: Annotated[
        list[str] | None,
        typer.Option(
            "--baseline",
            "-b",
            metavar="KEY=VALUE",
            help="Compare every group with this one: Δ, p (paired by seed when it can), "
            "effect size, seeds for 80% power. KEY is a config key or a label name "
            "(mask=static, mask.copies=1, attention=full); repeat to narrow down.",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="DIR",
            help="Write val_loss.png and final_metrics.png into this folder.",
        ),
    ] = None,
    wandb: Annotated[
        bool,
        typer.Option(
            "--wandb",
            help="Also log the report (table, plots) as a W&B run; offline unless W&B "
            "credentials exist or WANDB_MODE says otherwise.",
        ),
    ] = False,
) -> None:
    """Gather every run under FOLDER into one table, grouped by what differs (seeds pooled).

    [bold]Examples[/bold]

      dmx report outputs/sweeps/static_vs_dynamic_2026-11-21_10-00-00

      dmx report outputs/sweeps/my_sweep --baseline mask=static   [dim]# Δ and p vs static[/dim]

      dmx report outputs/sweeps/my_sweep --baseline mask.copies=1 --plot figures/

      dmx report outputs/ --format md

      dmx report outputs/sweeps/my_sweep --format latex --baseline mask=dynamic -o table.tex

      dmx report outputs/sweeps/my_sweep --format json -o results.json

      dmx report outputs/sweeps/my_sweep --wandb        [dim]# then wandb sync, as printed[/dim]

      dmx report outputs/sweeps/my_sweep --per-seed     [dim]# does it hold seed by seed?[/dim]
    """
    _print_report(
        folder, fmt, output, per_seed=per_seed, baseline=baseline or [], plot=plot, wandb=wandb
    )


@app.command()
def bench(
    vs_hf: Annotated[
        bool,
        typer.Option(
            "--vs-hf",
            help="Also train HuggingFace's BertForMaskedLM (with its collator) at the same "
            "shape, alternating with dmx; ends with ratio_vs_hf=X.XX.",
        ),
    ] = False,
    precision: Annotated[
        str,
        typer.Option("--precision", help="fp32, or bf16 (autocast, as Lightning's bf16-mixed)."),
    ] = "fp32",
    masking: Annotated[
        bool,
        typer.Option(
            "--masking", help="Time every token-masking strategy against HuggingFace's collator."
        ),
    ] = False,
    model: Annotated[
        str, typer.Option("--model", help="Model preset (conf/model/) whose shape is timed.")
    ] = "small",
    layers: Annotated[
        int | None, typer.Option("--layers", min=1, help="Override the preset.")
    ] = None,
    hidden: Annotated[
        int | None, typer.Option("--hidden", min=8, help="Override the preset.")
    ] = None,
    heads: Annotated[
        int | None, typer.Option("--heads", min=1, help="Override the preset.")
    ] = None,
    ffn: Annotated[int | None, typer.Option("--ffn", min=8, help="Override the preset.")] = None,
    vocab: Annotated[int, typer.Option("--vocab", min=64, help="Vocabulary of the models.")] = 8192,
    seq_len: Annotated[int, typer.Option("--seq-len", min=8, help="Sequence length.")] = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size.")] = 32,
    steps: Annotated[int, typer.Option("--steps", min=2, help="Timed steps per round.")] = 10,
    warmup: Annotated[int, typer.Option("--warmup", min=1, help="Untimed steps per round.")] = 3,
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds", min=1, help="Alternating rounds; the median counts (3; --masking: 7)."
        ),
    ] = None,
    loop: Annotated[
        bool, typer.Option("--loop/--no-loop", help="Also time the real dmx train loop.")
    ] = True,
    compile_blocks: Annotated[
        bool, typer.Option("--compile", help="torch.compile dmx's encoder blocks (impl.compile).")
    ] = False,
    data: Annotated[
        bool,
        typer.Option(
            "--data",
            help="Time preprocessing a synthetic text corpus into the token cache, and "
            "reading it back.",
        ),
    ] = False,
    tokens: Annotated[
        int, typer.Option("--tokens", min=10_000, help="--data: the corpus size in tokens.")
    ] = 10_000_000,
) -> None:
    """Measure training speed in this process, next to HuggingFace at the same shape.

    Times dmx's bare training step phase by phase, the real `dmx train` loop, and (with
    --vs-hf) HuggingFace's BertForMaskedLM, alternating round by round, and reports
    tokens/s, peak memory and the fraction of this machine's measured matmul peak.

    [bold]Examples[/bold]

      dmx bench --vs-hf             [dim]# model=small: 4 x 256, vocab 8192, 32 x 128[/dim]

      dmx bench --vs-hf --precision bf16

      dmx bench --model base --seq-len 512 --batch-size 16

      dmx bench --masking

      dmx bench --masking --seq-len 512 --batch-size 8

      dmx bench --data --tokens 100000000      [dim]# preprocessing rate, 100M tokens[/dim]
    """
    from rich.console import Console

    if masking:
        _bench_masking(seq_len, batch_size, rounds or 7)
        return
    if data:
        _bench_data(tokens, vocab, seq_len)
        return
    from dmx.bench.model import bench_model, render
    from dmx.validate import compose_checked

    shape = {"n_layers": layers, "d_model": hidden, "n_heads": heads, "d_ff": ffn}
    # Enough documents that an epoch of the embedded corpus outlasts a round's steps (about
    # 0.7 sequences of 128 tokens per document).
    n_docs = max(350, 2 * (steps + warmup) * batch_size * max(1, seq_len // 128))
    overrides = [
        f"model={model}",
        *(f"model.{k}={v}" for k, v in shape.items() if v is not None),
        f"model.max_seq_len={seq_len}",
        f"data.seq_len={seq_len}",
        f"data.batch_size={batch_size}",
        f"data.n_docs={n_docs}",
        "mask=dynamic",
        "logger=none",
        f"impl.compile={str(compile_blocks).lower()}",
    ]
    console = Console(stderr=True)
    try:
        config = compose_checked(overrides)
        result = bench_model(
            config,
            precision=precision,
            vs_hf=vs_hf,
            loop=loop,
            warmup=warmup,
            steps=steps,
            rounds=rounds or 3,
            vocab_size=vocab,
            progress=lambda line: console.log(line),
        )
    except UserError as err:
        raise fail(err) from None
    table, lines = render(result)
    Console().print(table)
    for line in lines:
        typer.echo(line)


def _bench_data(tokens: int, vocab: int, seq_len: int) -> None:
    import tempfile

    from dmx.bench.data import bench_data

    with tempfile.TemporaryDirectory(prefix="dmx-bench-data-") as workdir:
        r = bench_data(tokens, Path(workdir), vocab_size=vocab, seq_len=seq_len)
    typer.echo(
        f"synthetic corpus: {r.text_mb:,.0f} MB of text, {r.tokens:,} tokens "
        f"(written in {r.write_s:.1f} s)"
    )
    typer.echo(
        f"preprocess (train BPE {vocab}, encode, write the memory-mapped cache): "
        f"{r.preprocess_s:.1f} s, {r.preprocess_tokens_per_s:,.0f} tokens/s"
    )
    typer.echo(f"open the cache again: {r.open_s * 1e3:.0f} ms")
    typer.echo(f"read {r.rows:,} random rows of {seq_len}: {r.read_tokens_per_s:,.0f} tokens/s")
    if r.peak_rss_mb is not None:
        typer.echo(f"peak resident memory of this process: {r.peak_rss_mb:,.0f} MB")
    typer.echo(f"preprocess_tokens_per_s={r.preprocess_tokens_per_s:.0f}")


def _bench_masking(seq_len: int, batch_size: int, rounds: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from dmx.bench import HF_LABEL, bench_masking

    try:
        timings, hf = bench_masking(seq_len=seq_len, batch_size=batch_size, rounds=rounds)
    except UserError as err:
        raise fail(err) from None
    table = Table(
        title=f"Masking {batch_size} x {seq_len} tokens, examples to masked batch "
        f"(median of {rounds} rounds; torch threads: {__import__('torch').get_num_threads()})"
    )
    for header in ("strategy", "µs / batch", "sequences/s", "vs collator"):
        table.add_column(header, justify="left" if header == "strategy" else "right")
    ratios = []
    for t in timings:
        ratio = t.sequences_per_s / hf.sequences_per_s
        ratios.append(ratio)
        table.add_row(
            t.label,
            f"{t.seconds_per_batch * 1e6:,.0f}",
            f"{t.sequences_per_s:,.0f}",
            f"{ratio:.2f}x",
        )
    table.add_row(
        HF_LABEL, f"{hf.seconds_per_batch * 1e6:,.0f}", f"{hf.sequences_per_s:,.0f}", "1.00x"
    )
    Console().print(table)
    typer.echo(f"min_ratio_vs_collator={min(ratios):.2f}")


def _print_report(
    folder: Path,
    fmt: str,
    output: Path | None,
    per_seed: bool = False,
    baseline: list[str] | None = None,
    plot: Path | None = None,
    wandb: bool = False,
) -> None:
    from dmx import report as report_module
    from dmx.runs import atomic_write_text

    if output is not None and fmt == "table":
        raise fail("--output writes text formats; add --format md, csv, json or latex")
    baseline = baseline or []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", report_module.SkippedRunWarning)
        warnings.simplefilter("always", report_module.PlotWarning)
        try:
            # Every option checked before a run is read: a typo costs no wait.
            report_module.check_format(fmt)
            for spec in baseline:
                report_module.parse_baseline(spec)
            if plot is not None:
                report_module.check_plot_dir(plot)
            rows = report_module.load(folder, per_seed=per_seed, baseline=baseline)
            text = report_module.render(rows, fmt)
            plots = None
            if plot is not None:
                plots = report_module.write_plots(rows, plot, Path(folder).resolve().name)
        except UserError as err:
            raise fail(err) from None
        logged = report_module.log_report(rows, folder, plots, baseline) if wandb else None
    for warning in caught:
        typer.echo(f"dmx: warning: {warning.message}", err=True)
    if text is not None:
        if output is None:
            typer.echo(text, nl=not text.endswith("\n"))
        else:
            atomic_write_text(output, text)
            typer.echo(f"wrote {output}", err=True)
    for path in plots or []:
        typer.echo(f"wrote {path}", err=True)
    if logged is not None:
        if logged.url:
            typer.echo(f"W&B report run: {logged.url}", err=True)
        else:
            typer.echo(
                f"W&B report run saved offline in {logged.folder}; "
                f"upload it with: {logged.sync_command}",
                err=True,
            )
    elif wandb:
        typer.echo("W&B is disabled (WANDB_MODE=disabled): nothing logged", err=True)


if __name__ == "__main__":
    app()
