"""Every config option composes; every mistake stops at start with one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmx.common.errors import UserError, error_line, exception_line, one_line
from dmx.config import Config, ModelConfig
from dmx.config.validate import check_overrides, compose_checked, sweep_dir

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["model", "data", "mask", "attention", "optim", "trainer", "impl", "logger", "experiment"]


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "override", [f"{g}={c}" for g in GROUPS for c in choices(g)], ids=lambda o: o
)
def test_every_group_choice_composes_into_a_checked_config(override: str) -> None:
    compose_checked([override, *REQUIRED.get(override, [])])


# Choices that need a value only the user can give.
REQUIRED = {
    "data=text": ["data.path=corpus.txt"],
    "data=hf": ["data.name=wikitext"],
    "finetune=tsv": ["finetune.train_path=train.tsv", "finetune.dev_path=dev.tsv"],
    "finetune=hf": ["finetune.hf_name=glue"],
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data=text"], "data=text needs data.path=PATH: a .txt file or folder, .jsonl"),
        (["data=hf"], "data=hf needs data.name=DATASET (e.g. data.name=wikitext"),
        (["finetune=tsv"], "finetune=tsv needs finetune.train_path=... and finetune.dev_path="),
        (["finetune=hf"], "finetune=hf needs finetune.hf_name=... (e.g. finetune.hf_name=glue"),
    ],
)
def test_a_choice_missing_its_required_value_says_which(overrides: list[str], message: str) -> None:
    with pytest.raises(UserError) as caught:
        compose_checked(overrides)
    assert str(caught.value).startswith(message)


def test_every_group_has_choices() -> None:
    assert all(choices(g) for g in GROUPS)
    assert choices("model") == ["base", "small", "tiny"]
    assert choices("mask") == [
        "amlm",
        "corpus_weighted",
        "dynamic",
        "informask",
        "loss_weighted",
        "pmi",
        "span",
        "static",
        "whole_word",
    ]
    assert choices("attention") == [
        "block_sparse",
        "causal",
        "full",
        "learned_gate",
        "random_dynamic",
        "random_static",
        "window",
    ]
    assert choices("optim") == ["adamw"] and choices("impl") == ["default"]


def test_defaults_are_static_k1_tiny_embedded() -> None:
    config = compose_checked([])
    assert isinstance(config, Config)
    assert (config.model.name, config.data.name) == ("tiny", "embedded")
    assert config.mask.copies == 1 and config.mask.prob == 0.15
    assert (config.optim.lr, config.optim.weight_decay) == (1e-3, 0.01)
    assert (config.impl.accelerator, config.impl.precision, config.impl.num_workers) == (
        "auto",
        "auto",
        0,
    )


def test_yaml_defaults_equal_the_schema_defaults() -> None:
    """The YAML and the dataclasses say the same: no default hides in only one of them."""
    assert compose_checked([]) == Config()


def test_every_model_setting_reaches_the_encoder_by_name() -> None:
    from dataclasses import fields

    from dmx.model import EncoderShape

    model_keys = {f.name for f in fields(ModelConfig)} - {"name"}
    assert model_keys == {f.name for f in fields(EncoderShape)} - {"vocab_size", "gate"}
    config = compose_checked(["model=small", "model.attn_dropout=0.25"])
    shape = EncoderShape.from_config(config.model, vocab_size=777)
    assert shape == EncoderShape(
        vocab_size=777,
        n_layers=4,
        d_model=256,
        n_heads=4,
        d_ff=1024,
        max_seq_len=512,
        dropout=0.1,
        attn_dropout=0.25,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (
            ["mask=nonsense"],
            "unknown choice mask=nonsense; choose one of: amlm, corpus_weighted, dynamic, "
            "informask, loss_weighted, pmi, span, static, whole_word",
        ),
        (["mask=informative"], "mask=informative is now mask=corpus_weighted: the new name"),
        (["mask=adaptive"], "mask=adaptive is now mask=loss_weighted: the new name says"),
        (
            ["mask.unit=phrase"],
            "mask.unit must be one of token, whole_word, span, pmi; got 'phrase'",
        ),
        (
            ["mask.weighting=tfidf"],
            "mask.weighting must be one of uniform, corpus, informask, loss, amlm",
        ),
        (
            ["mask.weighting=informative"],
            "mask.weighting=informative is now mask.weighting=corpus (mask=corpus_weighted)",
        ),
        (["mask.weighting=adaptive"], "is now mask.weighting=loss (mask=loss_weighted)"),
        (["mask=span", "mask.weighting=loss"], "weighs single tokens; use it with mask.unit"),
        (["mask=amlm", "mask.amlm_floor=0.2"], "mask.amlm_floor must be in [0, mask.prob)"),
        (["mask.informask_samples=0"], "mask.informask_samples must be >= 1, got 0"),
        (["mask.adapt_smoothing=0"], "mask.adapt_smoothing must be in (0, 1], got 0.0"),
        (["mask.weight_max=0.5"], "mask.weight_min <= 1 <= mask.weight_max must hold"),
        (["mask.pmi_ngram_max=7"], "mask.pmi_ngram_max must be 2 to 5, got 7"),
        (["mask.count=poisson"], "mask.count must be one of bernoulli, fixed"),
        (["mask.schedule=exp"], "mask.schedule must be one of constant, linear, cosine, step"),
        (["mask.schedule_start=1.2"], "mask.schedule_start must be in (0, 1), got 1.2"),
        (["mask.span_max=0"], "mask.span_max must be >= 1, got 0"),
        (["attention=sparse"], "unknown choice attention=sparse; choose one of: block_sparse"),
        (["attention.density=0"], "attention.density must be in (0, 1], got 0"),
        (["attention.window=0"], "attention.window must be >= 1, got 0"),
        (["mask.prob=1.5"], "mask.prob must be in (0, 1), got 1.5"),
        (["mask.prob=0"], "mask.prob must be in (0, 1)"),
        (["mask.copies=0"], "mask.copies must be >= 1"),
        (["mask.prob=abc"], "mask.prob must be a number, got 'abc'"),
        (["mask.unknown=1"], "mask.unknown is not a dmx setting; mask has: unit, copies, prob,"),
        (["model=huge"], "choose one of: base, small, tiny"),
        (
            ["experiment=nope"],
            "choose one of: adaptive, attention_classify, attention_masks, dupe_factor,",
        ),
        (["data.seq_len=512"], "exceeds model.max_seq_len"),
        (["model.n_heads=3"], "divisible by model.n_heads"),
        (["impl.precision=fp8"], "impl.precision must be one of"),
        (["logger.mode=sometimes"], "logger.mode must be one of"),
        (["impl.accelerator=tpu"], "impl.accelerator must be one of"),
        (["impl.num_workers=-1"], "impl.num_workers must be >= 0, got -1"),
        (["mask.name=static"], "mask.name is not a dmx setting; mask has: unit, copies,"),
        (["trainer.precision=32-true"], "trainer.precision is not a dmx setting; trainer has: "),
        (
            ["data.eval_mask_token_frac=0.95", "data.eval_random_token_frac=0.1"],
            "data.eval_mask_token_frac + data.eval_random_token_frac must be <= 1",
        ),
        (["mask.random_token_frac=1.5"], "mask.random_token_frac must be in [0, 1], got 1.5"),
    ],
)
def test_bad_values_raise_one_clear_line(overrides: list[str], fragment: str) -> None:
    with pytest.raises(UserError) as caught:
        check_overrides(overrides, multirun=False)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


@pytest.mark.slow
def test_sweep_values_are_each_checked() -> None:
    check_overrides(["mask=static,dynamic", "seed=0,1,2"], multirun=True)
    with pytest.raises(UserError, match="mask.prob must be in"):
        check_overrides(["mask.prob=0.15,0.4,1.5"], multirun=True)
    with pytest.raises(UserError, match="dmx sweep"):
        check_overrides(["seed=0,1"], multirun=False)


def test_run_folder_names_stay_short_unique_and_flat() -> None:
    from dmx.config.loading import run_folder_name

    assert run_folder_name("mask=static,seed=0") == "mask=static,seed=0"
    assert "/" not in run_folder_name("impl.cache_dir=/tmp/x,seed=0")
    long_a = ",".join(f"key{i}=value{i}" for i in range(40))
    long_b = long_a + ",seed=1"
    assert len(run_folder_name(long_a)) <= 120
    assert run_folder_name(long_a) != run_folder_name(long_b)


@pytest.mark.slow
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_missing_gpu_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no CUDA GPU is visible; use impl.accelerator=auto"):
        check_overrides(["impl.accelerator=gpu"], multirun=False)


@pytest.mark.slow
def test_check_overrides_returns_the_first_run_of_a_sweep() -> None:
    first = check_overrides(["mask=static,dynamic", "seed=4,5", "hydra.sweep.dir=x"], multirun=True)
    assert first == ["mask=static", "seed=4"]


@pytest.mark.slow
def test_sweep_folder_comes_from_the_config_resolved_once() -> None:
    first = ["experiment=static_vs_dynamic"]
    name = sweep_dir(first, grid=first)
    assert name == "outputs/sweeps/static_vs_dynamic"  # named by what it runs, not when
    assert sweep_dir([*first, "hydra.sweep.dir=my/place"]) == "my/place"
    # Another command gets its own folder; the same command (in any order, with or without
    # resume=...) finds the same one again.
    a = sweep_dir(first, grid=[*first, "seed=0,1", "mask.prob=0.3"])
    b = sweep_dir(first, grid=["mask.prob=0.3", *first, "seed=0,1", "resume=false"])
    assert a == b and a.startswith("outputs/sweeps/static_vs_dynamic_") and a != name
    assert sweep_dir(first, grid=[*first, "seed=0,1,2"]) != a


def test_errors_fold_onto_one_line() -> None:
    assert one_line("a\n  b\tc ") == "a b c"
    assert error_line("bad\nthing") == "dmx: error: bad thing"
    try:
        try:
            raise RuntimeError("inner detail\nmore")
        except RuntimeError as inner:
            raise ValueError("outer\nfull_key: mask.prob\nobject_type=MaskConfig") from inner
    except ValueError as err:
        assert exception_line(err) == "outer inner detail"
