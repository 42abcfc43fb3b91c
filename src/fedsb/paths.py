"""A path in a config file is relative to that file, so a config works from any directory.

``load_config`` passes a file's raw table through ``resolve_config_paths`` before building the
config: each path field (``PATH_FIELDS``) that names something next to the config file becomes
that thing's absolute path, which is what a run directory's ``config.toml`` then keeps (so
``--resume`` works from anywhere). A relative value with nothing there is left as written, i.e.
relative to the current directory: what configs written before this rule meant. Built-in
defaults and ``--set`` overrides are not in a file and stay relative to the current directory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Top-level config fields that hold a path.
PATH_FIELDS = ("pretrained",)
#: Fields of the ``[data]`` table that hold lists of files, globs or directories.
DATA_PATH_FIELDS = ("paths", "val_paths", "test_paths")
_GLOB = frozenset("*?[")


def resolve_relative(value: str, config_file: str | Path) -> str:
    """``value`` resolved against ``config_file``'s folder when something is there.

    A glob counts as there when it matches something beside the file.
    """
    path = Path(value).expanduser()
    if path.is_absolute():
        return value
    folder = Path(config_file).parent.resolve()
    if _GLOB & set(value):
        return str(folder / path) if any(folder.glob(value)) else value
    beside = folder / path
    return str(beside.resolve()) if beside.exists() else value


def resolve_config_paths(
    cls: type, data: Mapping[str, Any], config_file: str | Path
) -> dict[str, Any]:
    """``data`` (a config file's raw table for ``cls``) with its path fields resolved."""
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    out = dict(data)
    for key in PATH_FIELDS:
        if key in fields and isinstance(out.get(key), str) and out[key]:
            out[key] = resolve_relative(out[key], config_file)
    data = out.get("data")
    if "data" in fields and isinstance(data, Mapping):
        data = dict(data)
        for key in DATA_PATH_FIELDS:
            if isinstance(data.get(key), list):
                data[key] = [
                    resolve_relative(v, config_file) if isinstance(v, str) and v else v
                    for v in data[key]
                ]
        out["data"] = data
    return out
