"""Each impairment in isolation, on inputs whose correct output can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fedsb.signals import impairments as imp
from fedsb.signals.config import FadingConfig, ImpairmentsConfig

ALL_OFF = ImpairmentsConfig.all_off()


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _complex_noise(n: int, length: int, seed: int = 99) -> np.ndarray:
    r = _rng(seed)
    return (r.standard_normal((n, length)) + 1j * r.standard_normal((n, length))) / np.sqrt(2)


# ---------------------------------------------------------------- AWGN


def test_awgn_variance_matches_snr_and_is_split_equally_between_i_and_q():
    # L = 65536 complex samples per row: the sample variance of |n|^2 has relative std
    # 1/sqrt(L) = 0.4 %, the I or Q variance sqrt(2/L) = 0.55 %; 3 % is > 5 sigma.
    length = 1 << 16
    snr = np.array([-10.0, 0.0, 7.5, 30.0])
    x = np.zeros((len(snr), length), np.complex64)
    y = imp.awgn(x, _rng(1), snr)
    assert y.dtype == np.complex64 and y.shape == x.shape
    noise = y.astype(np.complex128)
    target = 10 ** (-snr / 10)
    np.testing.assert_allclose(np.mean(np.abs(noise) ** 2, axis=1), target, rtol=0.03)
    np.testing.assert_allclose(np.var(noise.real, axis=1), target / 2, rtol=0.03)
    np.testing.assert_allclose(np.var(noise.imag, axis=1), target / 2, rtol=0.03)
    assert np.all(np.abs(np.mean(noise, axis=1)) < 5 * np.sqrt(target / length))
    # I and Q independent, and white (lag-1 correlation ~ 0, std 1/sqrt(L) = 0.004)
    iq = np.mean(noise.real * noise.imag, axis=1) / (target / 2)
    lag1 = np.abs(np.mean(noise[:, 1:] * np.conj(noise[:, :-1]), axis=1)) / target
    assert np.all(np.abs(iq) < 0.025) and np.all(lag1 < 0.025)


def test_awgn_adds_noise_that_does_not_depend_on_the_signal():
    x = _complex_noise(3, 256).astype(np.complex64)
    snr = np.array([0.0, 10.0, 20.0])
    y = imp.awgn(x, _rng(5), snr)
    n0 = imp.awgn(np.zeros_like(x), _rng(5), snr)
    np.testing.assert_allclose(y - x, n0, atol=1e-6)
    np.testing.assert_array_equal(imp.awgn(x, _rng(5), np.full(3, np.inf)), x)


# ---------------------------------------------------------------- IQ imbalance


def test_iq_imbalance_of_zero_db_and_zero_degrees_is_the_identity():
    cfg = ImpairmentsConfig(iq_amplitude_db=(0.0, 0.0), iq_phase_deg=(0.0, 0.0))
    x = _complex_noise(4, 128).astype(np.complex64)
    y, meta = imp.iq_imbalance(x, _rng(), cfg)
    np.testing.assert_allclose(y, x, atol=1e-6)
    assert meta["iq_amp_db"].tolist() == [0.0] * 4 and meta["iq_phase_deg"].tolist() == [0.0] * 4


def test_iq_imbalance_applies_the_branch_gains_worked_out_by_hand():
    # y = mu x + nu conj(x), mu = (1 + g e^{-j th}) / 2, nu = (1 - g e^{j th}) / 2.
    # Real input x = s:      y = (mu + nu) s = (1 - j g sin th) s   (I kept, leaks into Q)
    # Imaginary input x = js: y = (mu - nu) j s = j g cos th s       (Q branch gain g cos th)
    # With g = 10^(2/20) = 1.258925 and th = 10 deg: g sin th = 0.218613, g cos th = 1.239800.
    cfg = ImpairmentsConfig(iq_amplitude_db=(2.0, 2.0), iq_phase_deg=(10.0, 10.0))
    s = np.cos(2 * np.pi * 0.01 * np.arange(200))[None, :] * np.array([[1.0], [0.5]])
    y_re, meta = imp.iq_imbalance(s.astype(np.complex64), _rng(), cfg)
    y_im, _ = imp.iq_imbalance((1j * s).astype(np.complex64), _rng(), cfg)
    np.testing.assert_allclose(y_re, s * (1 - 0.218613j), atol=1e-5)
    np.testing.assert_allclose(y_im, 1j * 1.239800 * s, atol=1e-5)
    assert meta["iq_amp_db"] == pytest.approx([2.0, 2.0])
    assert meta["iq_phase_deg"] == pytest.approx([10.0, 10.0])


def test_iq_imbalance_creates_an_image_at_minus_f():
    # a tone e^{j 2 pi f k} becomes mu e^{j 2 pi f k} + nu e^{-j 2 pi f k}: the image ratio is
    # |nu / mu|^2 = (1 - 2 g cos th + g^2) / (1 + 2 g cos th + g^2)
    cfg = ImpairmentsConfig(iq_amplitude_db=(1.0, 1.0), iq_phase_deg=(-4.0, -4.0))
    length, bin_ = 256, 20
    x = np.exp(2j * np.pi * bin_ * np.arange(length) / length)[None, :].astype(np.complex64)
    y, _ = imp.iq_imbalance(x, _rng(), cfg)
    spec = np.abs(np.fft.fft(y[0].astype(np.complex128))) ** 2
    g, th = 10 ** (1 / 20), np.deg2rad(-4.0)
    expected = (1 - 2 * g * np.cos(th) + g**2) / (1 + 2 * g * np.cos(th) + g**2)
    assert spec[-bin_] / spec[bin_] == pytest.approx(expected, rel=1e-3)


def test_iq_imbalance_off_passes_through():
    x = _complex_noise(2, 64).astype(np.complex64)
    y, meta = imp.iq_imbalance(x, _rng(), ALL_OFF)
    assert y is x and set(meta) == {"iq_amp_db", "iq_phase_deg"}


# ---------------------------------------------------------------- carrier


def test_cfo_alone_rotates_a_constant_at_exactly_the_drawn_frequency():
    cfg = ImpairmentsConfig(cfo=(-0.05, 0.05), phase_enabled=False, phase_noise_enabled=False)
    length = 4096
    y, meta = imp.carrier(np.ones((16, length), np.complex64), _rng(3), cfg)
    assert np.all(np.abs(meta["cfo"]) <= 0.05) and np.ptp(meta["cfo"]) > 0.02
    assert np.all(meta["phase"] == 0) and np.all(meta["phase_noise"] == 0)
    np.testing.assert_allclose(np.abs(y), 1.0, atol=1e-6)
    k = np.arange(length)
    for row, cfo in zip(y.astype(np.complex128), meta["cfo"], strict=True):
        slope = np.polyfit(k, np.unwrap(np.angle(row)), 1)[0] / (2 * np.pi)
        assert slope == pytest.approx(cfo, abs=1e-9)
        assert np.angle(row[0]) == pytest.approx(0.0, abs=1e-6)


def test_carrier_phase_alone_is_a_constant_rotation():
    cfg = ImpairmentsConfig(cfo_enabled=False, phase_noise_enabled=False)
    y, meta = imp.carrier(np.ones((8, 64), np.complex64), _rng(4), cfg)
    expected = np.exp(1j * meta["phase"])[:, None] * np.ones((1, 64))
    np.testing.assert_allclose(y, expected, atol=1e-6)
    assert np.all(meta["cfo"] == 0)


def test_phase_noise_is_a_wiener_process_with_the_drawn_step_std():
    # the std of 8191 increments is estimated to 1/sqrt(2 * 8191) = 0.8 %; allow 5 %
    cfg = ImpairmentsConfig(cfo_enabled=False, phase_enabled=False, phase_noise=(0.005, 0.05))
    y, meta = imp.carrier(np.ones((6, 8192), np.complex64), _rng(6), cfg)
    steps = np.angle(y[:, 1:].astype(np.complex128) * np.conj(y[:, :-1]))
    np.testing.assert_allclose(np.std(steps, axis=1), meta["phase_noise"], rtol=0.05)
    # zero-mean steps: the mean of 8191 steps has std sigma / 90.5
    assert np.all(np.abs(np.mean(steps, axis=1)) < 5 * meta["phase_noise"] / 90)


def test_carrier_with_everything_off_is_the_identity():
    x = _complex_noise(3, 32).astype(np.complex64)
    y, meta = imp.carrier(x, _rng(), ALL_OFF)
    np.testing.assert_array_equal(y, x)
    assert all(np.all(v == 0) for v in meta.values())


# ---------------------------------------------------------------- DC offset


def test_dc_offset_adds_a_constant_at_the_drawn_power_relative_to_the_signal():
    cfg = ImpairmentsConfig(dc_offset_db=(-30.0, -5.0))
    x = (3.0 * _complex_noise(10, 512)).astype(np.complex64)  # signal power 9, not 1
    y, meta = imp.dc_offset(x, _rng(7), cfg)
    d = y.astype(np.complex128) - x
    np.testing.assert_allclose(d, d[:, :1] * np.ones((1, 512)), atol=1e-5)  # constant per row
    ratio_db = 10 * np.log10(np.abs(d[:, 0]) ** 2 / np.mean(np.abs(x.astype(complex)) ** 2, 1))
    np.testing.assert_allclose(ratio_db, meta["dc_db"], atol=1e-3)
    assert np.all((meta["dc_db"] >= -30) & (meta["dc_db"] <= -5))
    assert np.ptp(np.angle(d[:, 0])) > 1.0  # the offset's phase is random


def test_dc_offset_off_passes_through_with_minus_inf():
    x = _complex_noise(2, 16).astype(np.complex64)
    y, meta = imp.dc_offset(x, _rng(), ALL_OFF)
    assert y is x and np.all(meta["dc_db"] == -np.inf)


# ---------------------------------------------------------------- multipath


def _fading_input(n: int, length: int, pad: int) -> np.ndarray:
    return _complex_noise(n, length + pad, seed=11).astype(np.complex64)


def test_single_rayleigh_tap_without_doppler_is_a_constant_complex_gain():
    cfg = FadingConfig(taps=(1, 1), model="rayleigh", doppler=(0.0, 0.0))
    length = 1000
    x = _fading_input(64, length, imp.channel_padding(cfg))
    y, meta = imp.multipath(x, _rng(8), cfg, length)
    assert y.shape == (64, length) and imp.channel_padding(cfg) == 0
    g = y.astype(np.complex128) / x
    np.testing.assert_allclose(g, g[:, :1] * np.ones((1, length)), rtol=1e-5, atol=1e-6)
    # Rayleigh: E|g|^2 = 1 (64 records: std of the mean of |g|^2 ~ 1/8); gains vary in phase
    assert 0.6 < np.mean(np.abs(g[:, 0]) ** 2) < 1.4
    assert np.ptp(np.angle(g[:, 0])) > 3.0
    assert np.all(meta["fading"] == 1.0) and np.all(np.isnan(meta["k_db"]))
    assert np.all(meta["taps"] == 1) and np.all(meta["doppler"] == 0)


def test_doppler_makes_the_gain_vary_and_stay_within_the_doppler_band():
    fd, length = 0.005, 4096
    cfg = FadingConfig(taps=(1, 1), model="rayleigh", doppler=(fd, fd))
    x = _fading_input(8, length, 0)
    y, meta = imp.multipath(x, _rng(9), cfg, length)
    g = y.astype(np.complex128) / x
    assert np.all(np.ptp(np.abs(g), axis=1) > 0.3)  # 20 Doppler periods: deep changes
    assert np.all(meta["doppler"] == fd)
    spec = np.abs(np.fft.fft(g * np.hanning(length), axis=1)) ** 2
    f = np.fft.fftfreq(length)
    inside = spec[:, np.abs(f) <= fd + 4 / length].sum(1) / spec.sum(1)
    assert np.all(inside > 0.99)  # Jakes: no component faster than the maximum Doppler


def test_time_invariant_fading_ignores_the_doppler_range():
    length = 2048
    cfg = FadingConfig(taps=(1, 1), model="rayleigh", doppler=(0.01, 0.02), time_varying=False)
    x = _fading_input(8, length, 0)
    y, meta = imp.multipath(x, _rng(10), cfg, length)
    g = y.astype(np.complex128) / x
    np.testing.assert_allclose(g, g[:, :1] * np.ones((1, length)), rtol=1e-5, atol=1e-6)
    assert np.all(meta["doppler"] == 0)


def test_static_multipath_is_an_fir_filter_with_the_exponential_power_profile():
    taps, spread, length, n = 3, 1.0, 256, 3000
    cfg = FadingConfig(
        taps=(taps, taps), delay_spread=(spread, spread), model="rayleigh", doppler=(0.0, 0.0)
    )
    pad = imp.channel_padding(cfg)
    assert pad == taps - 1
    x = _fading_input(n, length, pad)
    y, meta = imp.multipath(x, _rng(12), cfg, length)
    # least squares y[k] = sum_i h_i x[k - i] recovers the taps exactly (residual ~ float32)
    h = np.empty((n, taps), np.complex128)
    for r in range(n):
        a = np.stack([x[r, pad - i : pad - i + length] for i in range(taps)], axis=1)
        h[r], *_ = np.linalg.lstsq(a.astype(np.complex128), y[r].astype(np.complex128), rcond=None)
        if r < 20:
            assert np.allclose(a @ h[r], y[r], atol=1e-5)
    profile = np.exp(-np.arange(taps) / spread)
    profile /= profile.sum()
    # mean tap powers over 3000 records: relative std ~ 1/sqrt(3000) = 1.8 %; allow 10 %
    np.testing.assert_allclose(np.mean(np.abs(h) ** 2, axis=0), profile, rtol=0.1)
    assert np.all(meta["taps"] == taps) and np.all(meta["delay_spread"] == spread)


def test_strong_rician_line_of_sight_gives_a_nearly_constant_unit_gain():
    cfg = FadingConfig(taps=(1, 1), model="rician", rician_k_db=(40.0, 40.0), doppler=(0.0, 0.0))
    x = _fading_input(32, 128, 0)
    y, meta = imp.multipath(x, _rng(13), cfg, 128)
    g = y[:, 0].astype(np.complex128) / x[:, 0]
    np.testing.assert_allclose(np.abs(g), 1.0, atol=0.05)  # scatter is 1e-4 of the power
    assert np.all(meta["fading"] == 2.0) and np.all(meta["k_db"] == 40.0)


def test_multipath_disabled_returns_the_input_minus_padding():
    cfg = FadingConfig(enabled=False)
    assert imp.channel_padding(cfg) == 0
    x = _fading_input(4, 100, 3)
    y, meta = imp.multipath(x, _rng(), cfg, 100)
    np.testing.assert_array_equal(y, x[:, 3:])
    assert set(meta) == {"fading"} and np.all(meta["fading"] == 0)


def test_multipath_meta_shapes_and_nans_for_unfaded_records():
    cfg = FadingConfig(probability=0.5, model="mixed", taps=(1, 4))
    n, length = 400, 64
    pad = imp.channel_padding(cfg)
    x = _fading_input(n, length, pad)
    y, meta = imp.multipath(x, _rng(14), cfg, length)
    assert y.shape == (n, length) and y.dtype == np.complex64
    assert set(meta) == {"fading", "taps", "delay_spread", "k_db", "doppler"}
    assert all(v.shape == (n,) for v in meta.values())
    kind = meta["fading"]
    flat, ray, ric = kind == 0, kind == 1, kind == 2
    assert flat.sum() > 120 and ray.sum() > 60 and ric.sum() > 60  # ~200 / 100 / 100
    np.testing.assert_array_equal(y[flat], x[flat][:, pad:])  # unfaded records untouched
    for key in ("taps", "delay_spread", "doppler"):
        assert np.all(np.isnan(meta[key][flat])) and not np.any(np.isnan(meta[key][~flat]))
    assert np.all(np.isnan(meta["k_db"][~ric])) and not np.any(np.isnan(meta["k_db"][ric]))
    assert set(np.unique(meta["taps"][~flat])) == {1.0, 2.0, 3.0, 4.0}
