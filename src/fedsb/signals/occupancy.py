"""Blind estimates of where a record's signal is: its band (from a Welch PSD) and its burst.

Vectorised over (N, L) complex records, deterministic, no randomness. Frequencies are in
cycles/sample in [-0.5, 0.5); the PSD is circular, so a band may wrap around +-0.5.

Band: the noise floor is a low quantile of the smoothed PSD (corrected for its bias); the
occupied region is the contiguous run above the floor holding the most excess power. Its
width comes from the half-power edges (where the excess over the floor falls to
half the in-band level), which neither the SNR nor the smoothing bias; the width is scaled to
the full occupied band of a raised-cosine spectrum with the middle roll-off
(``HALF_POWER_TO_OCCUPIED``). The centre is midway between the lower edges at 1/16 of the
in-band level (-12 dB, or the detection threshold when that is higher), which frequency-
selective multipath moves less than the half-power ones.

Burst: the in-band power (the record filtered to its band) is split into "on" inside
[start, stop) and "off" outside by the generalised likelihood ratio of two power levels, on a
coarse grid and then to the sample. Without a significant gain the whole record is the burst.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import fft as sfft

#: Occupied bandwidth / half-power bandwidth of a raised-cosine spectrum with roll-off 0.325,
#: the middle of the generator's range [0.15, 0.5]: (1 + r) / sps over 1 / sps.
HALF_POWER_TO_OCCUPIED = 1.325
CENTRE_LEVEL = 1 / 16  # the centre is midway between the edges at this share of the level
FLOOR_QUANTILE = 0.15  # the noise floor: this quantile of the PSD bins (bias-corrected)
DETECT_Z = 4.0  # a PSD bin is occupied above floor * (1 + DETECT_Z / sqrt(dof))
SIGNIFICANCE_Z = 5.0  # a band's excess power in noise std: < 0.1 % of noise records pass
GATE_GAIN = 15.0  # least likelihood-ratio gain (nats over the independent samples) of a burst
GRID_BLOCKS = 32  # the burst edges are searched on this many blocks, then to the sample
_TINY = 1e-30


class BandEstimate(NamedTuple):
    """Per-record band estimate: centre, occupied width, half-power width, detected or not."""

    f0: np.ndarray  # centre frequency, cycles/sample in [-0.5, 0.5)
    bw: np.ndarray  # occupied bandwidth, cycles/sample (1.0 when nothing is detected)
    bw_half: np.ndarray  # half-power bandwidth (the symbol rate of an RRC signal)
    detected: np.ndarray  # bool: a band stands significantly above the noise floor
    floor: np.ndarray  # noise power per sample (the PSD's floor), for the burst gate


def welch_size(length: int) -> int:
    """FFT size of the Welch PSD: about L/8 (>= 8 segments at 50 % overlap), 16..256."""
    return int(np.clip(2 ** int(np.log2(max(length, 1) / 8)), 16, 256))


def welch_psd(
    x: np.ndarray, nfft: int, start: np.ndarray | None = None, stop: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(N, nfft) Hann-window Welch PSD, DC centred, and the number of segments averaged.

    With ``start``/``stop``, only segments whose centre lies in a record's [start, stop) count
    (the one nearest the centre when none does).
    """
    n, length = x.shape
    nfft = min(nfft, length)
    hop = nfft // 2
    segs = np.lib.stride_tricks.sliding_window_view(x, nfft, axis=1)[:, ::hop]  # (N, S, nfft)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(nfft) / nfft)).astype(np.float32)
    spec = sfft.fft(segs * window, axis=2)
    power = (spec.real**2 + spec.imag**2) / np.float32(np.sum(window**2))
    if start is None or stop is None:
        count = np.full(n, power.shape[1], np.float64)
        return np.fft.fftshift(power.mean(axis=1), axes=1), count
    centres = np.arange(power.shape[1]) * hop + nfft / 2
    use = (centres >= start[:, None]) & (centres < stop[:, None])
    nearest = np.abs(centres - (start + stop)[:, None] / 2).argmin(axis=1)
    use[np.arange(n), nearest] |= ~use.any(axis=1)
    weights = use.astype(np.float32)
    count = weights.sum(axis=1)
    psd = np.einsum("ns,nsf->nf", weights, power) / count[:, None]
    return np.fft.fftshift(psd, axes=1), count.astype(np.float64)


def _smooth(p: np.ndarray) -> np.ndarray:
    """Circular 3-bin moving average along the last axis."""
    return (np.roll(p, 1, axis=-1) + p + np.roll(p, -1, axis=-1)) / 3.0


def _dof(segments: np.ndarray) -> np.ndarray:
    """Gamma shape (equivalent averages) of a smoothed Hann Welch bin over ``segments``.

    50 % overlap keeps ~0.95 of a segment independent; the 3-bin average of Hann-correlated
    bins (correlation 0.44 at one bin) gains 1.86x.
    """
    return np.maximum(segments, 1.0) * 0.945 * 1.86


def _floor(s: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """Noise floor: a low quantile of the smoothed PSD over its Gamma bias (Wilson-Hilferty)."""
    q = np.quantile(s, FLOOR_QUANTILE, axis=1)
    z = -1.0364  # the standard-normal 15 % quantile
    bias = (1 - 1 / (9 * dof) + z * np.sqrt(1 / (9 * dof))) ** 3
    return q / bias


def _best_run(mask: np.ndarray, excess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first bin, length) of each row's circular run of True holding the most ``excess``.

    A row with no True gets length 0; an all-True row the whole circle, starting at its
    least ``excess`` bin.
    """
    n, m = mask.shape
    rows = np.arange(n)
    full = mask.all(axis=1)
    origin = np.where(full, excess.argmin(axis=1), np.argmin(mask, axis=1))  # a False bin
    idx = (origin[:, None] + np.arange(m)) % m
    rolled, ex = mask[rows[:, None], idx], excess[rows[:, None], idx]
    rolled[full] = True
    starts = rolled & ~np.concatenate([np.zeros((n, 1), bool), rolled[:, :-1]], axis=1)
    run = np.cumsum(starts, axis=1) * rolled  # 0 = not in a run, else the run's number
    energy = np.zeros((n, m + 1))
    np.add.at(energy, (np.repeat(rows, m), run.ravel()), np.where(rolled, ex, 0.0).ravel())
    energy[:, 0] = -np.inf
    best = energy.argmax(axis=1)
    inside = run == best[:, None]
    first = np.where(inside, np.arange(m), m).min(axis=1)
    length = inside.sum(axis=1)
    length[~rolled.any(axis=1)] = 0
    return (origin + first) % m, length


def _edges(
    e: np.ndarray, first: np.ndarray, length: np.ndarray, level: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fractional bins where ``e`` crosses ``level`` at each end of each row's run.

    Linear interpolation between bin centres; positions are bin indices (unwrapped, so the
    right edge may exceed nfft). An empty run gives zero width at ``first``.
    """
    n, m = e.shape
    take = np.arange(n)
    offsets = np.arange(-1, m + 1)  # j = offset + 1: the run at j = 1..length, one bin aside
    r = e[take[:, None], (first[:, None] + offsets) % m]  # (N, m + 2)
    above = (offsets >= 0) & (offsets < length[:, None]) & (r >= level[:, None])
    found = above.any(axis=1)
    j = np.arange(m + 2)
    lo = np.where(found, np.where(above, j, m + 2).min(axis=1), 1)
    hi = np.where(found, np.where(above, j, -1).max(axis=1), 1)

    def step(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
        a, b = r[take, inner], r[take, outer]  # a >= level, b normally below it
        return np.clip((a - level) / np.maximum(a - b, _TINY), 0.0, 1.0)

    left = np.where(found, lo - step(lo, lo - 1), 1.0)
    right = np.where(found, hi + step(hi, hi + 1), 1.0)
    return first - 1.0 + left, first - 1.0 + right


def estimate_band(
    x: np.ndarray, start: np.ndarray | None = None, stop: np.ndarray | None = None
) -> BandEstimate:
    """Centre frequency and occupied bandwidth of each record, from its Welch PSD.

    ``start``/``stop`` restrict the PSD to a burst. Records with no significant band get
    f0 = 0, bw = 1 and ``detected`` False.
    """
    n, length = x.shape
    nfft = min(welch_size(length), length)
    psd, segments = welch_psd(x, nfft, start, stop)
    s = _smooth(psd.astype(np.float64))
    dof = _dof(segments)
    floor = _floor(s, dof)
    excess = s - floor[:, None]
    mask = s > (floor * (1 + DETECT_Z / np.sqrt(dof)))[:, None]
    mask |= np.roll(mask, 1, axis=1) & np.roll(mask, -1, axis=1)  # bridge one-bin dips
    first, length_bins = _best_run(mask, excess)
    rows = np.arange(n)[:, None]
    in_run = np.arange(nfft) < length_bins[:, None]
    run_ex = np.where(in_run, excess[rows, (first[:, None] + np.arange(nfft)) % nfft], 0.0)
    # significance: summed raw excess against its noise std (3 correlated bins per smoothed one)
    noise_std = floor * np.sqrt(np.maximum(length_bins, 1) * 1.94 / (dof / 1.86))
    z = run_ex.sum(axis=1) / np.maximum(noise_std, _TINY)
    level = _in_band_level(run_ex, in_run)
    left, right = _edges(excess, first, length_bins, level / 2)
    level = _half_band_median(excess, left, right)
    left, right = _edges(excess, first, length_bins, level / 2)
    width = np.clip((right - left) / nfft, 1.0 / nfft, 1.0)
    # the centre from lower edges (still above the detection threshold): a multipath tilt
    # or notch moves the half-power edges of a wide band, the outer skirts much less
    low = np.maximum(level * CENTRE_LEVEL, floor * DETECT_Z / np.sqrt(dof))
    outer_left, outer_right = _edges(excess, first, length_bins, low)
    centre = ((outer_left + outer_right) / 2 - nfft // 2) / nfft  # bin k is at (k - nfft/2) / nfft
    detected = (z > SIGNIFICANCE_Z) & (length_bins > 0) & (floor > 0)
    f0 = np.where(detected, (centre + 0.5) % 1.0 - 0.5, 0.0)
    bw = np.where(detected, np.minimum(width * HALF_POWER_TO_OCCUPIED, 1.0), 1.0)
    return BandEstimate(f0, bw, np.where(detected, width, 1.0), detected, floor)


def _in_band_level(run_ex: np.ndarray, in_run: np.ndarray) -> np.ndarray:
    """First guess of the in-band excess level: the run's peak."""
    return np.where(in_run, run_ex, -np.inf).max(axis=1).clip(min=0.0)


def _half_band_median(excess: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Median excess between the first half-power edges: a level robust to noise and notches."""
    n, m = excess.shape
    lo = np.ceil(left).astype(np.int64)
    count = np.maximum(np.floor(right).astype(np.int64) - lo + 1, 1)
    idx = (lo[:, None] + np.arange(m)) % m
    vals = np.where(np.arange(m) < count[:, None], excess[np.arange(n)[:, None], idx], np.nan)
    return np.nanmedian(vals, axis=1).clip(min=0.0)


class BurstEstimate(NamedTuple):
    """Per-record burst: [start, stop) in samples and whether an off part was found."""

    start: np.ndarray  # int64
    stop: np.ndarray  # int64, exclusive
    gated: np.ndarray  # bool: False means the whole record is the burst


def band_filter(x: np.ndarray, f0: np.ndarray, bw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each record through a Gaussian band filter at f0 (std bw/2), and the filter's power gain.

    A Gaussian is compact in time too (std 1/(pi bw) samples): a loud burst barely leaks into
    its quiet surroundings, which a brick-wall mask's slow sinc tails would fill. The gain is
    the share of white-noise power that passes (about 0.89 bw).
    """
    length = x.shape[1]
    distance = (np.fft.fftfreq(length)[None, :] - f0[:, None] + 0.5) % 1.0 - 0.5
    mask = np.exp(-0.5 * (distance / (bw[:, None] / 2)) ** 2)
    y = sfft.ifft(sfft.fft(x, axis=1) * mask.astype(np.float32), axis=1)
    return y, np.mean(mask**2, axis=1)


def _gain(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-level log-likelihood gain of "on in [a, b)" and the off level, from cumsum ``c``.

    ``c`` is (N, L + 1) with c[:, 0] = 0; ``a``/``b`` are (N, K) sample indices, a < b.
    Exponential (complex Gaussian) samples: gain = n log m - n_in log m_in - n_out log m_out;
    0 where the inside is not the louder part.
    """
    rows = np.arange(c.shape[0])[:, None]
    length = c.shape[1] - 1
    total = c[:, -1:]
    e_in = c[rows, b] - c[rows, a]
    n_in = (b - a).astype(np.float64)
    n_out = length - n_in
    m_in = np.maximum(e_in / n_in, _TINY)
    m_out = np.maximum((total - e_in) / np.maximum(n_out, 1.0), _TINY)
    m_all = np.maximum(total / length, _TINY)
    gain = length * np.log(m_all) - n_in * np.log(m_in) - n_out * np.log(m_out)
    gain = np.where((n_out > 0) & (m_in > m_out), gain, 0.0)
    return gain, m_out


def estimate_burst(x: np.ndarray, band: BandEstimate) -> BurstEstimate:
    """The active part [start, stop) of each record: where its in-band power is "on".

    The off part (beyond a guard of the filter's length) must be as quiet as the PSD's noise
    floor, so a fade of a continuous signal is not a burst, and the likelihood gain must
    exceed ``GATE_GAIN`` per independent sample; else the whole record.
    """
    n, length = x.shape
    width = np.clip(band.bw, 4.0 / length, 1.0)
    y, share = band_filter(x, band.f0, width)
    c = np.zeros((n, length + 1))
    np.cumsum(y.real**2 + y.imag**2, axis=1, out=c[:, 1:])
    blocks = max(1, min(GRID_BLOCKS, length // 4))
    edges = np.round(np.arange(blocks + 1) * length / blocks).astype(np.int64)
    ia, ib = np.triu_indices(blocks + 1, k=1)
    a, b = np.broadcast_to(edges[ia], (n, ia.size)), np.broadcast_to(edges[ib], (n, ib.size))
    best = _gain(c, a, b)[0].argmax(axis=1)
    start, stop = _refine(c, ia[best], ib[best], edges)
    gain = _gain(c, start[:, None], stop[:, None])[0][:, 0] * share
    quiet = _quiet(c, start, stop, np.ceil(3.0 / (np.pi * width)), band.floor * share, share)
    gated = (gain > GATE_GAIN) & quiet
    start, stop = np.where(gated, start, 0), np.where(gated, stop, length)
    return BurstEstimate(start.astype(np.int64), stop.astype(np.int64), gated)


def _quiet(
    c: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    guard: np.ndarray,
    noise: np.ndarray,
    share: np.ndarray,
) -> np.ndarray:
    """Whether the power outside [start - guard, stop + guard) is at the noise level.

    Allows 25 % for the floor's error plus 3 std of the mean of that many samples; with no
    sample left beyond the guards, the off part next to the burst is tested.
    """
    rows, length = np.arange(c.shape[0]), c.shape[1] - 1
    lo = np.clip(start - guard, 0, length).astype(np.int64)
    hi = np.clip(stop + guard, 0, length).astype(np.int64)
    none_left = (lo + length - hi) == 0
    lo, hi = np.where(none_left, start, lo), np.where(none_left, stop, hi)
    count = np.maximum(lo + length - hi, 1)
    off = (c[rows, lo] + c[rows, -1] - c[rows, hi]) / count
    return off <= noise * (1.25 + 3.0 / np.sqrt(np.maximum(count * share, 1.0)))


def _refine(
    c: np.ndarray, sa: np.ndarray, sb: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Best grid edges (block indices) refined to the sample: the start, then the stop."""
    n, length = c.shape[0], c.shape[1] - 1
    span = int(np.max(np.diff(edges)))
    offsets = np.arange(-span, span + 1)
    b = edges[sb]
    a = np.clip(edges[sa][:, None] + offsets, 0, length - 1)
    a = np.minimum(a, b[:, None] - 1)
    gain, _ = _gain(c, a, np.broadcast_to(b[:, None], a.shape))
    start = a[np.arange(n), gain.argmax(axis=1)]
    b = np.clip(edges[sb][:, None] + offsets, 1, length)
    b = np.maximum(b, start[:, None] + 1)
    gain, _ = _gain(c, np.broadcast_to(start[:, None], b.shape), b)
    return start.astype(np.int64), b[np.arange(n), gain.argmax(axis=1)].astype(np.int64)
