"""The carrier from the spectral lines of x^p, where the band's edges mislead.

The band estimate puts the centre midway between the band's edges. A band cut by a filter edge
(a signal near the edge of the sampled band, as TorchSig's narrowband records are: their
spectrum stops at +-0.25 cycles/sample) or tilted by multipath has its midpoint away from its
carrier, and a constellation image centred there spins. Linear modulations leave a line at
p * f0 in the spectrum of x^p (p = 2: BPSK, PAM, AM-DSB; 4: QPSK and QAM; 8: 8PSK). Where one
line stands clear above its spectrum, and no second one rivals it (the two lines of MSK-like
FSK), the carrier is that line over p, at the alias k / p nearest the band's centre. Other
records (FSK, FM, SSB, noise) keep the band's centre. Vectorised; a record's answer depends on
that record only.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

POWERS = (2, 4, 8)  # tried in turn; the lowest power with a line wins (the fewest aliases)
LINE_RATIO = 300.0  # a line's least power over its spectrum's median (every power p)
RIVAL_SHARE = 0.2  # a second line this strong, away from the first, makes both ambiguous
GUARD_LOBES = 3  # "away": beyond this many main-lobe widths (nfft / burst length bins)
CHUNK = 256  # records per FFT batch (bounded memory)


def line_carrier(
    x: np.ndarray, f0: np.ndarray, start: np.ndarray, stop: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N, L) records and their band centres -> refined centres, and which had a clear line.

    Only samples in [start, stop) count (the burst). Centres are cycles/sample in [-0.5, 0.5).
    """
    out, found = np.asarray(f0, np.float64).copy(), np.zeros(len(x), bool)
    for lo in range(0, len(x), CHUNK):
        rows = slice(lo, lo + CHUNK)
        out[rows], found[rows] = _chunk(x[rows], out[rows], start[rows], stop[rows])
    return out, found


def _chunk(x, f0, start, stop) -> tuple[np.ndarray, np.ndarray]:
    """``line_carrier`` over one batch of records."""
    n, length = x.shape
    nfft = 2 * sfft.next_fast_len(length)
    on = (np.arange(length) >= start[:, None]) & (np.arange(length) < stop[:, None])
    z = np.where(on, x, 0).astype(np.complex128)
    power = (np.abs(z) ** 2).sum(axis=1) / np.maximum(on.sum(axis=1), 1)
    z /= np.sqrt(np.maximum(power, 1e-30))[:, None]
    guard = GUARD_LOBES * nfft / np.maximum(stop - start, 1)
    out, found = f0.copy(), np.zeros(n, bool)
    for p in POWERS:
        todo = np.flatnonzero(~found)
        if todo.size == 0:
            break
        line, clear = _clear_line(z[todo] ** p, nfft, guard[todo])
        hit = todo[clear]
        out[hit] = _nearest_alias(line[clear] / p, f0[hit], p)
        found[hit] = True
    return out, found


def _clear_line(y, nfft: int, guard) -> tuple[np.ndarray, np.ndarray]:
    """Each row's strongest spectral line (cycles/sample) and whether it stands clear alone."""
    spec = np.abs(sfft.fft(y, nfft, axis=1)) ** 2
    rows = np.arange(len(y))
    peak = spec.argmax(axis=1)
    top = spec[rows, peak]
    distance = np.abs((np.arange(nfft) - peak[:, None] + nfft // 2) % nfft - nfft // 2)
    rival = np.where(distance > guard[:, None], spec, 0.0).max(axis=1)
    median = np.median(spec, axis=1)
    clear = (top > LINE_RATIO * np.maximum(median, 1e-30)) & (rival < RIVAL_SHARE * top)
    return _refined_peak(spec, peak) / nfft, clear


def _refined_peak(spec: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """The peak bin, refined by a parabola through it and its neighbours (fractional bins)."""
    nfft = spec.shape[1]
    rows = np.arange(len(spec))
    a, b, c = (np.log(spec[rows, (peak + k) % nfft] + 1e-300) for k in (-1, 0, 1))
    bend = a - 2 * b + c
    shift = np.where(bend < 0, 0.5 * (a - c) / np.where(bend < 0, bend, -1.0), 0.0)
    return peak + np.clip(shift, -0.5, 0.5)


def _nearest_alias(base: np.ndarray, f0: np.ndarray, p: int) -> np.ndarray:
    """``base + k / p`` nearest (on the circle) to ``f0``, wrapped to [-0.5, 0.5)."""
    k = np.round((f0 - base) * p)
    return (base + k / p + 0.5) % 1.0 - 0.5


__all__ = ["line_carrier"]
