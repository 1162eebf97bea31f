"""From Hydra's composed DictConfig to the checked dataclasses of :mod:`dmx.config`.

The Hydra glue lives here, apart from the schema: :func:`register` makes the schema and
dmx's two resolvers known to Hydra (the entry and the compose helpers call it before they
compose); :func:`to_config` refuses keys the schema lacks and keys by which Hydra would
build objects, then converts, so every value is checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import typing
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from dmx.common.errors import UserError, exception_line
from dmx.config import Config


def run_folder_name(overrides: str, limit: int = 120) -> str:
    """A sweep job's folder name from its overrides: readable, one level, never too long.

    Hydra's ``override_dirname`` (``mask=static,seed=0``) is the name; a path separator in a
    value would nest folders, so it is replaced, and a name past ``limit`` characters
    (file systems stop at 255) is cut and made unique again by a hash of the whole.
    """
    name = (overrides or "default").replace("/", "_")
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: limit - 11]}-{digest}"


def register() -> None:
    """Make the schema visible to Hydra as ``dmx_schema`` (conf/config.yaml names it first),
    and the resolvers conf/ uses for run folder and log file names. Safe to call again."""
    ConfigStore.instance().store(name="dmx_schema", node=Config)
    if not OmegaConf.has_resolver("dmx_run_folder"):
        OmegaConf.register_new_resolver("dmx_run_folder", run_folder_name)
    if not OmegaConf.has_resolver("dmx_log_file"):
        OmegaConf.register_new_resolver("dmx_log_file", log_file_name)


# Keys by which Hydra's instantiate would build or call anything importable. OmegaConf lets
# them into a structured config (they are "special"), so they are refused here: dmx builds
# its objects in code, from these dataclasses, and never from a config's say-so.
_BUILDER_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


def _refuse_builder_keys(node: Any, path: str = "") -> None:
    if isinstance(node, DictConfig):
        for key in node.keys():
            where = f"{path}.{key}" if path else str(key)
            if key in _BUILDER_KEYS:
                raise UserError(
                    f"{where}: dmx builds its objects itself and takes no {key} from a config; "
                    "remove it"
                )
            if key != "hydra":
                _refuse_builder_keys(node._get_node(key), where)


def unknown_key(key: str) -> str | None:
    """Why the dotted ``key`` is no setting of dmx's config, naming the settings beside it;
    None when it is one (or lies inside a free-form value the schema does not name)."""
    schema: Any = Config
    parts = key.split(".")
    if parts[0] == "hydra":  # Hydra's own config, checked by Hydra
        return None
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(schema):
            return None
        if part not in {f.name for f in dataclasses.fields(schema)}:
            return _unknown_key_message(key, ".".join(parts[:i]), schema)
        schema = typing.get_type_hints(schema)[part]
    return None


def _unknown_key_message(key: str, parent: str, schema: Any) -> str:
    names = ", ".join(f.name for f in dataclasses.fields(schema))
    return f"{key} is not a dmx setting; {parent or 'the config'} has: {names}"


def _refuse_unknown_keys(node: DictConfig, schema: Any = None, path: str = "") -> None:
    """Hydra's ``+key=value`` adds a key the schema lacks, which converting to dataclasses
    would silently drop: a typo must not go unnoticed."""
    schema = schema or Config
    hints = typing.get_type_hints(schema)
    names = {f.name for f in dataclasses.fields(schema)}
    for key in node.keys():
        where = f"{path}.{key}" if path else str(key)
        if not path and key == "hydra":
            continue
        if key not in names:
            raise UserError(_unknown_key_message(where, path, schema))
        child = node._get_node(key)
        if dataclasses.is_dataclass(hints[key]) and isinstance(child, DictConfig):
            _refuse_unknown_keys(child, hints[key], where)


def to_config(cfg: DictConfig) -> Config:
    """Turn a composed DictConfig into checked dataclasses; a bad value raises UserError."""
    _refuse_builder_keys(cfg)
    _refuse_unknown_keys(cfg)
    try:
        config = OmegaConf.to_object(cfg)
    except UserError:
        raise
    except Exception as err:  # OmegaConf wraps errors raised inside __post_init__
        cause = err.__cause__ or err.__context__
        if isinstance(cause, UserError):
            raise cause from None
        raise UserError(exception_line(err)) from None
    assert isinstance(config, Config)
    return config


def log_file_name() -> str:
    """train.log, or train.rank<N>.log in a data-parallel worker, which shares the run folder
    (one file per process, so none truncates another's)."""
    rank = os.environ.get("LOCAL_RANK", "0")
    return "train.log" if rank == "0" else f"train.rank{rank}.log"
