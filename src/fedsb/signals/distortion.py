"""TorchSig's level-2 distortions that our channel and hardware lack (``DistortionConfig``).

Pure functions of (records, Generator, config), like ``hardware``: every parameter is drawn
for every record whether or not it is hit, so the draws do not depend on which records are.
"""

from __future__ import annotations

import numpy as np

from .config import DistortionConfig
from .hardware import nonzero_power

Meta = dict[str, np.ndarray]
_EDGE_TRANSITION = 0.01  # cycles/sample, the edge cut's raised-cosine width

#: Per-record metadata written when ``distortion`` is on (NaN for the records it spared).
DISTORTION_META = ("dense_taps", "polynomial_a3", "polynomial_a5", "gain_step_db",
                   "gain_step_at", "slope")  # fmt: skip


def _fft_filter(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Per row, the 'valid' part of x * h: (N, M) and (N, T) give (N, M - T + 1)."""
    m, t = x.shape[1], h.shape[1]
    size = 1 << (m + t - 2).bit_length()
    y = np.fft.ifft(np.fft.fft(x, size, axis=1) * np.fft.fft(h, size, axis=1), axis=1)
    return y[:, t - 1 : m]


def dense_multipath(
    x: np.ndarray, rng: np.random.Generator, cfg: DistortionConfig
) -> tuple[np.ndarray, Meta]:
    """A share of the records through a static FIR of i.i.d. complex Gaussian taps.

    ``x`` is (N, M) with ``cfg.padding`` leading samples of run-in; the result is (N, M -
    padding). The taps have unit total power, so the mean power is kept.
    """
    n = x.shape[0]
    longest = cfg.padding + 1
    hit = rng.random(n) < cfg.dense_probability
    taps = np.ceil(1 / rng.uniform(*cfg.dense_coherence_bandwidth, size=n)).astype(np.int64)
    taps = np.minimum(taps, longest)
    h = rng.standard_normal((n, longest, 2)).view(np.complex128)[..., 0]
    h = np.where(np.arange(longest) < taps[:, None], h, 0)
    h /= np.sqrt((np.abs(h) ** 2).sum(axis=1, keepdims=True))
    y = x[:, longest - 1 :].copy()
    sel = np.flatnonzero(hit)
    if sel.size:
        y[sel] = _fft_filter(x[sel].astype(np.complex128), h[sel]).astype(np.complex64)
    return y, {"dense_taps": np.where(hit, taps, np.nan)}


def polynomial(
    x: np.ndarray, rng: np.random.Generator, cfg: DistortionConfig
) -> tuple[np.ndarray, Meta]:
    """A share of the records through u (1 + a3 |u|^2 + a5 |u|^4), u the unit-power signal.

    The output keeps the input's power: the nonlinearity changes the shape, not the level.
    """
    n = x.shape[0]
    hit = rng.random(n) < cfg.polynomial_probability
    lo, hi = np.log10(cfg.polynomial_coefficient)
    c3 = rng.uniform(lo, hi, size=n)
    c5 = lo + (c3 - lo) * rng.random(n)  # log-uniform below c3, as TorchSig redraws until
    fifth = rng.random(n) < 0.5
    level = rng.uniform(*cfg.polynomial_level_db, size=n) / 10
    a3 = 10 ** (c3 + level)
    a5 = np.where(fifth, 10 ** (c5 + 2 * level), 0.0)
    meta = {"polynomial_a3": np.where(hit, a3, np.nan), "polynomial_a5": np.where(hit, a5, np.nan)}
    sel = np.flatnonzero(hit)
    if not sel.size:
        return x, meta
    xs = x[sel].astype(np.complex128)
    scale = np.sqrt(np.maximum(nonzero_power(xs), 1e-30))[:, None]
    r2 = np.abs(xs / scale) ** 2
    ys = xs * (1 + a3[sel, None] * r2 + a5[sel, None] * r2**2)
    ys *= scale / np.sqrt(np.maximum(nonzero_power(ys), 1e-30))[:, None]
    out = x.copy()
    out[sel] = ys.astype(np.complex64)
    return out, meta


def edge_cut(
    x: np.ndarray, rng: np.random.Generator, cfg: DistortionConfig, center, bandwidth
) -> tuple[np.ndarray, Meta]:
    """A share of the records with the outer side of their band cut off by a brick wall.

    The outer side is the one away from DC (either, at random, for a centred band); the wall
    sits ``share`` of the occupied ``bandwidth`` inside that edge, with a raised-cosine
    transition of 0.01 cycles/sample. Power is not renormalised: the SNR is set later.
    """
    n, m = x.shape
    hit = rng.random(n) < cfg.edge_cut_probability
    share = rng.uniform(*cfg.edge_cut_share, size=n)
    side = np.where(center > 0, 1.0, np.where(center < 0, -1.0, rng.choice([-1.0, 1.0], n)))
    meta = {"edge_cut": np.where(hit, share, np.nan)}
    sel = np.flatnonzero(hit)
    if not sel.size:
        return x, meta
    wall = center[sel] + side[sel] * bandwidth[sel] * (0.5 - share[sel])  # (S,) cycles/sample
    f = np.fft.fftfreq(m)[None, :]
    beyond = side[sel, None] * (f - wall[:, None])  # > 0: the side that goes
    gain = 0.5 - 0.5 * np.sin(np.pi * np.clip(beyond / _EDGE_TRANSITION, -0.5, 0.5))
    out = x.copy()
    out[sel] = np.fft.ifft(np.fft.fft(x[sel], axis=1) * gain, axis=1).astype(np.complex64)
    return out, meta


def receiver(
    x: np.ndarray, rng: np.random.Generator, cfg: DistortionConfig
) -> tuple[np.ndarray, Meta]:
    """The received records (noise included): a first-difference tilt, then a gain step."""
    n, length = x.shape
    sloped = rng.random(n) < cfg.slope_probability
    stepped = rng.random(n) < cfg.gain_step_probability
    step_db = rng.uniform(*cfg.gain_step_db, size=n)
    at = rng.integers(1, length - 1, size=n)
    meta = {
        "slope": sloped.astype(np.float64),
        "gain_step_db": np.where(stepped, step_db, np.nan),
        "gain_step_at": np.where(stepped, at, np.nan),
    }
    if not (sloped.any() or stepped.any()):
        return x, meta
    y = x.copy()
    y[sloped, 1:] += x[sloped, 1:] - x[sloped, :-1]
    gain = np.where(np.arange(length) >= at[:, None], 10 ** (step_db[:, None] / 20), 1.0)
    y[stepped] *= gain[stepped].astype(np.float32)
    return y, meta
