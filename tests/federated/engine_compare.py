"""Comparing two runs of one config on two engines (embedded and Flower): the shared helpers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from .conftest import Workspace

VOLATILE = {"seconds"}  # wall clock: differs between engines by nature


def close(a: Any, b: Any, path: str = "") -> None:
    """Recursive equality, floats within a tolerance (thread scheduling, float32 sums)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {set(a) ^ set(b)}"
        for k in a:
            if k not in VOLATILE:
                close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: {a} != {b}"
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None, f"{path}: {a} != {b}"
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def assert_same_tensors(a: dict, b: dict, what: str = "") -> None:
    """The same keys (at least one) and the same values within the engines' float32 rounding."""
    assert a.keys() == b.keys() and a, what
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=f"{what}:{key}")


def flower_env(tmp: Path) -> pytest.MonkeyPatch:
    """Flower's environment for a test: its home under ``tmp``, no telemetry, no downloads."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FLWR_HOME", str(tmp / "flwr-home"))
    mp.setenv("FLWR_TELEMETRY_ENABLED", "0")
    mp.setenv("FLWR_DISABLE_UPDATE_CHECK", "1")
    mp.setenv("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
    return mp


def flower_run(ws: Workspace, out: Path, *overrides: str) -> None:
    """``ws.run`` on the Flower simulation engine."""
    mp = flower_env(out.parent)
    try:
        ws.run(out, *overrides, "engine='flower'")
    finally:
        mp.undo()
