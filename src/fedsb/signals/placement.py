"""Where a record's signal sits: its drawn bandwidth, the centre of its band and its bursts.

All three are off by default (``generator.bandwidth = [0, 0]``, ``center = [0, 0]``,
``bursts.probability = 0``), and then nothing here is called and nothing is drawn. Each one
draws from its own random stream, so switching one on leaves every other draw unchanged.

Bursts: a burst record is on for ``duty`` of its samples, split into ``count`` on-periods with
random gaps, and exactly zero elsewhere until the channel and the receiver (multipath tails,
DC offset) and the noise are added. The SNR of a burst record is that of its on-time: the
received signal is scaled to mean power 1 over the on-samples, and the noise, over the whole
record, has the variance of the configured SNR.
"""

from __future__ import annotations

import numpy as np

from .config import GeneratorConfig, OnOffConfig
from .distortion import DISTORTION_META
from .dsp import expj
from .hardware import HARDWARE_META

Meta = dict[str, np.ndarray]

BURST_META = ("duty", "burst_start", "burst_stop", "bursts")


def extra_meta_keys(config: GeneratorConfig) -> tuple[str, ...]:
    """The metadata the broad-domain options add, in a fixed order (none when all are off)."""
    keys: list[str] = []
    if config.banded:
        keys.append("bandwidth")
    if config.center != (0.0, 0.0):
        keys.append("center")
    if config.bursts.probability > 0:
        keys.extend(BURST_META)
    if config.pulse.shapes != ("rrc",):
        keys.append("pulse")
    if config.fading.enabled and config.fading.standard:
        keys.append("tdl")
    if config.hardware.enabled:
        keys.extend(HARDWARE_META)
    if config.distortion.enabled:
        keys.extend(DISTORTION_META)
    if config.distortion.edge_cut_probability > 0:
        keys.append("edge_cut")
    return tuple(keys)


def draw_bandwidth(rng: np.random.Generator, n: int, config: GeneratorConfig) -> np.ndarray:
    """Occupied bandwidth per record (a share of the sample rate), uniform in the range."""
    return rng.uniform(*config.bandwidth, size=n)


def draw_center(
    rng: np.random.Generator, n: int, config: GeneratorConfig, bandwidth: np.ndarray | None
) -> np.ndarray:
    """Band centre per record, uniform in ``config.center``.

    With a drawn bandwidth B the range is first clipped to +-(1 - B) / 2, so the whole band
    stays inside the sampled band (a band of B = 1 sits at 0).
    """
    lo, hi = config.center
    if bandwidth is None:
        return rng.uniform(lo, hi, size=n)
    room = np.maximum(0.5 - bandwidth / 2, 0.0)
    return rng.uniform(np.clip(lo, -room, room), np.clip(hi, -room, room))


def shift(x: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Move each record's band by ``center`` cycles/sample."""
    k = np.arange(x.shape[1])
    return x * expj(2 * np.pi * center[:, None] * k)


def _split(total: int, parts: int, u: np.ndarray, least: int) -> np.ndarray:
    """``total`` split into ``parts`` integers >= ``least`` at the random cut points ``u``."""
    spare = total - parts * least
    cuts = np.sort(np.minimum(np.floor(u[: parts - 1] * (spare + 1)), spare))
    return least + np.diff(np.concatenate([[0], cuts, [spare]])).astype(np.int64)


def _periods(length: int, duty: float, count: int, u: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each on-period: ``count`` of them, on for ``duty`` of ``length``."""
    on = min(max(count, int(round(duty * length))), length - (count - 1))
    ons = _split(on, count, u[:count], 1)
    gaps = _split(length - on - (count - 1), count + 1, u[count:], 0)
    gaps[1:-1] += 1  # on-periods never touch
    out, pos = [], 0
    for gap, width in zip(gaps[:-1], ons):
        pos += int(gap)
        out.append((pos, pos + int(width)))
        pos += int(width)
    return out


def burst_mask(
    rng: np.random.Generator, n: int, length: int, cfg: OnOffConfig
) -> tuple[np.ndarray, Meta]:
    """(N, length) True where a record is on, and the BURST_META of each record.

    Continuous records are on throughout (duty 1, bursts 0).
    """
    bursty = rng.random(n) < cfg.probability
    duty = rng.uniform(*cfg.duty, size=n)
    count = rng.integers(cfg.count[0], cfg.count[1] + 1, size=n)
    u = rng.random((n, 2 * cfg.count[1] + 1))
    mask = np.ones((n, length), bool)
    meta = {
        "duty": np.ones(n),
        "burst_start": np.zeros(n),
        "burst_stop": np.full(n, float(length)),
        "bursts": np.zeros(n),
    }
    for i in np.flatnonzero(bursty):
        periods = _periods(length, duty[i], int(count[i]), u[i])
        mask[i] = False
        for a, b in periods:
            mask[i, a:b] = True
        meta["duty"][i] = mask[i].mean()
        meta["burst_start"][i], meta["burst_stop"][i] = periods[0][0], periods[-1][1]
        meta["bursts"][i] = len(periods)
    return mask, meta


def gate(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero ``x`` (N, pad + L) outside the on-samples of ``mask`` (N, L).

    The leading pad samples (the channel's run-in) follow the first sample.
    """
    pad = x.shape[1] - mask.shape[1]
    full = np.concatenate([np.repeat(mask[:, :1], pad, axis=1), mask], axis=1)
    return np.where(full, x, 0).astype(np.complex64)


def on_power(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Scale each record to mean power 1 over its on-samples (the SNR refers to the burst)."""
    p = np.where(mask, x.real**2 + x.imag**2, 0).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)
    return (x / np.sqrt(np.maximum(p, 1e-20))[:, None]).astype(np.complex64)
