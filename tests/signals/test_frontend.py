"""The signal front-end: blind band and burst estimates against what the generator drew, and
the recentring, resampling and gating they drive (measured independently of the estimator)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedsb.config import apply_overrides
from fedsb.data.config import DataConfig
from fedsb.errors import ConfigError
from fedsb.signals.config import FadingConfig, GeneratorConfig, PulseConfig
from fedsb.signals.frontend import FrontendConfig, apply_frontend, estimate
from fedsb.signals.generator import generate

from .sigutil import with_imp

LINEAR = "bpsk,qpsk,8psk,16qam"


def records(
    snr: tuple[float, float],
    sps: tuple[float, float] = (2.5, 16.0),
    per_class: int = 40,
    seed: int = 0,
    noise: bool = True,
) -> tuple[np.ndarray, dict]:
    """Linear-modulation records with offsets across the whole band (no multipath)."""
    cfg = GeneratorConfig(
        length=1024,
        snr_db=snr,
        noise_enabled=noise,
        pulse=PulseConfig(sps=sps),
        fading=FadingConfig(enabled=False),
    )
    cfg = with_imp(cfg, cfo=(-0.25, 0.25), dc_offset_enabled=noise)
    rs = generate(cfg, LINEAR, per_class, seed=seed)
    return rs.iq, rs.meta


def circular(d: np.ndarray) -> np.ndarray:
    """|d| wrapped to [0, 0.5] cycles/sample."""
    return np.abs((d + 0.5) % 1.0 - 0.5)


def spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, periodogram) of each row, float64."""
    return np.fft.fftfreq(x.shape[1]), np.abs(np.fft.fft(x.astype(np.complex128), axis=1)) ** 2


def centroid(x: np.ndarray) -> np.ndarray:
    """Circular power centroid of each row's spectrum: a symmetric band's centre."""
    freqs, p = spectrum(x)
    return np.angle(np.sum(p * np.exp(2j * np.pi * freqs), axis=1)) / (2 * np.pi)


def half_power_band(x: np.ndarray) -> np.ndarray:
    """Width of the band around DC that holds half of each row's power.

    For a raised-cosine spectrum with roll-off <= 0.5 that is half the symbol rate: an integral
    over many bins, robust to the periodogram's noise.
    """
    freqs, p = spectrum(x)
    order = np.argsort(np.abs(freqs), kind="stable")
    share = np.cumsum(p[:, order], axis=1) / p.sum(axis=1, keepdims=True)
    return 2 * np.abs(freqs[order])[np.argmax(share >= 0.5, axis=1)]


# ---------------------------------------------------------------------- band estimates


@pytest.mark.parametrize(
    ("snr", "sps", "f0_median", "f0_p90"),
    [
        ((-5.0, 0.0), (8.0, 16.0), 0.003, 0.008),  # narrow: 7-9 dB in band
        ((0.0, 10.0), (2.5, 16.0), 0.002, 0.008),
        ((10.0, 20.0), (2.5, 16.0), 0.0015, 0.005),
    ],
)
def test_band_estimates_match_the_drawn_offset_and_bandwidth(snr, sps, f0_median, f0_p90):
    iq, meta = records(snr, sps)
    est = estimate(iq)
    assert est.detected.mean() >= 0.97
    f0_err = circular(est.f0 - meta["cfo"])
    assert np.median(f0_err) < f0_median and np.quantile(f0_err, 0.9) < f0_p90
    # the occupied band of an RRC signal is (1 + rolloff) / sps; the estimator's fixed
    # roll-off (0.325) leaves +-13 % by itself, bin widths and noise the rest
    ratio = est.bw / ((1 + meta["rolloff"]) / meta["sps"])
    assert 0.9 < np.median(ratio) < 1.1
    assert np.quantile(np.abs(np.log(ratio)), 0.9) < np.log(1.25)


def test_a_broken_estimate_fails_these_tolerances():
    # the tolerances above are tight enough: a centred guess or a fixed width misses them
    _, meta = records((10.0, 20.0))
    assert np.median(circular(0.0 - meta["cfo"])) > 0.05
    ratio = 0.25 / ((1 + meta["rolloff"]) / meta["sps"])
    assert np.quantile(np.abs(np.log(ratio)), 0.9) > np.log(1.25)


@pytest.mark.parametrize("rolloff", [(0.15, 0.2), (0.45, 0.5)])
def test_the_half_power_width_is_the_symbol_rate_whatever_the_roll_off(rolloff):
    cfg = GeneratorConfig(length=1024, snr_db=(15.0, 20.0), fading=FadingConfig(enabled=False))
    cfg = dataclasses.replace(cfg, pulse=PulseConfig(sps=(3.0, 12.0), rolloff=rolloff))
    rs = generate(with_imp(cfg, cfo=(-0.25, 0.25)), LINEAR, 30, seed=3)
    ratio = estimate(rs.iq).bw * rs.meta["sps"] / 1.325  # bw = 1.325 x the half-power width
    assert 0.95 < np.median(ratio) < 1.07
    assert np.quantile(np.abs(np.log(ratio)), 0.9) < np.log(1.15)


def test_noise_alone_is_not_a_band():
    rng = np.random.default_rng(4)
    noise = (rng.standard_normal((400, 1024)) + 1j * rng.standard_normal((400, 1024))) / 2**0.5
    est = estimate(noise.astype(np.complex64))
    assert est.detected.mean() < 0.01 and est.gated.mean() < 0.01
    assert np.all(est.bw[~est.detected] == 1.0) and np.all(est.f0[~est.detected] == 0.0)


# ---------------------------------------------------------------------- burst estimates


def bursts(snr_db: float, seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean records cut to a burst at a known place, in white noise at ``snr_db`` (on-SNR)."""
    iq, _ = records((0.0, 0.0), (2.5, 16.0), per_class=30, seed=seed, noise=False)
    n, length = iq.shape
    rng = np.random.default_rng(seed)
    duration = rng.integers(length // 5, int(length * 0.9), n)
    start = rng.integers(0, length - duration + 1)
    stop = start + duration
    k = np.arange(length)
    on = (k >= start[:, None]) & (k < stop[:, None])
    noise = rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length))
    x = iq * on + noise * np.sqrt(10 ** (-snr_db / 10) / 2)
    return x.astype(np.complex64), start, stop


@pytest.mark.parametrize(("snr", "within", "share"), [(5.0, 16, 0.95), (15.0, 8, 0.95)])
def test_gating_finds_a_burst_placed_in_noise(snr, within, share):
    x, start, stop = bursts(snr)
    est = estimate(x)
    err = np.maximum(np.abs(est.start - start), np.abs(est.stop - stop))
    assert est.gated.mean() >= share
    assert np.mean(err <= within) >= share
    assert np.all(est.start < est.stop)


def test_continuous_records_are_not_gated():
    iq, _ = records((0.0, 20.0), per_class=60)
    est = estimate(iq)
    assert est.gated.mean() < 0.02
    assert np.all(est.start[~est.gated] == 0) and np.all(est.stop[~est.gated] == 1024)


# ---------------------------------------------------------------------- the transforms


def test_recentring_moves_the_spectral_peak_to_dc():
    iq, meta = records((20.0, 20.0), (4.0, 16.0), noise=False)
    before = centroid(iq)
    assert np.median(circular(before - meta["cfo"])) < 0.005  # the measure finds the band
    y, _ = apply_frontend(iq, FrontendConfig(recentre=True))
    after = circular(centroid(y))
    assert np.median(after) < 0.003 and np.quantile(after, 0.9) < 0.008
    assert np.median(circular(before)) > 0.05


@pytest.mark.parametrize("occupancy", [0.2, 0.35])
def test_resampling_gives_the_canonical_occupancy(occupancy):
    iq, meta = records((30.0, 30.0), (2.5, 12.0), noise=False)
    config = FrontendConfig(recentre=True, resample=True, occupancy=occupancy)
    y, _ = apply_frontend(iq, config)
    # measured on the output, without the estimator: symbol rate (twice the half-power band)
    # times 1 + roll-off is the occupied band
    ratio = 2 * half_power_band(y) * (1 + meta["rolloff"]) / occupancy
    assert 0.9 < np.median(ratio) < 1.1 and np.quantile(np.abs(np.log(ratio)), 0.9) < np.log(1.2)
    before = (1 + meta["rolloff"]) / meta["sps"] / occupancy
    assert np.quantile(np.abs(np.log(before)), 0.5) > np.log(1.3)  # it did move
    assert np.allclose(np.mean(np.abs(y) ** 2, axis=1), 1.0, atol=1e-3)


def test_gate_keeps_the_burst_and_fills_outside_it():
    x, start, stop = bursts(15.0)
    zeros, est = apply_frontend(x, FrontendConfig(gate=True, fill="zeros"))
    k = np.arange(x.shape[1])
    outside = (k < est.start[:, None]) | (k >= est.stop[:, None])
    assert np.all(zeros[outside] == 0)
    inside = ~outside
    power = np.sum(np.abs(zeros) ** 2 * inside, axis=1) / inside.sum(axis=1)
    assert np.allclose(power, 1.0, atol=1e-3)  # the kept part has unit power
    wrapped, _ = apply_frontend(x, FrontendConfig(gate=True))
    assert np.mean(np.abs(wrapped) == 0) == 0  # repeated, never silent
    i = int(np.flatnonzero(est.gated & (est.start > 0))[0])
    span = est.stop[i] - est.start[i]
    m = int(est.start[i]) - 1  # the sample before the burst repeats its last sample
    assert wrapped[i, m] == pytest.approx(wrapped[i, m + span])


def test_each_step_is_switchable_and_off_is_identity():
    iq, _ = records((10.0, 20.0), per_class=8)
    off = FrontendConfig()
    assert not off.active
    y, est = apply_frontend(iq, FrontendConfig(recentre=True))
    rotated = iq * np.exp(-2j * np.pi * est.f0[:, None] * np.arange(iq.shape[1]))
    scale = 1 / np.sqrt(np.mean(np.abs(rotated) ** 2, axis=1, keepdims=True))
    assert np.allclose(y, rotated * scale, atol=2e-4)  # recentring alone: a pure rotation
    gated, _ = apply_frontend(iq, FrontendConfig(gate=True))  # continuous: nothing to cut
    assert np.allclose(gated, iq / np.sqrt(np.mean(np.abs(iq) ** 2, axis=1, keepdims=True)))


def test_a_record_does_not_depend_on_its_batch():
    iq, _ = records((0.0, 20.0), per_class=6)
    config = FrontendConfig(recentre=True, resample=True, gate=True)
    together, _ = apply_frontend(iq, config)
    alone = np.concatenate([apply_frontend(iq[i : i + 1], config)[0] for i in range(5)])
    assert np.array_equal(together[:5], alone)


@pytest.mark.parametrize("length", [16, 128, 4096])
def test_short_long_silent_and_empty_records(length):
    iq, _ = records((10.0, 10.0), per_class=2)
    x = np.tile(iq, (1, -(-length // iq.shape[1])))[:, :length].copy()
    x[0] = 0
    config = FrontendConfig(recentre=True, resample=True, gate=True, fill="zeros")
    y, est = apply_frontend(x, config)
    assert y.shape == x.shape and y.dtype == np.complex64 and np.isfinite(y).all()
    assert np.all(y[0] == 0) and not est.detected[0]
    empty, est = apply_frontend(np.zeros((0, length), np.complex64), config)
    assert empty.shape == (0, length) and est.f0.shape == (0,)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"iq must be complex, got dtype float64"):
        apply_frontend(np.zeros((2, 64)), FrontendConfig(recentre=True))
    with pytest.raises(ValueError, match=r"records must have at least 16 samples, got 8"):
        estimate(np.zeros((2, 8), np.complex64))


# ---------------------------------------------------------------------- the config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "images.frontend.occupancy=0",
            r"\Aimages\.frontend\.occupancy: must be in \(0, 1\], got 0\.0",
        ),
        ("images.frontend.occupancy=1.5", r"\Aimages\.frontend\.occupancy: must be in \(0, 1\]"),
        ("images.frontend.occupancy=inf", r"\Aimages\.frontend\.occupancy: must be in"),
        ("images.frontend.fill='mirror'", r"\Aimages\.frontend\.fill: 'mirror' is not one of"),
        ("images.frontend.gate=1", r"\Aimages\.frontend\.gate: expected true or false, got 1"),
        ("images.frontend.resampel=true", r"\Aimages\.frontend\.resampel: unknown key"),
    ],
)
def test_bad_frontend_options_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(DataConfig(), [override])


def test_frontend_options_reach_the_image_config():
    cfg = apply_overrides(
        DataConfig(), ["images.frontend.recentre=true", "images.frontend.occupancy=0.3"]
    )
    assert cfg.images.frontend == FrontendConfig(recentre=True, occupancy=0.3)
    assert cfg.images.frontend.active and not DataConfig().images.frontend.active
    with pytest.raises(ValueError, match=r"\Afill: 'x' is not one of 'wrap', 'zeros'\Z"):
        FrontendConfig(fill="x")  # type: ignore[arg-type]
