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
from ..io.cache import atomic_file, temp_path

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
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
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "figures").mkdir(exist_ok=True)

    def save_config(self, config: Any) -> None:
        save_config(config, self.path / CONFIG_FILE)

    def log(self, **row: Any) -> None:
        """Append one JSON line to metrics.jsonl (flushed at once: a killed run keeps its rows)."""
        with open(self.path / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(_plain(row), sort_keys=True) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        path = self.path / METRICS_FILE
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def figure(self, name: str) -> Path:
        return self.path / "figures" / name


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON, written atomically; NaN is refused (JSON has none)."""
    path = Path(path)
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
    """(state dict, metadata) of a checkpoint; a one-line DataError when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such checkpoint")
    try:
        with safe_open(str(path), "pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("fedsb", "{}"))
            state = {k: handle.get_tensor(k) for k in handle.keys()}
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a readable checkpoint ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError
        raise DataError(path, f"not a readable checkpoint ({exc})") from None
    return state, meta
