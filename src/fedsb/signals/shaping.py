"""Pulse shapes of the linear classes and the symbol rate that realises a drawn bandwidth.

With ``pulse.shapes = ["rrc"]`` (the default) nothing here draws: the linear classes keep
their root-raised-cosine path. With several shapes each record draws one (uniformly); all of
them are rows of one stacked table, so a block is still one compiled pulse-train call.

Occupied bandwidth of a pulse, in units of the symbol rate (``occupancy``): the band edge
(1 + roll-off) for RRC, whose spectrum is zero beyond it; the 99 % power bandwidth for the
Gaussian (4.376 BT) and the half-sine (2.366) pulses; the main lobe (2, null to null) for the
rectangular pulse, whose 99 % bandwidth (about 19) would say little about how it looks.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from . import pulses
from .config import PULSE_SHAPES, PulseConfig

GAUSSIAN_99 = 4.376  # 99 % bandwidth of the Gaussian pulse / (BT * symbol rate): 2 * 2.576 * 0.849
HALF_SINE_99 = 2.366  # 99 % bandwidth of the half-sine pulse / symbol rate
RECT_MAIN_LOBE = 2.0


class Shaped(NamedTuple):
    """Per-record pulse choice: the stacked table, each record's row and the metadata."""

    table: np.ndarray  # (rows, OVERSAMPLE + 1, 2 * SPAN) float32
    row: np.ndarray  # (N,) row of the table per record
    occupancy: np.ndarray  # (N,) occupied bandwidth x samples per symbol
    meta: dict[str, np.ndarray]


@lru_cache(maxsize=16)
def stacked_table(
    shapes: tuple[str, ...],
    rolloff: tuple[float, float],
    bt: tuple[float, float],
    oversample: int = pulses.OVERSAMPLE,
) -> tuple[np.ndarray, tuple[int, ...]]:
    """All the shapes' pulse tables stacked, and the first row of each shape."""
    parts, first, row = [], [], 0
    for shape in shapes:
        low, high = {"rrc": rolloff, "gaussian": bt}.get(shape, (0.0, 0.0))
        table = pulses.pulse_table(shape, low, high, oversample)
        parts.append(table)
        first.append(row)
        row += len(table)
    return np.concatenate(parts), tuple(first)


def draw_shapes(
    rng: np.random.Generator, n: int, cfg: PulseConfig, beta: np.ndarray, oversample: int
) -> Shaped:
    """Draw a shape (and a Gaussian BT) per record; ``beta`` is the records' drawn roll-off."""
    table, first = stacked_table(cfg.shapes, cfg.rolloff, cfg.gaussian_bt, oversample)
    pick = rng.integers(0, len(cfg.shapes), size=n)
    bt_idx, bt = pulses.quantise(rng.uniform(*cfg.gaussian_bt, size=n), *cfg.gaussian_bt)
    beta_idx, _ = pulses.quantise(beta, *cfg.rolloff)
    row = np.empty(n, np.intp)
    occupancy = np.empty(n)
    shape_meta = np.empty(n)
    for s, shape in enumerate(cfg.shapes):
        sel = pick == s
        shape_meta[sel] = PULSE_SHAPES.index(shape)
        if shape == "rrc":
            row[sel], occupancy[sel] = first[s] + beta_idx[sel], 1.0 + beta[sel]
        elif shape == "gaussian":
            row[sel], occupancy[sel] = first[s] + bt_idx[sel], GAUSSIAN_99 * bt[sel]
        else:
            row[sel] = first[s]
            occupancy[sel] = HALF_SINE_99 if shape == "half-sine" else RECT_MAIN_LOBE
    is_rrc = shape_meta == PULSE_SHAPES.index("rrc")
    is_gauss = shape_meta == PULSE_SHAPES.index("gaussian")
    meta = {
        "pulse": shape_meta,
        "rolloff": np.where(is_rrc, beta, np.nan),
        "bt": np.where(is_gauss, bt, np.nan),
    }
    return Shaped(table, row, occupancy, meta)


def rrc_only(cfg: PulseConfig, beta: np.ndarray, beta_idx: np.ndarray, oversample: int) -> Shaped:
    """The default: every record RRC with its drawn roll-off (draws nothing)."""
    table = pulses.pulse_table("rrc", *cfg.rolloff, oversample)
    return Shaped(table, beta_idx, 1.0 + beta, {"rolloff": beta})


def band_sps(occupancy: np.ndarray, bandwidth: np.ndarray) -> np.ndarray:
    """Samples per symbol that give a pulse of ``occupancy`` the occupied ``bandwidth``."""
    return occupancy / bandwidth
