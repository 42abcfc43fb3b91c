"""Weak bursts and their edges: sub-band energy detection and a likelihood-ratio edge fit.

Helpers of :mod:`.bursts`. Energy detection over the whole band misses a weak narrowband
burst: its excess power is spread over noise from the whole band. Here the recording is also
reduced to a coarse spectrogram (``SPEC_BINS`` bins per ``SPEC_BLOCK`` samples, 64 bytes per
256 samples, 1/32 of the cf32 data), each bin's noise floor is estimated, and the power of
every sub-band of 1, 2, 4 and 8 bins (offsets of half a width) is searched like the whole
band, at smoothing scales of 1024 to 4096 samples. Thresholds are Wilson-Hilferty z-scores of
the mean of ``dof`` unit exponentials, so a narrow band and a short window are held to the
same false-alarm rate as the whole band.

Edges: a weak burst's start and end are moved (outwards, by default) to the maximum of the
log-likelihood ratio of "a constant power P over [a, b), the floor F elsewhere" against "the
floor throughout", which for block means of ``dof`` exponential samples is
``dof * n * (r - 1 - log r)``, ``r = P / F``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft

SPEC_BLOCK = 256  # samples per spectrogram row
SPEC_BINS = 16  # FFT size and bins per row (16 FFTs averaged per row)
BAND_WIDTHS = (1, 2, 4, 8)  # sub-band widths searched, in bins
BAND_SCALES = (1024, 2048, 4096)  # smoothing windows of the sub-band search, samples
#: Quantile of the smoothed bin power that starts the floor estimate (bias-corrected).
FLOOR_Q, FLOOR_Z = 0.1, -1.2816
FIT_MAX_EXCESS = 3.0  # edges are fitted for bursts at most this far over the floor (6 dB)


def wh_z(ratio: np.ndarray | float, dof: np.ndarray | float) -> np.ndarray:
    """z-score of ``ratio`` = (mean of ``dof`` unit exponentials) by Wilson-Hilferty."""
    dof = np.asarray(dof, np.float64)
    r = np.cbrt(np.maximum(np.asarray(ratio, np.float64), 0.0))
    return (r - (1 - 1 / (9 * dof))) * 3 * np.sqrt(dof)


def wh_ratio(z: float, dof: float) -> float:
    """The ratio whose :func:`wh_z` is ``z`` (the inverse at one ``dof``)."""
    return (1 - 1 / (9 * dof) + z / (3 * math.sqrt(dof))) ** 3


def smooth(power: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average over ``k`` blocks (shifted inwards at the ends)."""
    c = np.concatenate([[0.0], np.cumsum(power, dtype=np.float64)])
    n = power.size
    lo = np.clip(np.arange(n) - k // 2, 0, n)
    hi = np.minimum(lo + k, n)
    lo = np.maximum(hi - k, 0)
    return (c[hi] - c[lo]) / np.maximum(hi - lo, 1)


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of True, [start, end)."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def hysteresis(s: np.ndarray, on: float, off: float, gap: int) -> list[tuple[int, int]]:
    """Runs above ``off`` that reach ``on``, runs closer than ``gap`` blocks joined."""
    starts, ends = runs(s > off)
    reach = np.concatenate([[0], np.cumsum(s > on)])
    keep = reach[ends] > reach[starts]
    starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
        return []
    first = np.flatnonzero(np.concatenate([[True], starts[1:] - ends[:-1] >= gap]))
    last = np.concatenate([first[1:] - 1, [starts.size - 1]])
    return list(zip(starts[first].tolist(), ends[last].tolist(), strict=True))


class SpectralPower:
    """Mean periodogram per ``SPEC_BLOCK`` samples (``SPEC_BINS`` bins, DC centred) of a stream.

    Normalised so that white noise of power P gives P in every bin.
    """

    def __init__(self) -> None:
        """Start an empty stream."""
        self._parts: list[np.ndarray] = []
        self._carry = np.zeros(0, np.complex64)

    def add(self, x: np.ndarray) -> None:
        """Append the chunk ``x`` (complex samples), in single precision, 64 rows at a time."""
        x = np.concatenate([self._carry, np.asarray(x, np.complex64).reshape(-1)])
        whole = x.size // SPEC_BLOCK * SPEC_BLOCK
        rows = x[:whole].reshape(-1, SPEC_BLOCK // SPEC_BINS, SPEC_BINS)
        for lo in range(0, rows.shape[0], 64):
            spec = sfft.fft(rows[lo : lo + 64], axis=2)
            power = (spec.real**2 + spec.imag**2).mean(1) / np.float32(SPEC_BINS)
            self._parts.append(np.fft.fftshift(power, axes=1).astype(np.float32))
        self._carry = x[whole:].copy()

    def result(self) -> np.ndarray:
        """(rows, SPEC_BINS) float32; a last partial row is left out."""
        if not self._parts:
            return np.zeros((0, SPEC_BINS), np.float32)
        self._parts = [np.concatenate(self._parts)]  # held once, not twice
        return self._parts[0]


def bin_floors(spec: np.ndarray, quiet: np.ndarray) -> np.ndarray:
    """Noise power of each bin: the mean over ``quiet`` rows not busy in that bin.

    Busy: the bin's power smoothed over 4 rows is 3 z over a first floor (a bias-corrected
    low quantile). With too few quiet rows left, the first floor is the estimate.
    """
    k, dof = 4, SPEC_BLOCK // SPEC_BINS
    out = np.empty(spec.shape[1])
    for i in range(spec.shape[1]):
        s = smooth(spec[:, i], k)
        first = float(np.quantile(s, FLOOR_Q)) / wh_ratio(FLOOR_Z, k * dof)
        ok = quiet & (wh_z(s / max(first, 1e-300), k * dof) < 3)
        out[i] = float(spec[ok, i].mean(dtype=np.float64)) if ok.sum() >= 0.05 * ok.size else first
    return out


def _bands(bins: int) -> list[np.ndarray]:
    """Bin indices of every sub-band searched (circular)."""
    out = []
    for w in BAND_WIDTHS:
        for offset in range(0, bins, max(1, w // 2)):
            out.append((offset + np.arange(w)) % bins)
    return out


def band_power(spec: np.ndarray, floors: np.ndarray, idx: np.ndarray, quiet: np.ndarray):
    """(rows,) power of the sub-band ``idx`` over its floor; 1 (the floor) outside ``quiet``."""
    band = (spec[:, idx] / floors[idx].astype(np.float32)).mean(1)
    band[~quiet] = 1.0
    return band


def band_candidates(
    spec: np.ndarray, floors: np.ndarray, quiet: np.ndarray, z_on: float, z_off: float
) -> list[tuple[float, int, int, int]]:
    """(z over its own length, first row, end row, sub-band) of every sub-band detection.

    The sub-band indexes :func:`_bands`; its power is :func:`band_power`.
    """
    dof_row = SPEC_BLOCK // SPEC_BINS
    out = []
    for j, idx in enumerate(_bands(spec.shape[1])):
        band = band_power(spec, floors, idx, quiet)
        c = np.concatenate([[0.0], np.cumsum(band, dtype=np.float64)])
        for scale in BAND_SCALES:
            k = scale // SPEC_BLOCK
            z = wh_z(smooth(band, k), dof_row * idx.size * k)
            for a, b in hysteresis(z, z_on, z_off, 1):
                own = float(wh_z((c[b] - c[a]) / (b - a), dof_row * idx.size * (b - a)))
                if own > z_on:
                    out.append((own, a, b, j))
    return out


def band_bursts(
    spec: np.ndarray, taken: list[tuple[int, int]], z_on: float, z_off: float, min_length: int
) -> list[tuple[int, int]]:
    """[start, end) in samples of sub-band bursts away from ``taken`` (sample spans).

    Rows within half the longest scale of a taken span are set to the floor before the search.
    Strongest first, a candidate overlapping a chosen one is dropped; the edges of those kept
    are fitted on their sub-band's power (the smoothing widened them by up to half a scale).
    """
    rows = spec.shape[0]
    if rows < 2 * BAND_SCALES[-1] // SPEC_BLOCK:
        return []
    guard = BAND_SCALES[-1] // 2
    quiet = np.ones(rows, bool)
    for a, b in taken:
        quiet[max(0, (a - guard) // SPEC_BLOCK) : (b + guard) // SPEC_BLOCK + 1] = False
    floors = bin_floors(spec, quiet)
    if not (floors > 0).all():
        return []
    used = np.zeros(rows, bool)
    chosen = []
    min_rows = -(-min_length // SPEC_BLOCK)
    bands = _bands(spec.shape[1])
    for _, a, b, j in sorted(band_candidates(spec, floors, quiet, z_on, z_off), reverse=True):
        if b - a >= min_rows and not used[a:b].any():
            used[a:b] = True
            chosen.append((a, b, j))
    out = []
    for a, b, j in chosen:
        series = band_power(spec, floors, bands[j], quiet)
        [(a, b)] = fit_edges([(a, b)], series, 1.0, guard // SPEC_BLOCK, 0.5, math.inf)
        out.append((a * SPEC_BLOCK, b * SPEC_BLOCK))
    return sorted(out)


def fit_edges(
    spans: list[tuple[int, int]],
    power: np.ndarray,
    floor: float,
    reach: int,
    inward: float = 0.0,
    max_excess: float = FIT_MAX_EXCESS,
) -> list[tuple[int, int]]:
    """Each weak [a, b) (blocks, sorted, disjoint) moved to its likelihood-ratio maximum.

    Weak: mean power at most ``max_excess`` over the floor (the edges of stronger bursts are
    already sharp, and their fades inside would mislead a one-level fit). An edge moves by at
    most ``reach`` blocks outwards, never past the middle of the gap to a neighbour, and the
    share ``inward`` of the span (at most ``reach``) inwards: by default not at all, since the
    detected part of a weak burst is too short rather than too long, and a fade inside a
    burst would pull a one-level fit inwards.
    """
    c = np.concatenate([[0.0], np.cumsum(power, dtype=np.float64)])
    out: list[tuple[int, int]] = []
    for i, (a, b) in enumerate(spans):
        if (c[b] - c[a]) / (b - a) / floor - 1 > max_excess:
            out.append((a, b))
            continue
        lo = max((spans[i - 1][1] + a + 1) // 2 if i else 0, a - reach)
        hi = min((b + spans[i + 1][0]) // 2 if i + 1 < len(spans) else power.size, b + reach)
        move = min(reach, int((b - a) * inward))
        starts = np.arange(lo, max(lo, min(a + move, b - 1)) + 1)
        ends = np.arange(min(hi, max(b - move, a + 1)), hi + 1)
        n = ends[None, :] - starts[:, None]
        r = (c[ends][None, :] - c[starts][:, None]) / np.maximum(n, 1) / floor
        gain = np.where((n > 0) & (r > 1), n * (r - 1 - np.log(np.maximum(r, 1.0))), -1.0)
        j, k = np.unravel_index(int(np.argmax(gain)), gain.shape)
        out.append((int(starts[j]), int(ends[k])) if gain[j, k] > 0 else (a, b))
    return out
