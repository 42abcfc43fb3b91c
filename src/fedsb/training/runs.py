"""Run directories: resolved config, metrics.jsonl, checkpoints (safetensors), atomic writes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..config import save_config
from ..errors import DataError
from ..io.budget import check_budget
from ..io.cache import atomic_file, temp_path
from ..runfiles import (  # noqa: F401  (re-exported: the trainers and the CLI use them)
    CONFIG_FILE,
    METRICS_FILE,
    check_file_out,
    check_out,
    check_sub_runs,
    holds_run,
    make_dir,
    read_rows,
)

MODEL_FILE = "model.safetensors"


def _plain(value: Any) -> Any:
    """JSON-safe value: NaN/inf become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class RunDir:
    """One run's folder: ``config.toml``, ``metrics.jsonl``, checkpoints and ``figures/``."""

    def __init__(self, path: str | Path):
        """Create the folder, or a one-line error when ``path`` cannot be a run directory
        (a file, below a file, not writable)."""
        self.path = make_dir(path)
        make_dir(self.path / "figures")

    def save_config(self, config: Any) -> None:
        save_config(config, self.path / CONFIG_FILE)

    def log(self, **row: Any) -> None:
        """Append one JSON line to metrics.jsonl (flushed at once: a killed run keeps its rows)."""
        with open(self.path / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(_plain(row), sort_keys=True) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        """The metrics rows; a row torn by a kill mid-write (the last line) is left out."""
        return read_rows(self.path / METRICS_FILE)

    def figure(self, name: str) -> Path:
        return self.path / "figures" / name


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON, written atomically; NaN is refused (JSON has none)."""
    path = check_file_out(path)
    with atomic_file(path) as handle:
        handle.write(json.dumps(data, indent=1, allow_nan=False).encode())
    return path


def save_checkpoint(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Tensors + JSON metadata in one safetensors file, written atomically."""
    path = Path(path)
    tmp = temp_path(path, ".safetensors")
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    try:
        save_file(tensors, str(tmp), metadata={"fedsb": json.dumps(_plain(meta), sort_keys=True)})
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (full disk) leaves no temporary file
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, metadata) of a checkpoint; a one-line DataError when it is unusable.

    safetensors bounds its own header (a claimed length of 10^15 bytes is an error); the
    file size is checked against the input budget and the "fedsb" JSON must be an object.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such checkpoint")
    check_budget(path, path.stat().st_size, "the checkpoint", verb="is")
    try:
        with safe_open(str(path), "pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("fedsb", "{}"))
            if not isinstance(meta, dict):
                kind = type(meta).__name__
                raise DataError(path, f"metadata 'fedsb' is not a JSON object (got {kind})")
            state = {k: handle.get_tensor(k) for k in handle.keys()}
    except DataError:
        raise
    except RecursionError:
        raise DataError(path, "metadata 'fedsb' nests too deeply to read") from None
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a readable checkpoint ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(path, f"not a readable checkpoint ({problem})") from None
    return state, meta
