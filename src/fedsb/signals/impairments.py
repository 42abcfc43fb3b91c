"""Channel and radio impairments as pure functions of (records, Generator, config).

Each function draws its own parameters from the Generator it is given, so switching one
impairment off leaves every other draw unchanged.
"""

from __future__ import annotations

import numpy as np

from . import kernels, tdl_profiles
from .config import FadingConfig, ImpairmentsConfig
from .dsp import expj

Meta = dict[str, np.ndarray]

KNOT_SPACING = 32  # samples between exact evaluations of a time-varying tap gain (Doppler is slow)
SINUSOIDS = 8  # sum-of-sinusoids terms per tap (Jakes-like Doppler spectrum)


def channel_padding(cfg: FadingConfig) -> int:
    """Extra leading samples the synthesiser must produce so multipath has no start transient."""
    if cfg.enabled and cfg.standard:
        return tdl_profiles.max_delay_samples(
            cfg.model, cfg.tdl_delay_spread_ns, cfg.sample_rate_mhz
        )
    return cfg.taps[1] - 1 if cfg.enabled else 0


def tap_knots(
    rng: np.random.Generator, n: int, taps: int, length: int, doppler: np.ndarray
) -> np.ndarray:
    """(N, taps, K) unit-power complex gains every KNOT_SPACING samples, max Doppler ``doppler``.

    Sum of sinusoids with random arrival angles and phases (Jakes-like spectrum). Doppler is
    slow, so the delay line interpolates linearly between knots: 1/32 of the exponentials.
    """
    knots = np.arange(0, length + KNOT_SPACING, KNOT_SPACING, dtype=np.float64)  # (K,)
    q = np.arange(SINUSOIDS)
    angle = (2 * np.pi * q + rng.uniform(-np.pi, np.pi, (n, taps, 1))) / SINUSOIDS  # (N,T,Q)
    psi = rng.uniform(0, 2 * np.pi, (n, taps, SINUSOIDS))
    freq = doppler[:, None, None] * np.cos(angle)  # (N, T, Q) cycles/sample
    arg = 2 * np.pi * freq[..., None] * knots + psi[..., None]  # (N, T, Q, K)
    return expj(arg).sum(axis=2) / np.float32(np.sqrt(SINUSOIDS))  # (N, T, K)


def multipath(
    x: np.ndarray, rng: np.random.Generator, cfg: FadingConfig, length: int
) -> tuple[np.ndarray, Meta]:
    """y[k] = sum_i g_i[k] x[k - i]: Rayleigh or Rician taps, exponential delay profile.

    ``x`` is (N, length + channel_padding(cfg)); the result is (N, length).
    """
    n = x.shape[0]
    pad = x.shape[1] - length
    if not cfg.enabled:
        return x[:, pad:], {"fading": np.zeros(n)}
    max_taps = cfg.taps[1]
    faded = rng.random(n) < cfg.probability
    n_taps = rng.integers(cfg.taps[0], cfg.taps[1] + 1, size=n)
    spread = rng.uniform(*cfg.delay_spread, size=n)
    rician = {
        "rayleigh": np.zeros(n, bool),
        "rician": np.ones(n, bool),
        "mixed": rng.random(n) < 0.5,
    }[cfg.model]
    k_db = rng.uniform(*cfg.rician_k_db, size=n)
    doppler = rng.uniform(*cfg.doppler, size=n)  # drawn even when static: later draws stay put
    doppler = doppler if cfg.time_varying else np.zeros(n)
    los_phase = rng.uniform(0, 2 * np.pi, size=n)
    knots = tap_knots(rng, n, max_taps, length, doppler)  # (N, T, K)

    i = np.arange(max_taps)[None, :]
    profile = np.where(i < n_taps[:, None], np.exp(-i / spread[:, None]), 0.0)
    profile /= profile.sum(axis=1, keepdims=True)  # (N, T), sums to 1
    k_lin = np.where(rician, 10 ** (k_db / 10), 0.0)
    scatter = np.sqrt(profile).astype(np.float32)
    scatter[:, 0] *= np.sqrt(1.0 / (1.0 + k_lin)).astype(np.float32)
    los = np.sqrt(profile[:, 0] * k_lin / (1.0 + k_lin)) * np.exp(1j * los_phase)
    y = np.empty((n, length), np.complex64)
    delays = np.tile(np.arange(max_taps, dtype=np.intp), (n, 1))  # tap t: delay t
    los = los.astype(np.complex64)
    kernels.path_delay_line(
        np.ascontiguousarray(x), knots, KNOT_SPACING, delays, scatter, los, faded, y
    )
    kind = np.where(faded, np.where(rician, 2.0, 1.0), 0.0)
    meta = {
        "fading": kind,
        "taps": np.where(faded, n_taps, np.nan),
        "delay_spread": np.where(faded, spread, np.nan),
        "k_db": np.where(faded & rician, k_db, np.nan),
        "doppler": np.where(faded, doppler, np.nan),
    }
    return y, meta


def carrier(
    x: np.ndarray, rng: np.random.Generator, cfg: ImpairmentsConfig
) -> tuple[np.ndarray, Meta]:
    """Carrier frequency offset, carrier phase and random-walk phase noise, as one rotation."""
    n, length = x.shape
    # draw all three even when switched off, so toggling one leaves the others' draws unchanged
    cfo, phase0, sigma = (
        rng.uniform(*cfg.cfo, size=n),
        rng.uniform(0, 2 * np.pi, size=n),
        rng.uniform(*cfg.phase_noise, size=n),
    )
    cfo = cfo if cfg.cfo_enabled else np.zeros(n)
    phase0 = phase0 if cfg.phase_enabled else np.zeros(n)
    sigma = sigma if cfg.phase_noise_enabled else np.zeros(n)
    k = np.arange(length)
    phase = 2 * np.pi * cfo[:, None] * k + phase0[:, None]  # float64: exact for long records
    if cfg.phase_noise_enabled:
        # Random-walk (Wiener) phase: uniform steps with std sigma. After a few samples the
        # accumulated phase is Gaussian (central limit) and uniform draws cost 1/5 of normals.
        half_width = (np.sqrt(3.0) * sigma[:, None]).astype(np.float32)
        steps = rng.random((n, length), dtype=np.float32) * (2 * half_width) - half_width
        phase += np.cumsum(steps, axis=1)
    return x * expj(phase), {"cfo": cfo, "phase": phase0, "phase_noise": sigma}


def iq_imbalance(
    x: np.ndarray, rng: np.random.Generator, cfg: ImpairmentsConfig
) -> tuple[np.ndarray, Meta]:
    """Receiver IQ imbalance: y = mu*x + nu*conj(x) with gain g (dB) and phase skew theta."""
    n = x.shape[0]
    if not cfg.iq_imbalance_enabled:
        return x, {"iq_amp_db": np.zeros(n), "iq_phase_deg": np.zeros(n)}
    amp_db = rng.uniform(*cfg.iq_amplitude_db, size=n)
    phase_deg = rng.uniform(*cfg.iq_phase_deg, size=n)
    g, th = 10 ** (amp_db / 20), np.deg2rad(phase_deg)
    mu = ((1 + g * np.exp(-1j * th)) / 2).astype(np.complex64)[:, None]
    nu = ((1 - g * np.exp(1j * th)) / 2).astype(np.complex64)[:, None]
    return mu * x + nu * np.conj(x), {"iq_amp_db": amp_db, "iq_phase_deg": phase_deg}


def dc_offset(
    x: np.ndarray, rng: np.random.Generator, cfg: ImpairmentsConfig
) -> tuple[np.ndarray, Meta]:
    """A constant complex offset whose power is ``dc_offset_db`` relative to the signal's."""
    n = x.shape[0]
    if not cfg.dc_offset_enabled:
        return x, {"dc_db": np.full(n, -np.inf)}
    level_db = rng.uniform(*cfg.dc_offset_db, size=n)
    power = np.mean(np.abs(x) ** 2, axis=1)
    dc = np.sqrt(power * 10 ** (level_db / 10)) * np.exp(1j * rng.uniform(0, 2 * np.pi, n))
    return (x + dc[:, None]).astype(np.complex64), {"dc_db": level_db}


def awgn(x: np.ndarray, rng: np.random.Generator, snr_db: np.ndarray) -> np.ndarray:
    """Add complex white Gaussian noise at ``snr_db`` to unit-power records.

    SNR = mean signal power per complex sample / noise power per complex sample, over the full
    sampled band. The signal has power 1, so the noise has variance 10**(-snr_db/10), split
    equally between I and Q.
    """
    n, length = x.shape
    std = np.sqrt(10 ** (-snr_db / 10) / 2).astype(np.float32)[:, None]
    noise = rng.standard_normal((n, 2 * length), dtype=np.float32).view(np.complex64)
    noise *= std
    noise += x
    return noise
