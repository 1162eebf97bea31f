"""Every config option composes; every mistake stops at start with one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_dmx

from dmx.config import Config
from dmx.errors import UserError
from dmx.validate import check_overrides, compose_checked

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["model", "data", "mask", "trainer", "logger", "experiment"]


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override", [f"{g}={c}" for g in GROUPS for c in choices(g)], ids=lambda o: o
)
def test_every_group_choice_composes_into_a_checked_config(override: str) -> None:
    compose_checked([override])


def test_every_group_has_choices() -> None:
    assert all(choices(g) for g in GROUPS)
    assert choices("model") == ["base", "small", "tiny"]
    assert choices("mask") == ["dynamic", "static"]


def test_defaults_are_static_k1_tiny_embedded() -> None:
    from hydra import compose, initialize_config_module

    from dmx.config import to_config

    with initialize_config_module(config_module="dmx.conf", version_base="1.3"):
        config = to_config(compose(config_name="config"))
    assert isinstance(config, Config)
    assert (config.model.name, config.data.name, config.mask.name) == ("tiny", "embedded", "static")
    assert config.mask.copies == 1 and config.mask.prob == 0.15


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["mask=nonsense"], "unknown choice mask=nonsense; choose one of: dynamic, static"),
        (["mask.prob=1.5"], "mask.prob must be in (0, 1), got 1.5"),
        (["mask.prob=0"], "mask.prob must be in (0, 1)"),
        (["mask.copies=0"], "mask.copies must be >= 1"),
        (["mask.prob=abc"], "could not be converted to Float"),
        (["mask.unknown=1"], "Key 'unknown' not in 'MaskConfig'"),
        (["model=huge"], "choose one of: base, small, tiny"),
        (["experiment=nope"], "choose one of: static_vs_dynamic"),
        (["data.seq_len=512"], "exceeds model.max_seq_len"),
        (["model.n_heads=3"], "divisible by model.n_heads"),
        (["trainer.precision=fp8"], "trainer.precision must be one of"),
        (["logger.mode=sometimes"], "logger.mode must be one of"),
        (["trainer.accelerator=tpu"], "trainer.accelerator must be one of"),
    ],
)
def test_bad_values_raise_one_clear_line(overrides: list[str], fragment: str) -> None:
    with pytest.raises(UserError) as caught:
        check_overrides(overrides, multirun=False)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_sweep_values_are_each_checked() -> None:
    check_overrides(["mask=static,dynamic", "seed=0,1,2"], multirun=True)
    with pytest.raises(UserError, match="mask.prob must be in"):
        check_overrides(["mask.prob=0.15,0.4,1.5"], multirun=True)
    with pytest.raises(UserError, match="dmx sweep"):
        check_overrides(["seed=0,1"], multirun=False)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "mask=nonsense"],
        ["train", "mask.prob=1.5"],
        ["sweep", "mask=static,nonsense"],
        ["sweep", "experiment=nope"],
        ["report", "no/such/folder"],
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(
    args: list[str], tmp_path: Path
) -> None:
    result = run_dmx(*args, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dmx: error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "outputs").exists()


def test_cfg_job_prints_the_composed_config(tmp_path: Path) -> None:
    result = run_dmx("train", "mask=dynamic", "--cfg", "job", cwd=tmp_path)
    assert "copies: null" in result.stdout and "name: dynamic" in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_version_and_help_show_examples(tmp_path: Path) -> None:
    assert run_dmx("--version", cwd=tmp_path).stdout.startswith("dmx ")
    for command in ("train", "sweep", "report"):
        out = run_dmx(command, "--help", cwd=tmp_path).stdout
        assert "Examples" in out and f"dmx {command}" in out


def test_run_folder_names_stay_short_unique_and_flat() -> None:
    from dmx.config import run_folder_name

    assert run_folder_name("mask=static,seed=0") == "mask=static,seed=0"
    assert "/" not in run_folder_name("data.cache_dir=/tmp/x,seed=0")
    long_a = ",".join(f"key{i}=value{i}" for i in range(40))
    long_b = long_a + ",seed=1"
    assert len(run_folder_name(long_a)) <= 120
    assert run_folder_name(long_a) != run_folder_name(long_b)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_missing_gpu_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no CUDA GPU is visible; use trainer.accelerator=auto"):
        check_overrides(["trainer.accelerator=gpu"], multirun=False)
