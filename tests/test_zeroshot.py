"""Zero-shot evaluation: minimal pairs read (BLiMP's files, the embedded grammar's pairs),
scored by PLL after pretraining and by `dmx eval` on finished runs, recorded like every
other metric; every mistake one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import invoke_dmx, tiny, train_run

from dmx.common.errors import UserError
from dmx.common.run_folder import read_metrics
from dmx.data.embedded import generate_documents
from dmx.data.embedded.pairs import PHENOMENA, embedded_pairs, read_embedded, sentences
from dmx.data.minimal_pairs import name_part, read_blimp, subset
from dmx.downstream.zeroshot import summarize


def write_blimp(folder: Path, paradigms: dict[str, tuple[str, str, int]]) -> Path:
    """BLiMP's layout: <UID>.jsonl, one pair a line, with BLiMP's fields (and extra ones)."""
    folder.mkdir(parents=True, exist_ok=True)
    for uid, (field, term, n) in paradigms.items():
        lines = [
            json.dumps(
                {
                    "sentence_good": f"the cat {i} sleeps .",
                    "sentence_bad": f"the cat {i} sleep .",
                    "field": field,
                    "linguistics_term": term,
                    "UID": uid,
                    "pairID": str(i),
                }
            )
            for i in range(n)
        ]
        (folder / f"{uid}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


BLIMP = {
    "anaphor_gender_agreement": ("morphology", "anaphor_agreement", 12),
    "causative": ("syntax", "argument_structure", 10),
    "existential_there_quantifiers_1": ("syntax/semantics", "quantifiers", 8),
}


def test_blimp_files_are_read_with_their_labels_as_metric_names(tmp_path: Path) -> None:
    folder = write_blimp(tmp_path / "blimp", BLIMP)
    paradigms = read_blimp(str(folder), None)
    assert [(p.uid, p.field, p.phenomenon, len(p.pairs)) for p in paradigms] == [
        ("anaphor_gender_agreement", "morphology", "anaphor_agreement", 12),
        ("causative", "syntax", "argument_structure", 10),
        ("existential_there_quantifiers_1", "syntax_semantics", "quantifiers", 8),
    ]
    assert paradigms[1].pairs[3].good == "the cat 3 sleeps ."
    assert paradigms[1].pairs[3].bad == "the cat 3 sleep ."
    chosen = read_blimp(str(folder), ["causative", "anaphor_gender_agreement"])
    assert [p.uid for p in chosen] == ["causative", "anaphor_gender_agreement"]
    assert name_part("s-selection") == "s_selection"


def test_a_subset_is_the_same_pairs_every_time_in_their_order(tmp_path: Path) -> None:
    (paradigm,) = read_blimp(str(write_blimp(tmp_path, {"p": ("syntax", "binding", 50)})), None)
    first = subset(paradigm, 10, seed=0)
    assert len(first.pairs) == 10 and first == subset(paradigm, 10, seed=0)
    numbers = [int(pair.good.split()[2]) for pair in first.pairs]
    assert numbers == sorted(numbers) and numbers != list(range(10))
    assert subset(paradigm, 10, seed=1) != first
    assert subset(paradigm, 100, seed=0) is paradigm and subset(paradigm, None, 0) is paradigm


@pytest.mark.parametrize(
    ("make", "paradigms", "expected"),
    [
        (
            lambda d: d / "missing",
            None,
            "eval.blimp_dir={d}/missing is not a folder; point it at BLiMP's data/ folder "
            "(one <paradigm>.jsonl a paradigm)",
        ),
        (
            lambda d: d,
            None,
            "eval.blimp_dir={d} holds no .jsonl files; point it at BLiMP's data/ folder (one "
            "<paradigm>.jsonl a paradigm)",
        ),
        (
            lambda d: write_blimp(d, BLIMP),
            ["causative", "island"],
            "eval.paradigms names island, which eval.blimp_dir={d} does not have; choose from "
            "its 3 paradigms (anaphor_gender_agreement, causative, "
            "existential_there_quantifiers_1) or set eval.paradigms=null",
        ),
    ],
    ids=["no-folder", "no-jsonl", "unknown-paradigm"],
)
def test_a_bad_blimp_folder_is_one_line(
    tmp_path: Path, make: object, paradigms: list[str] | None, expected: str
) -> None:
    folder = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(UserError) as err:
        read_blimp(str(folder), paradigms)
    assert str(err.value) == expected.format(d=tmp_path)


def test_a_line_that_is_not_a_pair_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"sentence_good": "a b .", "sentence_bad": "b a ."}\n{"sentence_good": "x"}\n')
    with pytest.raises(UserError) as err:
        read_blimp(str(tmp_path), None)
    assert str(err.value) == (
        f"{path} line 2 has no sentence_bad; a BLiMP pair needs sentence_good and "
        "sentence_bad (text)"
    )
    path.write_text("not json\n")
    with pytest.raises(UserError, match=r"line 1 is not JSON \(Expecting value\)"):
        read_blimp(str(tmp_path), None)


def test_the_embedded_pairs_follow_the_grammar_and_never_repeat_the_corpus() -> None:
    documents = generate_documents(0, 450)
    paradigms = read_embedded(0, None, documents)
    assert [p.uid for p in paradigms] == list(PHENOMENA)
    assert read_embedded(0, None, documents) == paradigms  # deterministic
    seen = sentences(documents)
    for paradigm in paradigms:
        assert len(set(paradigm.pairs)) == len(paradigm.pairs) == 300
        for pair in paradigm.pairs:
            good, bad = pair.good.split(), pair.bad.split()
            assert len(good) == len(bad)
            assert sum(a != b for a, b in zip(good, bad, strict=True)) == 1, pair
            assert not (sentences([pair.good]) | sentences([pair.bad])) & seen
    # Without the corpus to avoid, some subject-verb sentences are ones the corpus has.
    plain = {p.uid: p for p in embedded_pairs(0)}["subject_verb"]
    assert any(sentences([pair.good]) & seen for pair in plain.pairs)


def test_the_means_are_over_paradigms_by_field_and_by_phenomenon() -> None:
    results = {
        "a": {"acc": 0.5, "n": 10, "field": "syntax", "phenomenon": "binding"},
        "b": {"acc": 1.0, "n": 30, "field": "syntax", "phenomenon": "island_effects"},
        "c": {"acc": 0.6, "n": 20, "field": "semantics", "phenomenon": "binding"},
    }
    assert summarize("blimp", results) == pytest.approx(
        {
            "blimp_acc": 0.7,
            "blimp_syntax": 0.75,
            "blimp_semantics": 0.6,
            "blimp_binding": 0.55,
            "blimp_island_effects": 1.0,
            "blimp_pairs": 60,
        }
    )
    assert summarize("pairs", results) == pytest.approx(
        {"pairs_acc": 0.7, "pairs_binding": 0.55, "pairs_island_effects": 1.0}
    )


@pytest.mark.slow
def test_a_run_scores_the_pairs_and_dmx_eval_adds_blimp_without_pretraining(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    metrics = train_run(run, "eval=embedded", "eval.pairs_per_paradigm=20")
    assert metrics["status"] == "done"
    suite = json.loads((run / "eval" / "embedded.json").read_text())
    assert sorted(suite["paradigms"]) == sorted(PHENOMENA)
    accs = [p["acc"] for p in suite["paradigms"].values()]
    assert metrics["pairs_acc"] == pytest.approx(sum(accs) / len(accs))
    assert all(p["n"] == 20 for p in suite["paradigms"].values())
    assert (metrics["eval_scoring"], metrics["eval_encoder"]) == ("pll_word_l2r", "last")
    pretrained = (run / "encoder.pt").stat().st_mtime_ns

    folder = write_blimp(tmp_path / "blimp", BLIMP)
    args = ("eval", str(run), "eval=blimp", f"eval.blimp_dir={folder}")
    result = invoke_dmx(*args, cwd=tmp_path)
    after = read_metrics(run)
    assert result.stdout.splitlines()[-1] == (
        f"done: BLiMP {after['blimp_acc']:.1%}; pairs {after['pairs_acc']:.1%}; {run}"
    )
    assert after["blimp_pairs"] == 30 and after["pairs_acc"] == metrics["pairs_acc"]
    assert set(after) >= {"blimp_morphology", "blimp_syntax", "blimp_syntax_semantics"}
    assert set(after) >= {"blimp_anaphor_agreement", "blimp_argument_structure"}
    assert (run / "encoder.pt").stat().st_mtime_ns == pretrained  # nothing pretrained
    plain = json.loads(invoke_dmx("report", str(run), "--format", "json", cwd=tmp_path).stdout)
    detail = invoke_dmx("report", str(run), "--format", "json", "--zero-shot", cwd=tmp_path)
    (row,) = json.loads(detail.stdout)
    assert (
        "blimp_morphology" not in plain[0] and plain[0]["blimp_acc"]["mean"] == after["blimp_acc"]
    )
    for key in ("blimp_morphology", "blimp_quantifiers", "pairs_a_an", "pairs_tense_time"):
        assert row[key]["mean"] == pytest.approx(after[key]), key
    files = sorted((run / "eval" / "blimp").glob("*.json"))
    stamps = [f.stat().st_mtime_ns for f in files]
    again = invoke_dmx(*args, cwd=tmp_path)
    assert [f.stat().st_mtime_ns for f in files] == stamps  # a second call scores nothing
    assert "eval: blimp" not in again.stderr + again.stdout
    assert read_metrics(run)["blimp_acc"] == after["blimp_acc"]


@pytest.mark.slow
def test_a_killed_evaluation_goes_on_at_the_first_paradigm_missing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_run(run, "eval=embedded", "eval.pairs_per_paradigm=10")
    whole = read_metrics(run)["pairs_acc"]
    kept = run / "eval" / "embedded" / "a_an.json"
    stamp = kept.stat().st_mtime_ns
    for name in list(PHENOMENA)[1:]:  # as if killed after the first paradigm
        (run / "eval" / "embedded" / f"{name}.json").unlink()
    invoke_dmx("eval", str(run), "eval=embedded", "eval.pairs_per_paradigm=10", cwd=tmp_path)
    assert kept.stat().st_mtime_ns == stamp
    assert read_metrics(run)["pairs_acc"] == whole


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["eval=blimp", "eval.pairs_per_paradigm=0"],
            "eval.pairs_per_paradigm must be at least 1 (null: every pair), got 0",
        ),
        (
            ["eval=embedded", "attention=causal"],
            "eval=embedded scores sentences with full attention, but this encoder is "
            "pretrained under attention=causal; evaluate runs pretrained with attention=full "
            "(or learned_gate)",
        ),
        (
            ["eval=embedded", "eval.scoring=mlm"],
            "eval.scoring must be one of pll_word_l2r, pll; got 'mlm'",
        ),
    ],
    ids=["zero-pairs", "causal", "scoring"],
)
def test_bad_eval_settings_are_one_line_before_anything_runs(
    tmp_path: Path, overrides: list[str], expected: str
) -> None:
    result = invoke_dmx("train", *tiny(*overrides), cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"dmx: error: {expected}"]
    assert not (tmp_path / "outputs").exists()


def test_dmx_eval_on_a_folder_without_a_finished_run_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = invoke_dmx("eval", str(tmp_path / "empty"), "eval=embedded", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"dmx: error: {tmp_path / 'empty'} holds no run with a kept encoder (encoder.pt); "
        "dmx eval needs runs trained by dmx train to the end"
    )
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.slow
def test_the_demo_sweep_adds_an_untrained_run_per_seed_that_the_report_names(
    tmp_path: Path,
) -> None:
    """experiment=static_vs_dynamic scores the embedded pairs and, per seed, the encoder
    never pretrained: the report groups it as `mask=untrained` (whatever mask its config
    names), `--baseline` can name it, and a second sweep trains nothing."""
    args = tiny("seed=0,1", "untrained_control=true", "hydra.sweep.dir=sweep")
    invoke_dmx("sweep", *args, cwd=tmp_path)
    sweep = tmp_path / "sweep"
    untrained = sorted(p.name for p in sweep.glob("untrained,seed=*"))
    assert untrained == ["untrained,seed=0", "untrained,seed=1"]
    control = read_metrics(sweep / "untrained,seed=0")
    assert control["pretrained"] is False and "pairs_acc" in control
    report = invoke_dmx("report", str(sweep), "--format", "json", cwd=tmp_path)
    rows = {r["label"]: r for r in json.loads(report.stdout)}
    assert sorted(rows) == ["mask=dynamic", "mask=static(K=1)", "mask=untrained"]
    assert [rows[k]["n"] for k in sorted(rows)] == [2, 2, 2]
    assert rows["mask=untrained"]["pairs_acc"]["n"] == 2
    compared = invoke_dmx(
        "report", str(sweep), "--baseline", "mask=untrained", "--format", "json", cwd=tmp_path
    )
    by_label = {r["label"]: r for r in json.loads(compared.stdout)}
    assert by_label["mask=untrained"]["baseline"] is True
    dynamic = by_label["mask=dynamic"]["pairs_acc"]
    assert dynamic["delta"] == pytest.approx(
        dynamic["mean"] - by_label["mask=untrained"]["pairs_acc"]["mean"]
    )
    stamps = {p: p.stat().st_mtime_ns for p in sweep.rglob("metrics.json")}
    invoke_dmx("sweep", *args, cwd=tmp_path)
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("metrics.json")} == stamps


@pytest.mark.slow
def test_the_best_encoder_is_kept_and_downstream_can_start_from_it(tmp_path: Path) -> None:
    """encoder_best.pt holds the weights at the best validation loss (the epoch-end
    checkpoint of best_val_epoch), and eval.encoder=best scores it."""
    import torch

    run = tmp_path / "run"
    metrics = train_run(
        run,
        "trainer.max_epochs=6",
        "impl.keep_checkpoints=10",
        "eval=embedded",
        "eval.encoder=best",
    )
    assert metrics["eval_encoder"] == "best"
    steps_per_epoch = metrics["steps"] // metrics["epochs"]
    step = metrics["best_val_epoch"] * steps_per_epoch
    checkpoint = torch.load(run / "checkpoints" / f"step-{step:09d}.ckpt", weights_only=True)
    best = torch.load(run / "encoder_best.pt", weights_only=True)["encoder"]
    at_best = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}
    assert best.keys() <= at_best.keys()
    assert all(torch.equal(best[k], at_best[k]) for k in best)
    last = torch.load(run / "encoder.pt", weights_only=True)["encoder"]
    same = all(torch.equal(best[k], last[k]) for k in best)
    assert same == (metrics["best_val_epoch"] == metrics["epochs"])
    invoke_dmx("eval", str(run), "eval=embedded", "eval.encoder=last", cwd=tmp_path)
    assert read_metrics(run)["eval_encoder"] == "last"
    again = invoke_dmx("eval", str(run), "eval=embedded", "eval.encoder=best", cwd=tmp_path)
    assert read_metrics(run)["pairs_acc"] == metrics["pairs_acc"], again.stdout


@pytest.mark.slow
def test_eval_epochs_score_during_pretraining_and_change_no_training_number(
    tmp_path: Path,
) -> None:
    """eval.epochs=[1,3] adds the zero-shot accuracy to those epochs' history rows (and
    W&B); training itself is untouched, to the bit."""
    from dmx.common.run_folder import read_history

    plain = train_run(tmp_path / "plain", "trainer.max_epochs=3", "eval=embedded")
    run = tmp_path / "scored"
    scored = train_run(
        run, "trainer.max_epochs=3", "eval=embedded", "eval.epochs=[1,3]", "eval.epoch_pairs=4"
    )
    rows = read_history(run / "history.csv")
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert [isinstance(row["pairs_acc"], float) for row in rows] == [True, False, True]
    assert all(0.0 <= row["pairs_acc"] <= 1.0 for row in (rows[0], rows[2]))
    for key in ("final_val_loss", "best_val_loss", "final_val_acc", "final_train_loss"):
        assert scored[key] == plain[key], key
    assert scored["pairs_acc"] == plain["pairs_acc"]  # the end's evaluation, on all pairs
    from dmx import report as rep

    written = rep.write_plots(rep.load(tmp_path), tmp_path / "plots", "zero-shot")
    assert sorted(p.name for p in written) == ["final_metrics.png", "pairs_acc.png", "val_loss.png"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["eval.epochs=[1]"],
            "eval.epochs scores minimal pairs during pretraining; choose them too "
            "(eval=embedded or eval=blimp)",
        ),
        (
            ["eval=embedded", "eval.epochs=[0,2]"],
            "eval.epochs are epochs of pretraining, 1 or more; got [0, 2]",
        ),
    ],
    ids=["no-suite", "epoch-0"],
)
def test_bad_eval_epochs_are_one_line(overrides: list[str], expected: str) -> None:
    from dmx.config.validate import compose_checked

    with pytest.raises(UserError) as err:
        compose_checked(tiny(*overrides))
    assert str(err.value) == expected
