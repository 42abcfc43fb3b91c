"""Pulse shaping at a non-integer number of samples per symbol, vectorised over records.

A record's output sample k sits at symbol time t_k = k / sps + tau (in symbols). Its value is
the sum over the 2*SPAN nearest symbols m of a_m * p(t_k - m). Pulse values are read from a
table indexed by (shape parameter, fractional part of t quantised to 1/OVERSAMPLE, tap), so the
hot path is a compiled loop over (N, L, 2*SPAN) (``kernels``), with no per-record Python.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import erf

from . import kernels

SPAN = 4  # symbols on each side of t: the pulse is truncated to 2*SPAN symbols
OVERSAMPLE = 64  # fractional-time resolution of the table (1/64 symbol)
#: The resolution with a drawn bandwidth, where sps may exceed 64: finer than a sample up to
#: 1024 samples per symbol (the kernels read the resolution from the table's shape).
BAND_OVERSAMPLE = 1024
GRID = 32  # quantisation steps of a shape parameter (roll-off, BT) across its range
_TAPS = np.arange(-SPAN + 1, SPAN + 1)  # symbol offsets m - floor(t)


def rrc(u: np.ndarray, beta: float) -> np.ndarray:
    """Root-raised-cosine pulse at time ``u`` (symbols), roll-off ``beta``; p(0) is the peak."""
    u = np.asarray(u, dtype=np.float64)
    out = np.empty_like(u)
    at0 = np.abs(u) < 1e-9
    sing = np.abs(np.abs(u) - 1.0 / (4.0 * beta)) < 1e-9
    rest = ~(at0 | sing)
    v = u[rest]
    num = np.sin(np.pi * v * (1 - beta)) + 4 * beta * v * np.cos(np.pi * v * (1 + beta))
    out[rest] = num / (np.pi * v * (1 - (4 * beta * v) ** 2))
    out[at0] = 1 - beta + 4 * beta / np.pi
    out[sing] = (beta / np.sqrt(2)) * (
        (1 + 2 / np.pi) * np.sin(np.pi / (4 * beta)) + (1 - 2 / np.pi) * np.cos(np.pi / (4 * beta))
    )
    return out


def gaussian_phase(u: np.ndarray, bt: float) -> np.ndarray:
    """Integral of the unit-area Gaussian-filtered rectangular frequency pulse (GFSK/GMSK).

    Goes from 0 (u << 0) to 1 (u >> 0); a symbol a_m adds pi*h*a_m*q(t - m) to the phase.
    """
    u = np.asarray(u, dtype=np.float64)
    c = np.pi * bt * np.sqrt(2.0 / np.log(2.0))

    # q(u) = 0.5 * [G(u + 1/2) - G(u - 1/2)] with G the antiderivative of erf(c x)
    def anti(x: np.ndarray) -> np.ndarray:
        return x * erf(c * x) + np.exp(-((c * x) ** 2)) / (c * np.sqrt(np.pi))

    return 0.5 * (anti(u + 0.5) - anti(u - 0.5)) + 0.5


def rect_phase(u: np.ndarray) -> np.ndarray:
    """Integral of the rectangular frequency pulse of CPFSK: a linear ramp over one symbol."""
    return np.clip(np.asarray(u, dtype=np.float64) + 0.5, 0.0, 1.0)


def gaussian(u: np.ndarray, bt: float) -> np.ndarray:
    """Gaussian amplitude pulse whose spectrum is 3 dB down at ``bt`` / symbol (p(0) = 1)."""
    sigma = np.sqrt(np.log(2.0)) / (2 * np.pi * bt)  # symbols
    return np.exp(-0.5 * (np.asarray(u, dtype=np.float64) / sigma) ** 2)


def rect(u: np.ndarray) -> np.ndarray:
    """Rectangular (NRZ) pulse of one symbol, [-1/2, 1/2)."""
    u = np.asarray(u, dtype=np.float64)
    return ((u >= -0.5) & (u < 0.5)).astype(np.float64)


def half_sine(u: np.ndarray) -> np.ndarray:
    """Half-sine pulse of one symbol: cos(pi u) on [-1/2, 1/2] (MSK's pulse, as OQPSK's)."""
    u = np.asarray(u, dtype=np.float64)
    return np.where(np.abs(u) <= 0.5, np.cos(np.pi * u), 0.0)


def parameter_grid(low: float, high: float) -> np.ndarray:
    """The GRID values a shape parameter is quantised to (one value when low == high)."""
    return np.array([low]) if low == high else np.linspace(low, high, GRID)


@lru_cache(maxsize=32)
def pulse_table(kind: str, low: float, high: float, oversample: int = OVERSAMPLE) -> np.ndarray:
    """Table (P, oversample + 1, 2*SPAN) float32 of pulse values p(f/oversample - tap)."""
    params = parameter_grid(low, high)
    frac = np.arange(oversample + 1) / oversample
    u = frac[:, None] - _TAPS[None, :]  # (F, 2S) time since each symbol
    if kind == "rrc":
        rows = [rrc(u, b) for b in params]
    elif kind == "gaussian":
        rows = [gaussian(u, bt) for bt in params]
    elif kind == "rect":
        rows = [rect(u) for _ in params]
    elif kind == "half-sine":
        rows = [half_sine(u) for _ in params]
    elif kind == "gaussian_phase":
        rows = [gaussian_phase(u, bt) for bt in params]
    elif kind == "rect_phase":
        rows = [rect_phase(u) for _ in params]
    else:
        raise ValueError(f"unknown pulse kind {kind!r}")
    return np.stack(rows).astype(np.float32)


def quantise(values: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Index into ``parameter_grid(low, high)`` nearest to each value, and the grid value."""
    grid = parameter_grid(low, high)
    if len(grid) == 1:
        return np.zeros(len(values), dtype=np.intp), np.full(len(values), grid[0])
    idx = np.rint((values - low) / (high - low) * (len(grid) - 1)).astype(np.intp)
    return idx, grid[idx]


def symbol_times(length: int, sps: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """(N, L) float64 symbol time of every output sample, offset so that t >= SPAN.

    float64 keeps the fractional part exact to far below the table's 1/128 symbol even for
    records of a million samples.
    """
    k = np.arange(length, dtype=np.float64)
    return k[None, :] / sps[:, None] + (tau[:, None] + SPAN)


def symbols_needed(length: int, sps: np.ndarray) -> int:
    """Symbols to draw per record so every tap of every sample has a symbol."""
    return int(np.ceil((length - 1) / sps.min())) + 2 * SPAN + 3


def pulse_train(
    symbols: np.ndarray, t: np.ndarray, table: np.ndarray, param_idx: np.ndarray
) -> np.ndarray:
    """Sum_m symbols[:, m] * p(t - m) for every (record, sample).

    Args:
        symbols: (N, M) real or complex symbols.
        t: (N, L) symbol times from ``symbol_times`` (t >= SPAN, and t + SPAN < M).
        table: (P, OVERSAMPLE + 1, 2*SPAN) from ``pulse_table``.
        param_idx: (N,) row of the table per record.

    Returns:
        (N, L) float32 for real symbols, complex64 for complex ones.
    """
    dtype = np.complex64 if np.iscomplexobj(symbols) else np.float32
    out = np.empty(t.shape, dtype)
    kernels.pulse_train(
        np.ascontiguousarray(symbols, dtype), t, table, np.asarray(param_idx, np.intp), out
    )
    return out


def phase_train(
    symbols: np.ndarray, t: np.ndarray, table: np.ndarray, param_idx: np.ndarray
) -> np.ndarray:
    """Sum_m symbols[:, m] * q(t - m) for a real phase pulse q rising from 0 to 1.

    Symbols older than the table's span have fully contributed (q = 1) and enter through a
    running sum, so the result is the exact phase of continuous-phase FSK. float64 output:
    the accumulated phase of a long record needs it.
    """
    out = np.empty(t.shape, np.float64)
    kernels.phase_train(
        np.ascontiguousarray(symbols, np.float64), t, table, np.asarray(param_idx, np.intp), out
    )
    return out
