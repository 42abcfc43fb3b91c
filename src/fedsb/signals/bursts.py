"""Bursts in a long IQ recording: energy detection over an estimated noise floor.

The recording is reduced once to the mean power of each ``block`` of samples (4 bytes per
block, so a 1 GB cf32 file costs 8 MB of powers; the samples are streamed, never held). Then:

* the noise floor is a low quantile of the power smoothed over 1024 samples, corrected for
  the quantile of noise alone, then re-estimated as the mean power outside what looks busy;
* at each smoothing scale (256, 1024, 4096 samples: the short one places the edges of strong
  bursts, the long ones find weak ones) a burst starts where the smoothed power rises
  ``on_sigmas`` noise standard deviations above the floor and ends where it falls back under
  ``off_sigmas`` (hysteresis); gaps shorter than ``min_gap`` inside it are bridged;
* the centred moving average widens a burst by up to half its window at each end: each end
  is moved back by that amount, less what the burst's own level says it takes to cross;
* a longer scale only adds what the shorter ones did not find (away from their bursts by half
  its window), and only pieces at least ``min_length`` long whose mean power clears the
  threshold for their own length. A weak burst can come out in pieces.

Then the edges of the weak bursts found are fitted by likelihood ratio on the block powers
(``reach``): this mends the edges that the smoothing blurs and the pieces a weak burst falls
into. When a spectrogram of the recording is given (:class:`.burst_search.SpectralPower`), its
sub-bands are searched for weak narrowband bursts away from those already found
(``band_sigmas``), their edges fitted on their sub-band's power. Together they find bursts
2-5 dB weaker (see :mod:`.burst_search` and docs/classify.md).

Frequency edges come from the mean periodogram of a burst's samples: the outermost bins more
than 3 dB (more for few segments) above the noise floor's level, or none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .burst_search import band_bursts, fit_edges, hysteresis, smooth

#: Samples the floor's first estimate smooths over (the quantile is corrected for this).
FLOOR_WINDOW = 1024
_Z = {0.05: -1.6449, 0.1: -1.2816, 0.2: -0.8416, 0.25: -0.6745}


@dataclass(frozen=True)
class BurstConfig:
    """Energy-detection settings (defaults measured on GNU Radio bursts, docs/classify.md)."""

    block: int = 64  # samples per power block
    scales: tuple[int, ...] = (256, 1024, 4096)  # smoothing windows, samples, shortest first
    on_sigmas: float = 5.0  # rise over the floor that starts a burst, in noise std devs
    off_sigmas: float = 2.0  # level under which it ends
    min_length: int = 512  # samples; shorter detections are dropped
    min_gap: int = 256  # samples; shorter quiet gaps inside a burst are bridged
    floor_quantile: float = 0.1  # of the smoothed power, for the first floor estimate
    band_sigmas: float = 6.0  # z that starts a burst in a sub-band; 0: no sub-band search
    reach: int = 2048  # samples an edge may move when fitted; 0: edges are not fitted

    def check(self) -> BurstConfig:
        """This config, or a ConfigError naming the first bad setting."""
        if self.block < 1:
            raise ConfigError(f"detect.block: must be >= 1, got {self.block}")
        if not self.scales or any(s < self.block or s % self.block for s in self.scales):
            raise ConfigError(f"detect.scales: multiples of the block ({self.block}) expected")
        if not 0 < self.off_sigmas < self.on_sigmas:
            raise ConfigError("detect.off_sigmas: must be > 0 and below detect.on_sigmas")
        if self.min_length < 1 or self.min_gap < 0:
            raise ConfigError("detect.min_length: must be >= 1 (and detect.min_gap >= 0)")
        if self.floor_quantile not in _Z:
            raise ConfigError(f"detect.floor_quantile: one of {sorted(_Z)} expected")
        if self.band_sigmas != 0 and not self.band_sigmas > self.off_sigmas:
            raise ConfigError("detect.band_sigmas: must be 0 (off) or above detect.off_sigmas")
        if self.reach < 0 or self.reach % self.block:
            raise ConfigError(f"detect.reach: a multiple of the block ({self.block}) >= 0 expected")
        return self


class BlockPower:
    """Mean power per block of a sample stream fed in chunks of any size."""

    def __init__(self, block: int) -> None:
        """Start an empty stream of ``block``-sample blocks."""
        self.block = block
        self._parts: list[np.ndarray] = []
        self._carry = np.zeros(0, np.float64)

    def add(self, x: np.ndarray) -> None:
        """Append the chunk ``x`` (complex samples)."""
        p = np.concatenate([self._carry, x.real.astype(np.float64) ** 2 + x.imag**2])
        whole = p.size // self.block * self.block
        if whole:
            self._parts.append(p[:whole].reshape(-1, self.block).mean(1).astype(np.float32))
        self._carry = p[whole:]

    def result(self) -> np.ndarray:
        """(blocks,) float32 powers; a last partial block is left out."""
        if not self._parts:
            return np.zeros(0, np.float32)
        self._parts = [np.concatenate(self._parts)]  # held once, not twice
        return self._parts[0]


def _gamma_quantile(q: float, k: int) -> float:
    """The ``q`` quantile of the mean of ``k`` unit-power noise samples (Wilson-Hilferty)."""
    return (1 - 1 / (9 * k) + _Z[q] / (3 * math.sqrt(k))) ** 3


def noise_floor(power: np.ndarray, config: BurstConfig = BurstConfig()) -> float:
    """Mean noise power per sample; NaN for a recording shorter than the floor's window."""
    k = FLOOR_WINDOW // config.block or 1
    if power.size < 2 * k:
        return math.nan
    s = smooth(power, k)
    floor = float(np.quantile(s, config.floor_quantile)) / _gamma_quantile(
        config.floor_quantile, k * config.block
    )
    sigma = 1 / math.sqrt(k * config.block)
    busy = np.zeros(power.size, bool)
    on, off = floor * (1 + config.on_sigmas * sigma), floor * (1 + config.off_sigmas * sigma)
    for a, b in hysteresis(s, on, off, 0):
        busy[max(0, a - k // 4) : b + k // 4] = True
    quiet = power[~busy]
    return float(quiet.mean(dtype=np.float64)) if quiet.size >= 0.05 * power.size else floor


def _pieces(seg: tuple[int, int], taken: list[tuple[int, int]], guard: int) -> list:
    """``seg`` less every taken span widened by ``guard`` blocks."""
    pieces = [seg]
    for ta, tb in taken:
        ta, tb = ta - guard, tb + guard
        kept = []
        for pa, pb in pieces:
            if tb <= pa or ta >= pb:
                kept.append((pa, pb))
                continue
            kept += [p for p in ((pa, ta), (tb, pb)) if p[1] > p[0] and pa <= p[0] < p[1] <= pb]
        pieces = kept
    return pieces


def _scale_bursts(
    power: np.ndarray, floor: float, width: int, config: BurstConfig
) -> list[tuple[int, int]]:
    """Edge-corrected bursts at one smoothing width (blocks)."""
    sigma = 1 / math.sqrt(width * config.block)
    s = smooth(power, width)
    on, off = floor * (1 + config.on_sigmas * sigma), floor * (1 + config.off_sigmas * sigma)
    out = []
    for a, b in hysteresis(s, on, off, -(-config.min_gap // config.block)):
        excess = float(np.median(s[a:b])) / floor - 1
        shrink = round(max(0.0, width / 2 - width * config.off_sigmas * sigma / excess))
        if b - a > 2 * shrink:
            out.append((a + shrink, b - shrink))
    return out


def _wide_bursts(power: np.ndarray, floor: float, config: BurstConfig) -> list[tuple[int, int]]:
    """[a, b) in blocks over the whole band, scale by scale (see module doc)."""
    c = np.concatenate([[0.0], np.cumsum(power, dtype=np.float64)])
    taken: list[tuple[int, int]] = []
    min_blocks = -(-config.min_length // config.block)

    def clears(a: int, b: int) -> bool:  # long enough, and loud enough for its length
        n = (b - a) * config.block
        return (
            b - a >= min_blocks and (c[b] - c[a]) / (b - a) / floor - 1 > config.on_sigmas / n**0.5
        )

    for scale in config.scales:
        width = scale // config.block
        new = []
        for seg in _scale_bursts(power, floor, width, config):
            new += [p for p in _pieces(seg, taken, width // 2) if clears(*p)]
        taken = sorted(taken + new)
    return taken


def detect_bursts(
    power: np.ndarray,
    config: BurstConfig = BurstConfig(),
    floor: float | None = None,
    spectrum: np.ndarray | None = None,
) -> tuple[list[tuple[int, int]], float]:
    """([(start, count)] in samples, sorted; noise floor) of the block powers ``power``.

    ``spectrum``: the recording's :class:`.burst_search.SpectralPower` rows, for the sub-band
    search (none without it).
    """
    config.check()
    floor = noise_floor(power, config) if floor is None else floor
    if not floor > 0:
        return [], floor
    block = config.block
    wide = _wide_bursts(power, floor, config)
    taken = fit_edges(wide, power, floor, config.reach // block) if config.reach else wide
    if spectrum is not None and config.band_sigmas > 0:
        spans = [(a * block, b * block) for a, b in wide]
        weak = band_bursts(
            spectrum, spans, config.band_sigmas, config.off_sigmas, config.min_length
        )
        weak = [(s // block, min(e // block, power.size)) for s, e in weak]
        clear = [w for w in weak if not any(min(w[1], b) > max(w[0], a) for a, b in taken)]
        taken = sorted(taken + clear)
    min_blocks = -(-config.min_length // block)
    return [(a * block, (b - a) * block) for a, b in taken if b - a >= min_blocks], floor


def periodogram(x: np.ndarray, nfft: int) -> tuple[np.ndarray, int]:
    """(sum of Hann periodograms, centred, over whole ``nfft`` segments of ``x``; their count).

    Normalised so that white noise of power P has the expected value P in every bin.
    """
    x = np.asarray(x).reshape(-1)
    n = x.size // nfft
    if n == 0:
        return np.zeros(nfft), 0
    w = np.hanning(nfft).astype(np.float32)
    spec = np.fft.fft(x[: n * nfft].reshape(n, nfft) * w, axis=1)
    psd = (np.abs(spec) ** 2).sum(0) / float((w.astype(np.float64) ** 2).sum())
    return np.fft.fftshift(psd), n


def band_edges(
    psd_sum: np.ndarray, segments: int, floor: float, sample_rate: float
) -> tuple[float, float] | None:
    """(lower, upper) offsets in Hz from the centre of the occupied bins, or None.

    A bin is occupied when its mean periodogram (smoothed over 3 bins) is more than
    max(3 dB, 4 of its standard deviations) above the floor's level.
    """
    if segments == 0 or not floor > 0:
        return None
    nfft = psd_sum.size
    psd = np.convolve(psd_sum / segments, np.ones(3) / 3, mode="same")
    rise = max(1.0, 4 / math.sqrt(3 * segments))
    busy = np.flatnonzero(psd > floor * (1 + rise))
    if busy.size == 0:
        return None
    hz = sample_rate / nfft
    lower = max(-sample_rate / 2, (busy[0] - nfft // 2 - 0.5) * hz)
    upper = min(sample_rate / 2, (busy[-1] - nfft // 2 + 0.5) * hz)
    return float(lower), float(upper)


def feed(chunks: Iterable[np.ndarray], block: int) -> np.ndarray:
    """Block powers of a whole stream of chunks (see :class:`BlockPower`)."""
    acc = BlockPower(block)
    for chunk in chunks:
        acc.add(chunk)
    return acc.result()
