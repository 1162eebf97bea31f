"""``dmx bench``: training, masking and preprocessing speed, measured in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dmx.cli.common import fail
from dmx.common.errors import UserError


def bench(
    vs_hf: Annotated[
        bool,
        typer.Option(
            "--vs-hf",
            help="Also train HuggingFace's BertForMaskedLM (with its collator) at the same "
            "shape with sdpa and with eager attention, and dmx with its head at every "
            "position, alternating; ends with ratio_vs_hf=X.XX (dmx against the faster HF) "
            "impl_ratio_vs_hf=Y.YY (the full-head dmx: implementation alone).",
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
    pll: Annotated[
        bool,
        typer.Option(
            "--pll",
            help="Time zero-shot scoring (PLL-word-l2r) of minimal pairs against a batched "
            "transformers scorer on the same weights; ends with pll_ratio_vs_hf=X.XX.",
        ),
    ] = False,
    run: Annotated[
        Path | None,
        typer.Option("--run", help="--pll: score this run's kept encoder (default: a fresh one)."),
    ] = None,
    blimp_dir: Annotated[
        Path | None,
        typer.Option(
            "--blimp-dir", help="--pll: BLiMP's data/ folder (default: the embedded pairs)."
        ),
    ] = None,
    pairs: Annotated[
        int | None, typer.Option("--pairs", min=1, help="--pll: pairs per paradigm (default: all).")
    ] = None,
) -> None:
    """Measure training speed in this process, next to HuggingFace at the same shape.

    Times dmx's bare training step phase by phase, the real `dmx train` loop, and (with
    --vs-hf) dmx with its head at every position and HuggingFace's BertForMaskedLM with
    sdpa and with eager attention, alternating round by round, and reports tokens/s, peak
    memory and the fraction of this machine's measured matmul peak.

    [bold]Examples[/bold]

      dmx bench --vs-hf             [dim]# model=small: 4 x 256, vocab 8192, 32 x 128[/dim]

      dmx bench --vs-hf --precision bf16

      dmx bench --model base --seq-len 512 --batch-size 16

      dmx bench --masking

      dmx bench --masking --seq-len 512 --batch-size 8

      dmx bench --data --tokens 100000000      [dim]# preprocessing rate, 100M tokens[/dim]

      dmx bench --pll --run RUN --blimp-dir blimp/data --pairs 100
    """
    modes = [flag for flag, on in (("--masking", masking), ("--data", data), ("--pll", pll)) if on]
    training = [flag for flag, on in (("--vs-hf", vs_hf), ("--compile", compile_blocks)) if on]
    if len(modes) > 1 or (modes and training):  # --masking and --data time no training
        clash = " and ".join([*modes, *training])
        raise fail(f"{clash} are separate benchmarks; run them one at a time")
    if pll:
        _bench_pll(model, run, blimp_dir, pairs, precision, vs_hf=True)
    elif masking:
        _bench_masking(seq_len, batch_size, rounds or 7)
    elif data:
        _bench_data(tokens, vocab, seq_len)
    else:
        shape = {"n_layers": layers, "d_model": hidden, "n_heads": heads, "d_ff": ffn}
        timing = {"warmup": warmup, "steps": steps, "rounds": rounds or 3}
        _bench_training(
            model,
            shape,
            seq_len,
            batch_size,
            vocab,
            precision,
            timing,
            vs_hf=vs_hf,
            loop=loop,
            compile_blocks=compile_blocks,
        )


def _bench_training(
    model: str,
    shape: dict[str, int | None],
    seq_len: int,
    batch_size: int,
    vocab: int,
    precision: str,
    timing: dict[str, int],
    *,
    vs_hf: bool,
    loop: bool,
    compile_blocks: bool,
) -> None:
    from rich.console import Console

    from dmx.bench.model import bench_model, bench_overrides, check_precision
    from dmx.bench.results import render
    from dmx.config.validate import compose_checked

    rows = (timing["steps"] + timing["warmup"]) * batch_size
    overrides = bench_overrides(model, shape, seq_len, batch_size, rows=rows)
    overrides.append(f"impl.compile={str(compile_blocks).lower()}")
    console = Console(stderr=True)
    try:
        check_precision(precision)  # before the corpus and the models: a typo costs no wait
        result = bench_model(
            compose_checked(overrides),
            precision=precision,
            vs_hf=vs_hf,
            loop=loop,
            vocab_size=vocab,
            progress=lambda line: console.log(line),
            **timing,
        )
    except UserError as err:
        raise fail(err) from None
    table, lines = render(result)
    Console().print(table)
    for line in lines:
        typer.echo(line)


def _bench_pll(
    model: str,
    run: Path | None,
    blimp_dir: Path | None,
    pairs: int | None,
    precision: str,
    *,
    vs_hf: bool,
) -> None:
    from dmx.bench.model import check_precision
    from dmx.bench.pll import bench_pll
    from dmx.data.embedded.pairs import embedded_pairs
    from dmx.data.minimal_pairs import read_blimp, subset
    from dmx.run.allocator import keep_freed_memory
    from dmx.training.encoder import load_encoder, new_encoder

    keep_freed_memory()  # as dmx eval and dmx train run; both scorers profit alike
    try:
        check_precision(precision)
        if run is not None:
            from dmx.downstream.export import run_config

            encoder, tokenizer = load_encoder(run_config(run), run)
        else:
            from dmx.config.validate import compose_checked
            from dmx.data.corpus import load_corpus

            config = compose_checked([f"model={model}"], devices=False)
            tokenizer = load_corpus(config.data, require_batch=False).tokenizer
            encoder = new_encoder(config, tokenizer.get_vocab_size())
        suite = read_blimp(str(blimp_dir), None) if blimp_dir else embedded_pairs(0)
        suite = [subset(p, pairs, 0) for p in suite]
        timings = bench_pll(encoder, tokenizer, suite, "pll_word_l2r", bf16=precision == "bf16")
    except UserError as err:
        raise fail(err) from None
    import torch

    s = encoder.shape
    typer.echo(
        f"PLL-word-l2r, {timings[0].pairs:,} pairs ({'BLiMP' if blimp_dir else 'embedded'}), "
        f"encoder {s.n_layers} x {s.d_model}, vocab {s.vocab_size}, {precision}, "
        f"{torch.get_num_threads()} threads"
    )
    for t in timings:
        typer.echo(
            f"{t.label:28} {t.seconds:8.1f} s  {t.pairs_per_s:8,.0f} pairs/s  acc {t.acc:.2%}"
        )
    if len(timings) > 1:
        typer.echo(f"pll_ratio_vs_hf={timings[0].pairs_per_s / timings[1].pairs_per_s:.2f}")


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

    from dmx.bench.masking import HF_LABEL, bench_masking

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
