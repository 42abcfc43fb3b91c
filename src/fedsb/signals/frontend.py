"""The signal front-end before the images: recentre, resample to a canonical occupancy, gate.

Real captures and other toolchains put a signal anywhere in the band, at any bandwidth, as a
burst in noise; the generator centres it and fills the window. The front-end estimates each
record's band and burst blindly (``fedsb.signals.occupancy``) and maps it to one canonical
form, so the images see the same thing whatever the source:

1. recentre: multiply by exp(-j 2 pi f0 n), the band centre moves to DC (``carrier =
   "lines"``: the carrier of ``fedsb.signals.carrier`` where x^p shows one clear line, and
   the band widened to stay symmetric about it);
2. resample: band-limited resampling (exact FFT interpolation to 4x, then cubic) by
   D = occupancy / bw input samples per output sample, so the occupied band becomes
   ``occupancy`` of the sampled band; the output window of L samples is centred on the burst
   (upsampling keeps its middle, decimation leaves room around it);
3. gate: only the burst [start, stop) is kept.

Output samples that fall outside what is kept are the kept part repeated (``fill = "wrap"``:
a continuous-looking record, so per-record statistics such as the RMS stay those of the
signal) or zeros (``fill = "zeros"``). The output is scaled to unit mean power over its
samples that are not zero-filled. Vectorised over records; deterministic; a record's output
depends on that record only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple

import numpy as np
from scipy import fft as sfft

from ..config import check_number
from .carrier import line_carrier
from .occupancy import estimate_band, estimate_burst

MAX_RATIO = 8.0  # resampling is by at most this factor either way
OVERSAMPLE = 4  # the exact FFT interpolation step before the cubic one
_FILLS = ("wrap", "zeros")
_CARRIERS = ("band", "lines")


@dataclass(frozen=True)
class FrontendConfig:
    """Which front-end steps run before the images; all off (the default) leaves records as-is."""

    recentre: bool = False  # move the estimated band centre to DC
    resample: bool = False  # resample so the occupied band is `occupancy` of the sampled band
    gate: bool = False  # keep only the burst (in-band energy above the noise floor)
    occupancy: float = 0.25  # canonical occupied bandwidth, a fraction of the sample rate
    fill: Literal["wrap", "zeros"] = "wrap"  # outside the kept part: repeat it, or zeros
    carrier: Literal["band", "lines"] = "band"  # the centre: the band's, or x^p's clear line

    #: Added later; at its default the output is what it was: left out of config hashes.
    HASH_NEUTRAL: ClassVar[frozenset[str]] = frozenset({"carrier"})

    def __post_init__(self) -> None:
        for name in ("recentre", "resample", "gate"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        if isinstance(self.occupancy, bool) or not isinstance(self.occupancy, int | float):
            raise ValueError(f"occupancy: expected a number, got {self.occupancy!r}")
        check_number("occupancy", self.occupancy, 0.0, 1.0, open_low=True)
        if self.fill not in _FILLS:
            raise ValueError(f"fill: {self.fill!r} is not one of 'wrap', 'zeros'")
        if self.carrier not in _CARRIERS:
            raise ValueError(f"carrier: {self.carrier!r} is not one of 'band', 'lines'")

    @property
    def active(self) -> bool:
        """Whether any step runs (otherwise records go to the images untouched)."""
        return self.recentre or self.resample or self.gate


class Estimates(NamedTuple):
    """What the front-end estimated for each record (arrays of N)."""

    f0: np.ndarray  # band centre, cycles/sample in [-0.5, 0.5)
    bw: np.ndarray  # occupied bandwidth, cycles/sample (1 when no band is detected)
    start: np.ndarray  # first sample of the burst
    stop: np.ndarray  # one past its last sample
    detected: np.ndarray  # a band stands above the noise floor
    gated: np.ndarray  # the burst is shorter than the record


def estimate(iq: np.ndarray, burst: bool = True, carrier: str = "band") -> Estimates:
    """Band and burst of each record; the band is measured again over the burst alone.

    ``burst=False`` skips the burst (start, stop = the whole record): what recentring and
    resampling without the gate need. ``carrier = "lines"`` moves the centre to the carrier
    where x^p shows one clear line, and widens the band to stay symmetric about it.
    """
    x = _as_records(iq)
    est = _band_and_burst(x, burst)
    return _on_carrier(x, est) if carrier == "lines" else est


def _on_carrier(x: np.ndarray, est: Estimates) -> Estimates:
    """The estimates with f0 at x^p's clear line, where one is, and the band symmetric about it."""
    rows = np.flatnonzero(est.detected)
    f0, bw = est.f0.copy(), est.bw.copy()
    if rows.size:
        line, found = line_carrier(x[rows], f0[rows], est.start[rows], est.stop[rows])
        shift = np.abs((line - f0[rows] + 0.5) % 1.0 - 0.5)
        f0[rows] = line
        bw[rows] = np.where(found, np.minimum(bw[rows] + 2 * shift, 1.0), bw[rows])
    return est._replace(f0=f0, bw=bw)


def _band_and_burst(x: np.ndarray, burst: bool) -> Estimates:
    """The band (and the burst, measuring the band again over it) of each record."""
    band = estimate_band(x)
    if not burst:
        n, length = x.shape
        never = np.zeros(n, bool)
        whole = np.zeros(n, np.int64), np.full(n, length, np.int64)
        return Estimates(band.f0, band.bw, *whole, band.detected, never)
    found = estimate_burst(x, band)
    f0, bw, detected = band.f0.copy(), band.bw.copy(), band.detected.copy()
    rows = np.flatnonzero(found.gated)
    if rows.size:
        again = estimate_band(x[rows], found.start[rows], found.stop[rows])
        f0[rows], bw[rows], detected[rows] = again.f0, again.bw, again.detected
    return Estimates(f0, bw, found.start, found.stop, detected, found.gated)


def apply_frontend(iq: np.ndarray, config: FrontendConfig) -> tuple[np.ndarray, Estimates]:
    """(N, L) records through the configured steps -> (N, L) complex64 and the estimates."""
    x = _as_records(iq)
    n, length = x.shape
    if n == 0:
        none, never = np.zeros(0, np.int64), np.zeros(0, bool)
        return x.copy(), Estimates(np.zeros(0), np.zeros(0), none, none, never, never)
    est = estimate(x, burst=config.gate, carrier=config.carrier)
    if config.recentre or config.resample:  # resampling works on the centred band
        x = x * _tone(-est.f0[:, None] * np.arange(length))
    start, stop = est.start, est.stop  # the whole record unless gated
    if config.resample:
        ratio = resample_ratio(est.bw, est.detected, config.occupancy)
        y, times = resample(x, ratio, start, stop, config.fill)
        if not config.recentre:  # put the offset back, at the new sample rate
            y *= _tone(est.f0[:, None] * times)
    else:
        times = np.broadcast_to(np.arange(length), (n, length))
        y = _gather(x, times, start, stop, config.fill) if config.gate else x
    kept = (times >= start[:, None]) & (times < stop[:, None])  # all data when wrapped
    return _unit_power(y, kept | (config.fill == "wrap")), est


def resample_ratio(bw: np.ndarray, detected: np.ndarray, occupancy: float) -> np.ndarray:
    """Input samples per output sample that bring ``bw`` to ``occupancy`` (1 if undetected)."""
    ratio = np.clip(occupancy / np.maximum(bw, 1e-9), 1 / MAX_RATIO, MAX_RATIO)
    return np.where(detected, ratio, 1.0)


def resample(
    x: np.ndarray, ratio: np.ndarray, start: np.ndarray, stop: np.ndarray, fill: str
) -> tuple[np.ndarray, np.ndarray]:
    """Band-limited resampling of baseband records, centred on [start, stop).

    Output sample m is the record at time t_m = centre + (m - (L-1)/2) * ratio, times outside
    [start, stop) wrapped into it or read as zeros. The record is interpolated exactly to
    ``OVERSAMPLE`` x its rate by FFT (low-passed to the new Nyquist band when decimated), then
    cubically between those points. Returns the (N, L) output and the times t_m.
    """
    n, length = x.shape
    fine = _oversample(x, ratio)  # (N, OVERSAMPLE L), circular
    centre = (start + stop - 1) / 2.0
    times = centre[:, None] + (np.arange(length) - (length - 1) / 2.0) * ratio[:, None]
    lo, span = start[:, None], (stop - start)[:, None]
    at = (lo + np.mod(times - lo, span)) * OVERSAMPLE  # wrapped, in fine samples
    base = np.floor(at).astype(np.int64)
    u = (at - base).astype(np.float32)
    width = fine.shape[1]
    flat, rows = fine.reshape(-1), (np.arange(n) * width)[:, None]
    y = np.zeros((n, length), np.complex64)
    for tap, weight in zip(range(-1, 3), _cubic(u)):
        y += flat[rows + (base + tap) % width] * weight
    if fill == "zeros":
        y[(times < lo) | (times >= lo + span)] = 0
    return y, times


def _cubic(u: np.ndarray) -> tuple[np.ndarray, ...]:
    """Lagrange weights of the 4 points at -1, 0, 1, 2 for positions u in [0, 1)."""
    a, b, c = u + 1, u - 1, u - 2
    return (-u * b * c / 6, a * b * c / 2, -a * u * c / 2, a * u * b / 6)


def _oversample(x: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Each record at ``OVERSAMPLE`` x its rate (FFT zero-padding), low-passed to 0.5 / ratio.

    The low-pass is flat to 0.4 / ratio with a cosine edge to 0.5 / ratio (0.4 and 0.5 when
    not decimated): what would alias into the new band is removed.
    """
    n, length = x.shape
    spec = sfft.fft(x, axis=1)
    f = np.abs(np.fft.fftfreq(length))[None, :] * np.maximum(ratio, 1.0)[:, None]
    edge = np.clip(f - 0.4, 0.0, 0.1) / 0.1
    spec *= (0.5 + 0.5 * np.cos(np.pi * edge)).astype(np.float32)
    half = (length + 1) // 2
    wide = np.zeros((n, OVERSAMPLE * length), np.complex64)
    wide[:, :half], wide[:, half - length :] = spec[:, :half], spec[:, half:]
    return sfft.ifft(wide, axis=1) * np.float32(OVERSAMPLE)


def _tone(cycles: np.ndarray) -> np.ndarray:
    """exp(j 2 pi cycles) as complex64; the whole turns are dropped in float64 first."""
    phase = (2 * np.pi * (cycles - np.round(cycles))).astype(np.float32)
    out = np.empty(phase.shape, np.complex64)
    out.real, out.imag = np.cos(phase), np.sin(phase)
    return out


def _gather(
    x: np.ndarray, index: np.ndarray, start: np.ndarray, stop: np.ndarray, fill: str
) -> np.ndarray:
    """x[row, index] with indices outside [start, stop) wrapped into it, or read as zeros."""
    n = x.shape[0]
    shape = (n,) + (1,) * (index.ndim - 1)
    lo, span = start.reshape(shape), (stop - start).reshape(shape)
    inside = (index >= lo) & (index < lo + span)
    index = lo + np.mod(index - lo, span)
    values = x[np.arange(n).reshape(shape), index]
    return values if fill == "wrap" else np.where(inside, values, np.complex64(0))


def _unit_power(y: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Scale each record so its ``kept`` samples have unit mean power (silent records stay 0)."""
    power = (np.abs(y) ** 2 * kept).sum(axis=1) / np.maximum(kept.sum(axis=1), 1)
    scale = np.where(power > 0, 1.0 / np.sqrt(np.maximum(power, 1e-300)), 1.0)
    return (y * scale[:, None].astype(np.float32)).astype(np.complex64)


def _as_records(iq: np.ndarray) -> np.ndarray:
    """(N, L) complex64 view of ``iq``, or a ValueError naming what is wrong with it."""
    x = np.asarray(iq)
    if not np.iscomplexobj(x):
        raise ValueError(f"iq must be complex, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"iq must be (N, L), got shape {x.shape}")
    if x.shape[1] < 16:
        raise ValueError(f"records must have at least 16 samples, got {x.shape[1]}")
    return np.ascontiguousarray(x, dtype=np.complex64)
