"""`dmx sweep --wandb`: the W&B sweep must run exactly the runs Hydra's multirun would.

Hydra's side is computed by Hydra itself (a multirun config composed in MULTIRUN mode, then
BasicSweeper's own grid), and W&B's side the way a W&B agent builds each run's command, so
the two are compared as the sets of overrides each run gets. Nothing reaches a network:
registration is a fake standing in for ``wandb.sweep``.
"""

from __future__ import annotations

import itertools
import re
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import wandb
import yaml
from hydra import initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf
from typer.testing import CliRunner
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from dmx.cli import app
from dmx.common.errors import UserError
from dmx.config.loading import register
from dmx.config.validate import CONFIG_MODULE, compose_checked
from dmx.tracking import sweep as wandb_sweep
from dmx.tracking.sweep import SPEC_FILE, run_count, save_sweep, sweep_spec

DUMMY_KEY = "dmxdummykey" + "0123456789" * 3  # 40 characters, as a real key


def hydra_runs(args: list[str]) -> list[frozenset[str]]:
    """The runs Hydra's BasicSweeper would launch for `dmx-train --multirun ARGS`."""
    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            hydra = GlobalHydra.instance()
            assert hydra.hydra is not None
            cfg = hydra.hydra.compose_config(
                config_name="config", overrides=list(args), run_mode=RunMode.MULTIRUN
            )
            params = OmegaConf.to_container(cfg.hydra.sweeper.params) or {}
            # What BasicSweeper.sweep does before it launches anything. (Hydra's plugin scan
            # imports the sweeper's module anew, so an instance here would fail its own
            # super() call: its methods are called on a stand-in.)
            sweeper = SimpleNamespace(params=params)
            arguments = [*BasicSweeper._parse_config(sweeper), *cfg.hydra.overrides.task]
            parser = OverridesParser.create(config_loader=hydra.config_loader())
            (batch,) = BasicSweeper.split_arguments(parser.parse_overrides(arguments), None)
    finally:
        GlobalHydra.instance().clear()
    return [frozenset(run) for run in batch]


def agent_args(spec: dict[str, Any], choice: dict[str, str]) -> list[str]:
    """The overrides a W&B agent hands dmx-train for one run, built by W&B's own code."""
    command = {"args": {key: {"value": value} for key, value in choice.items()}}
    assert spec["program"] == "dmx-train"
    assert spec["command"][:2] == ["dmx-train", "${args_no_hyphens}"]
    assert spec["command"][2].startswith("hydra.run.dir=")
    assert spec["command"][2].endswith("/${oc.env:WANDB_RUN_ID}")
    return create_sweep_command_args(command)["args_no_hyphens"]


def wandb_runs(spec: dict[str, Any]) -> list[frozenset[str]]:
    """The runs of a W&B grid: the cartesian product of every parameter's values."""
    keys = list(spec["parameters"])
    options = [p.get("values", [p.get("value")]) for p in spec["parameters"].values()]
    for values in options:
        assert all(isinstance(v, str) for v in values), values  # never None, never a number
    return [
        frozenset(agent_args(spec, dict(zip(keys, combo, strict=True))))
        for combo in itertools.product(*options)
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["experiment=static_vs_dynamic"],
        ["experiment=dupe_factor"],
        ["experiment=strategies"],
        ["experiment=mask_rate"],
        ["experiment=attention_masks"],
        ["experiment=static_vs_dynamic", "mask.prob=0.15,0.4", "trainer.max_epochs=3"],
        ["experiment=dupe_factor", "seed=range(4)", "mask.prob=0.15,0.4"],
        ["experiment=static_vs_dynamic", "mask=glob(st*)", "seed=7"],
    ],
)
def test_wandb_grid_is_hydras_grid(args: list[str]) -> None:
    spec = sweep_spec([*args, "hydra.sweep.dir=somewhere", "hydra/launcher=basic"])
    expected = hydra_runs(args)
    got = wandb_runs(spec)
    assert set(got) == set(expected)
    assert len(got) == len(expected) == run_count(spec)
    assert spec["method"] == "grid"
    assert spec["name"] == args[0].split("=", 1)[1]
    assert spec["project"] == "dmx" and "entity" not in spec
    assert spec["parameters"]["experiment"] == {"value": spec["name"]}
    assert not any(key.startswith("hydra") for key in spec["parameters"])


def test_command_line_values_replace_the_presets() -> None:
    spec = sweep_spec(["experiment=static_vs_dynamic", "seed=3,4", "trainer.max_epochs=3"])
    assert spec["parameters"]["seed"] == {"values": ["3", "4"]}
    assert spec["parameters"]["mask"] == {"values": ["static", "dynamic"]}
    assert spec["parameters"]["trainer.max_epochs"] == {"value": "3"}
    assert run_count(spec) == 4


@pytest.mark.slow
def test_null_survives_as_the_string_null_and_dmx_train_accepts_every_run(
    tmp_path: Path,
) -> None:
    spec = sweep_spec(["experiment=strategies", "mask.copies=1,null", "mask.unit=token"])
    assert spec["parameters"]["mask.copies"] == {"values": ["1", "null"]}
    assert save_sweep(spec, tmp_path) is None  # offline: written, not registered
    written = yaml.safe_load((tmp_path / SPEC_FILE).read_text())
    assert written == spec  # the YAML keeps every value a string: '1', 'null', '0'
    copies = set()
    for run in wandb_runs(written):
        (copies_arg,) = [a for a in run if a.startswith("mask.copies=")]
        if copies_arg == "mask.copies=null" and "seed=0" in run:
            config = compose_checked(sorted(run))  # what `dmx-train ARGS` composes
            assert config.mask.copies is None and config.mask.unit == "token"
        copies.add(copies_arg)
    assert copies == {"mask.copies=1", "mask.copies=null"}
    (one,) = [r for r in wandb_runs(written) if "mask.copies=1" in r and "seed=2" in r]
    assert compose_checked(sorted(one)).mask.copies == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hydra.run.dir=x"], "hydra.run.dir=x is a Hydra setting"),
        (["hydra/sweeper=optuna"], "only Hydra's basic (grid) sweeper"),
        (["logger=none"], "logger=none: W&B agent runs would report nothing"),
        (["mask.prob=interval(0.1,0.2)"], "a grid sweep needs listed values"),
        (["seed=0,0,1"], "lists 0 more than once"),
        (["--info"], "--info is a Hydra flag"),
    ],
)
def test_what_a_wandb_grid_cannot_carry_is_refused(args: list[str], message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        sweep_spec(["experiment=static_vs_dynamic", *args])


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["sweep", "--wandb", *args])


@pytest.mark.slow
def test_cli_writes_the_spec_trains_nothing_and_says_what_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "sweep"
    result = _invoke("experiment=static_vs_dynamic", f"hydra.sweep.dir={folder}")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == [SPEC_FILE]
    assert not (tmp_path / "outputs").exists()
    assert not list(tmp_path.rglob("metrics.json"))
    spec = yaml.safe_load((folder / SPEC_FILE).read_text())
    assert run_count(spec) == 6
    assert f"{folder / SPEC_FILE} (6 runs" in result.stdout
    assert f"wandb sweep {folder / SPEC_FILE}" in result.stdout
    assert "wandb agent dmx/SWEEP_ID" in result.stdout
    assert f"dmx report {folder}" in result.stdout
    assert spec["command"][2] == f"hydra.run.dir={folder}/${{oc.env:WANDB_RUN_ID}}"


@pytest.mark.slow
def test_cli_registers_only_online_with_a_key_and_never_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def fake_sweep(spec: dict[str, Any], **kwargs: Any) -> str:
        calls.append((spec, kwargs))
        return "abc123"

    monkeypatch.setattr(wandb, "sweep", fake_sweep)
    monkeypatch.setenv("WANDB_API_KEY", DUMMY_KEY)
    folder = tmp_path / "sweep"
    args = ("experiment=static_vs_dynamic", f"hydra.sweep.dir={folder}")

    assert _invoke(*args).exit_code == 0  # WANDB_MODE=offline (conftest): not registered
    assert calls == []

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY")
    assert _invoke(*args).exit_code == 0  # online, but no key anywhere
    assert calls == []

    monkeypatch.setenv("WANDB_API_KEY", DUMMY_KEY)
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    written = (folder / SPEC_FILE).read_text()
    ((spec, kwargs),) = calls
    assert spec == yaml.safe_load(written)
    assert kwargs == {"project": "dmx", "entity": None}
    assert "registered W&B sweep: abc123" in result.stdout
    assert "wandb agent dmx/abc123" in result.stdout
    assert "wandb sweep " not in result.stdout
    assert DUMMY_KEY not in written and DUMMY_KEY not in result.output


@pytest.mark.slow
def test_cli_registration_failure_is_one_line_without_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_sweep(spec: dict[str, Any], **kwargs: Any) -> str:
        raise ConnectionError(f"no route to api.wandb.ai\nwhile sending key {DUMMY_KEY}")

    monkeypatch.setattr(wandb, "sweep", failing_sweep)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", DUMMY_KEY)
    folder = tmp_path / "sweep"
    result = _invoke("experiment=static_vs_dynamic", f"hydra.sweep.dir={folder}")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("dmx: error: could not register the W&B sweep (no route")
    assert f"wandb sweep {folder / SPEC_FILE}" in line
    assert DUMMY_KEY not in result.output
    assert (folder / SPEC_FILE).exists()  # saved first, to register later


def test_registration_that_hangs_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hanging_sweep(spec: dict[str, Any], **kwargs: Any) -> str:
        release.wait(10)
        return "too-late"

    monkeypatch.setattr(wandb, "sweep", hanging_sweep)
    monkeypatch.setattr(wandb_sweep, "REGISTER_TIMEOUT_S", 0.2)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", DUMMY_KEY)
    spec = sweep_spec(["experiment=static_vs_dynamic"])
    try:
        with pytest.raises(UserError, match="W&B did not answer within 0 s"):
            save_sweep(spec, tmp_path)
    finally:
        release.set()
    assert (tmp_path / SPEC_FILE).exists()


@pytest.mark.slow
def test_cli_bad_override_exits_2_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "sweep"
    result = _invoke("experiment=static_vs_dynamic", "mask.prob=2", f"hydra.sweep.dir={folder}")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("dmx: error: mask.prob must be in (0, 1), got 2")
    assert not folder.exists()
