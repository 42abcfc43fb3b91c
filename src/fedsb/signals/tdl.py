"""Standard tapped-delay-line channels: ``fading.model`` = a TDL_MODELS name or "standard".

Each record draws a sample rate (log-uniform in ``sample_rate_mhz``) and, for TDL-A..E, an RMS
delay spread (uniform in ``tdl_delay_spread_ns``). Path delays in ns become samples at that
rate, rounded to the nearest sample: paths that land on the same sample add their powers, as
independent Rayleigh paths do. Every path fades independently with the sum-of-sinusoids
Doppler of the exponential model (``impairments.tap_knots``); the line-of-sight path of TDL-D
and TDL-E is static with a random phase. The path powers sum to 1.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .config import FadingConfig
from .impairments import KNOT_SPACING, Meta, tap_knots
from .tdl_profiles import MAX_PATHS, PROFILES, TDL_MODELS, models_of


def profile_arrays(
    name: str, rate_mhz: np.ndarray, spread_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(delays (N, P) int, Rayleigh powers (N, P), LOS power (N,)) of profile ``name``.

    Powers are linear and sum to 1 per record; unused path slots (P = MAX_PATHS) have
    power 0, and the LOS path's slot holds 0 (its power is the third array).
    """
    p = PROFILES[name]
    n, k = len(rate_mhz), len(p.delays)
    scale = (spread_ns if p.normalised else np.ones(n))[:, None] * rate_mhz[:, None] / 1000
    delays = np.zeros((n, MAX_PATHS), np.intp)
    delays[:, :k] = np.rint(np.asarray(p.delays)[None, :] * scale).astype(np.intp)
    power = np.zeros(MAX_PATHS)
    power[:k] = 10 ** (np.asarray(p.powers_db) / 10)
    power /= power.sum()
    los = np.full(n, power[0] if p.los else 0.0)
    if p.los:
        power[0] = 0.0
    return delays, np.broadcast_to(power, (n, MAX_PATHS)).copy(), los


def _draw_profiles(
    rng: np.random.Generator, n: int, cfg: FadingConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per record: the profile's index in TDL_MODELS, its delays, Rayleigh and LOS powers."""
    names = models_of(cfg.model)
    pick = rng.integers(0, len(names), size=n)
    lo, hi = np.log(cfg.sample_rate_mhz[0]), np.log(cfg.sample_rate_mhz[1])
    rate = np.exp(rng.uniform(lo, hi, size=n))
    spread = rng.uniform(*cfg.tdl_delay_spread_ns, size=n)
    delays = np.zeros((n, MAX_PATHS), np.intp)
    power = np.zeros((n, MAX_PATHS))
    los = np.zeros(n)
    for i, name in enumerate(names):
        sel = pick == i
        delays[sel], power[sel], los[sel] = profile_arrays(name, rate[sel], spread[sel])
    index = np.array([TDL_MODELS.index(name) for name in names])[pick]
    return index, delays, power, los


def _rms_spread(delays: np.ndarray, power: np.ndarray) -> np.ndarray:
    """RMS delay spread (samples) of each record's rounded profile.

    The LOS path (delay 0, outside ``power``) adds nothing to the moments: all powers sum to 1.
    """
    mean = (delays * power).sum(axis=1)
    second = (delays**2 * power).sum(axis=1)
    return np.sqrt(np.maximum(second - mean**2, 0.0))


def multipath(
    x: np.ndarray, rng: np.random.Generator, cfg: FadingConfig, length: int
) -> tuple[np.ndarray, Meta]:
    """y[k] = sum_p g_p[k] x[k - d_p] over the paths of a standard profile.

    ``x`` is (N, length + channel_padding(cfg)); the result is (N, length).
    """
    n = x.shape[0]
    faded = rng.random(n) < cfg.probability
    index, delays, power, los_power = _draw_profiles(rng, n, cfg)
    doppler = rng.uniform(*cfg.doppler, size=n)
    doppler = doppler if cfg.time_varying else np.zeros(n)
    los_phase = rng.uniform(0, 2 * np.pi, size=n)
    knots = tap_knots(rng, n, MAX_PATHS, length, doppler)  # (N, P, K)
    los = (np.sqrt(los_power) * np.exp(1j * los_phase)).astype(np.complex64)
    y = np.empty((n, length), np.complex64)
    scatter = np.sqrt(power).astype(np.float32)
    kernels.path_delay_line(
        np.ascontiguousarray(x), knots, KNOT_SPACING, delays, scatter, los, faded, y
    )
    has_los = los_power > 0
    rayleigh_at_0 = np.where(delays == 0, power, 0.0).sum(axis=1)
    k_db = 10 * np.log10(np.maximum(los_power, 1e-30) / np.maximum(rayleigh_at_0, 1e-30))
    taps = np.array([np.unique(d[p > 0]).size for d, p in zip(delays, power)])
    meta = {
        "fading": np.where(faded, np.where(has_los, 2.0, 1.0), 0.0),
        "taps": np.where(faded, taps, np.nan),
        "delay_spread": np.where(faded, _rms_spread(delays, power), np.nan),
        "k_db": np.where(faded & has_los, k_db, np.nan),
        "doppler": np.where(faded, doppler, np.nan),
        "tdl": np.where(faded, index, np.nan),
    }
    return y, meta
