"""The front-end with its estimates given: what ``fedsb classify`` applies to a burst's windows.

:func:`.frontend.apply_frontend` estimates each record's band and burst from that record
alone. A detected burst is usually longer than one record and its edges are already known,
so ``fedsb classify`` estimates the band once over the burst (up to ``BAND_SAMPLES`` from its
middle: more segments in the PSD, a steadier centre and width), takes the on-part of each
window from the burst's edges, and runs every window through the same steps as
:func:`.frontend.apply_frontend` (recentre, resample, gate, unit power) with those.
"""

from __future__ import annotations

import numpy as np

from .frontend import FrontendConfig, resample, resample_ratio
from .occupancy import estimate_band

#: Samples of a burst (from its middle) its band is estimated on.
BAND_SAMPLES = 16384


def burst_band(x: np.ndarray) -> tuple[float, float, bool]:
    """(centre in cycles/sample, occupied width, detected) of one burst's samples."""
    x = np.asarray(x, np.complex64).reshape(-1)
    if x.size > BAND_SAMPLES:
        lo = (x.size - BAND_SAMPLES) // 2
        x = x[lo : lo + BAND_SAMPLES]
    if x.size < 16:
        return 0.0, 1.0, False
    band = estimate_band(x[None, :])
    return float(band.f0[0]), float(band.bw[0]), bool(band.detected[0])


def _tone(cycles: np.ndarray) -> np.ndarray:
    """exp(j 2 pi cycles) as complex64; the whole turns are dropped in float64 first."""
    phase = (2 * np.pi * (cycles - np.round(cycles))).astype(np.float32)
    out = np.empty(phase.shape, np.complex64)
    out.real, out.imag = np.cos(phase), np.sin(phase)
    return out


def _gather(x: np.ndarray, start: np.ndarray, stop: np.ndarray, fill: str) -> np.ndarray:
    """Each record with the samples outside [start, stop) wrapped into it, or zeros."""
    n, length = x.shape
    index = np.broadcast_to(np.arange(length), (n, length))
    lo, span = start[:, None], (stop - start)[:, None]
    inside = (index >= lo) & (index < lo + span)
    values = x[np.arange(n)[:, None], lo + np.mod(index - lo, span)]
    return values if fill == "wrap" else np.where(inside, values, np.complex64(0))


def _unit_power(y: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Each record scaled so that its ``kept`` samples have unit mean power (silence stays 0)."""
    power = (np.abs(y) ** 2 * kept).sum(axis=1) / np.maximum(kept.sum(axis=1), 1)
    scale = np.where(power > 0, 1.0 / np.sqrt(np.maximum(power, 1e-300)), 1.0)
    return (y * scale[:, None].astype(np.float32)).astype(np.complex64)


def apply_given(
    iq: np.ndarray,
    config: FrontendConfig,
    band: tuple[np.ndarray, np.ndarray, np.ndarray],
    on: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """(N, L) records through ``config``'s steps with given estimates -> (N, L) complex64.

    ``band``: (f0, bw, detected) per record; ``on``: (start, stop) per record, the part kept
    by the gate (used only when ``config.gate``). Given the estimates of
    :func:`.frontend.estimate`, the output is that of :func:`.frontend.apply_frontend`.
    """
    x = np.ascontiguousarray(iq, dtype=np.complex64)
    n, length = x.shape
    f0, bw, detected = (np.asarray(v) for v in band)
    whole = np.zeros(n, np.int64), np.full(n, length, np.int64)
    start, stop = (np.asarray(v, np.int64) for v in on) if config.gate else whole
    if config.recentre or config.resample:
        x = x * _tone(-f0[:, None] * np.arange(length))
    if config.resample:
        ratio = resample_ratio(bw, detected, config.occupancy)
        y, times = resample(x, ratio, start, stop, config.fill)
        if not config.recentre:
            y *= _tone(f0[:, None] * times)
    else:
        times = np.broadcast_to(np.arange(length), (n, length))
        y = _gather(x, start, stop, config.fill) if config.gate else x
    kept = (times >= start[:, None]) & (times < stop[:, None])
    return _unit_power(y, kept | (config.fill == "wrap"))
