"""The package's layers: every import points down, never up.

Each module of dmx has a layer; a module may import from its own layer's package or from
lower layers only, so masking never learns of Lightning, the report never of live
training objects, and nothing below the CLI depends on it. Imports inside functions count
too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "dmx"

# Lowest first. A module's layer is that of the longest prefix listed.
LAYERS: list[tuple[str, ...]] = [
    # Leaves: no dmx imports at all (torch at most).
    ("dmx.choices", "dmx.fields", "dmx.errors", "dmx.overrides", "dmx.allocator", "dmx.hardware"),
    # Leaves of the console and the network: rich, the standard library.
    ("dmx.progress", "dmx.net"),
    # Signals and per-process sums: the standard library and torch only.
    ("dmx.stops", "dmx.shares"),
    # What a run computes, each knowing only the leaves: keyed masks (torch only), the
    # model (torch only), the schema, the run folder's files, provenance.
    ("dmx.masking", "dmx.model", "dmx.config", "dmx.runs", "dmx.provenance"),
    # Data knows masking and the schema, never the model or the tasks.
    ("dmx.data", "dmx.optim", "dmx.validate"),
    ("dmx.tasks", "dmx.callbacks", "dmx.tracking"),
    # How a run runs, what a folder holds, then the assembly.
    ("dmx.runtime", "dmx.resume", "dmx.report"),
    ("dmx.finetune", "dmx.run_names", "dmx.export"),
    ("dmx.train",),
    ("dmx.entry", "dmx.wandb_sweep", "dmx.wandb_sync", "dmx.sweep_progress"),
    ("dmx.bench",),
    ("dmx.cli",),
]

# Third-party packages a layer must not import: masking and the model are plain torch.
FORBIDDEN = {
    "dmx.masking": ("lightning", "hydra", "omegaconf", "wandb", "numpy"),
    "dmx.model": ("lightning", "hydra", "omegaconf", "wandb"),
    "dmx.report": ("lightning", "torch"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from dmx import provenance` imports the module dmx.provenance
            if node.module == "dmx":
                found |= {f"dmx.{a.name}" for a in node.names if _is_module(a.name)}
    return found


def _is_module(name: str) -> bool:
    return (ROOT / f"{name}.py").exists() or (ROOT / name).is_dir()


def place(name: str) -> tuple[int, str]:
    """(layer, package) of a dmx module: its package is the listed prefix it falls under."""
    best = None
    for layer, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[1])
            ):
                best = (layer, prefix)
    if best is None:
        raise AssertionError(f"{name} has no layer in tests/test_layers.py: give it one")
    return best


MODULES = sorted(ROOT.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        name = module_name(path)
        if name != "dmx":
            place(name)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_down(path: Path) -> None:
    name = module_name(path)
    if name == "dmx":
        return
    layer, package = place(name)
    upward = []
    for target in imports(path):
        if not target.startswith("dmx.") or target == "dmx.conf":
            continue
        their_layer, their_package = place(target)
        if their_package != package and their_layer >= layer:
            upward.append(f"{target} (layer {their_layer})")
    assert not upward, f"{name} (layer {layer}) imports {', '.join(sorted(upward))}"
    for prefix, banned in FORBIDDEN.items():
        if name == prefix or name.startswith(prefix + "."):
            third_party = {t.split(".")[0] for t in imports(path)}
            assert not third_party & set(banned), f"{name} imports {third_party & set(banned)}"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The walk finds imports inside functions, and the ordering calls them upward."""
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from dmx.train import train\n    from dmx import cli\n")
    assert imports(source) == {"dmx.train", "dmx", "dmx.cli"}
    assert place("dmx.train")[0] > place("dmx.masking.keyed")[0]
    assert place("dmx.cli.run")[1] == "dmx.cli"
