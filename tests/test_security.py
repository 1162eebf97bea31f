"""Nothing secret is written, and a config builds dmx's own classes only.

Checkpoints that try to run code are refused in tests/test_resume.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import train_run

import dmx
from dmx.common.errors import UserError
from dmx.config.validate import compose_checked

SECRETS = {
    "WANDB_API_KEY": "local-0123456789abcdef0123456789abcdef01234567",
    "HF_TOKEN": "hf_SECRETtokenSECRETtokenSECRET",
    "MY_DB_PASSWORD": "pa55-w0rd-do-not-write",
    "SERVICE_SECRET_KEY": "sk-live-never-on-disk",
}


@pytest.mark.slow
def test_no_secret_reaches_the_run_folder_the_log_or_wandb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    run = tmp_path / "run"
    summary = train_run(run, "logger=wandb", "trainer.max_epochs=1")
    assert summary["status"] == "done"
    files = [p for p in run.rglob("*") if p.is_file()]
    assert any("wandb" in p.parts for p in files)  # W&B's offline files are there to check
    for path in files:
        data = path.read_bytes()
        for name, value in SECRETS.items():
            assert value.encode() not in data, f"{name} written into {path}"


def test_a_config_cannot_name_a_class_to_build() -> None:
    # The schema is closed: no _target_ (or any other unknown key) is accepted anywhere.
    for override, where in (
        ("+model._target_=os.system", "model._target_"),
        ("+_target_=subprocess.run", "_target_"),
    ):
        with pytest.raises(UserError, match=rf"^{re.escape(where)}: dmx builds its objects"):
            compose_checked([override])


def test_dmx_never_instantiates_from_a_config() -> None:
    """Hydra's instantiate builds any importable class a config names; dmx builds its
    objects in code from typed dataclasses, and no module calls it."""
    root = Path(dmx.__file__).parent
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if re.search(r"\binstantiate\s*\(|get_class\s*\(|get_method\s*\(", p.read_text())
    ]
    assert offenders == []
