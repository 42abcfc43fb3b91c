"""TorchSig's level-2 distortions (``generator.distortion``): each checked against its formula
or numpy's own convolution on crafted records, and off by default."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedsb.config import ConfigError, apply_overrides, config_hash
from fedsb.signals import generate
from fedsb.signals.config import DistortionConfig, GeneratorConfig
from fedsb.signals.distortion import (
    DISTORTION_META,
    dense_multipath,
    edge_cut,
    polynomial,
    receiver,
)
from fedsb.training.config import PretrainConfig


def _noise(n: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length))).astype(
        np.complex64
    )


def test_the_dense_channel_is_numpys_convolution_with_its_impulse_response():
    cfg = DistortionConfig(dense_probability=1.0)
    longest = cfg.padding + 1
    impulse = np.zeros((6, 300 + cfg.padding), np.complex64)
    impulse[:, cfg.padding] = 1
    h, meta = dense_multipath(impulse, np.random.default_rng(5), cfg)
    taps = meta["dense_taps"].astype(int)
    assert cfg.padding == 99 and h.shape == (6, 300)
    assert np.all((taps >= 10) & (taps <= 100))
    x = _noise(6, 300 + cfg.padding, 6)
    y, _ = dense_multipath(x, np.random.default_rng(5), cfg)  # the same draws: the same taps
    for i in range(6):
        response = h[i, : taps[i]]
        assert np.abs(h[i, taps[i] :]).max() < 1e-6 < np.abs(response[-1])
        assert np.sum(np.abs(response) ** 2) == pytest.approx(1.0, rel=1e-5)
        want = np.convolve(x[i], response)[longest - 1 : x.shape[1]]
        np.testing.assert_allclose(y[i], want, atol=1e-4)


def test_taps_follow_one_over_the_coherence_bandwidth():
    cfg = DistortionConfig(dense_probability=1.0, dense_coherence_bandwidth=(0.05, 0.05))
    _, meta = dense_multipath(_noise(4, 64, 0), np.random.default_rng(1), cfg)
    assert cfg.padding == 19 and np.all(meta["dense_taps"] == 20)


def test_the_polynomial_meets_its_formula_and_keeps_the_power():
    x = _noise(50, 256, 2) * 3
    cfg = DistortionConfig(polynomial_probability=1.0)
    y, meta = polynomial(x, np.random.default_rng(3), cfg)
    a3, a5 = meta["polynomial_a3"], meta["polynomial_a5"]
    assert 0.3 < np.mean(a5 > 0) < 0.7 and np.all(a5[a5 > 0] <= a3[a5 > 0] ** 2 * 1e4)
    for i in range(50):
        r2 = np.abs(x[i]) ** 2 / np.mean(np.abs(x[i]) ** 2)
        ratio = y[i] / x[i]  # real and positive: the phase is kept
        assert np.max(np.abs(ratio.imag)) < 1e-4 * np.max(np.abs(ratio))
        want = 1 + a3[i] * r2 + a5[i] * r2**2
        np.testing.assert_allclose(ratio.real / ratio.real[0], want / want[0], rtol=2e-3)
        assert np.mean(np.abs(y[i]) ** 2) == pytest.approx(np.mean(np.abs(x[i]) ** 2), rel=1e-4)


def test_the_receiver_adds_torchsigs_slope_and_a_gain_step():
    x = _noise(400, 128, 4)
    cfg = DistortionConfig(slope_probability=0.5, gain_step_probability=0.5, gain_step_db=(6, 6))
    y, meta = receiver(x, np.random.default_rng(5), cfg)
    sloped, stepped = meta["slope"] == 1, np.isfinite(meta["gain_step_db"])
    assert 0.4 < sloped.mean() < 0.6 and 0.4 < stepped.mean() < 0.6
    for i in range(400):
        # TorchSig's AddSlope: data + insert(diff(data), 0, 0)
        want = x[i] + np.insert(np.diff(x[i]), 0, 0) if sloped[i] else x[i].copy()
        if stepped[i]:
            want[int(meta["gain_step_at"][i]) :] *= 10 ** (6 / 20)
        np.testing.assert_allclose(y[i], want, rtol=1e-5, atol=1e-5)


def test_the_edge_cut_removes_the_outer_side_of_the_band_and_keeps_the_rest():
    x = _noise(3, 4096, 9)  # white: every frequency has the same power
    center, bandwidth = np.array([0.2, -0.2, 0.0]), np.array([0.2, 0.2, 0.3])
    cfg = DistortionConfig(edge_cut_probability=1.0, edge_cut_share=(0.25, 0.25))
    y, meta = edge_cut(x, np.random.default_rng(1), cfg, center, bandwidth)
    np.testing.assert_array_equal(meta["edge_cut"], 0.25)
    ratio = np.abs(np.fft.fft(y, axis=1)) / np.abs(np.fft.fft(x, axis=1))  # (3, L) the gain
    f = np.fft.fftfreq(4096)
    # the walls: 0.2 + 0.2 * (0.5 - 0.25) = 0.25 above, -0.25 below; +-0.075 for the centred
    for row, wall, side in ((0, 0.25, 1), (1, -0.25, -1)):
        beyond = side * (f - wall)
        np.testing.assert_allclose(ratio[row][beyond > 0.006], 0.0, atol=1e-5)
        np.testing.assert_allclose(ratio[row][beyond < -0.006], 1.0, atol=1e-5)
    away = np.abs(np.abs(f) - 0.075) > 0.006
    cut = ratio[2][away] < 0.5  # one side of the centred band only, either one
    assert cut.any() and not np.all(cut) and np.all(np.isin(ratio[2][away].round(4), [0, 1]))


def test_edge_cut_needs_a_placed_band_and_records_what_it_cut():
    base = GeneratorConfig(length=256, bandwidth=(0.1, 0.4), center=(-0.3, 0.3))
    on = dataclasses.replace(
        base, distortion=DistortionConfig(edge_cut_probability=0.5, edge_cut_share=(0.1, 0.4))
    )
    a = generate(base, ["qpsk"], per_class=40, seed=3)
    b = generate(on, ["qpsk"], per_class=40, seed=3)
    hit = np.isfinite(b.meta["edge_cut"])
    assert 0.3 < hit.mean() < 0.7 and np.all(b.meta["edge_cut"][hit] >= 0.1)
    np.testing.assert_array_equal(b.meta["center"], a.meta["center"])
    assert not np.allclose(b.iq[hit], a.iq[hit]) and np.isfinite(b.iq).all()
    assert config_hash(base) != config_hash(on)


def test_off_by_default_and_out_of_the_hash_and_the_output():
    base = GeneratorConfig(length=256)
    ranged = dataclasses.replace(base, distortion=DistortionConfig(gain_step_db=(1.0, 2.0)))
    a = generate(base, ["qpsk", "am-dsb"], per_class=6, seed=7)
    b = generate(ranged, ["qpsk", "am-dsb"], per_class=6, seed=7)
    np.testing.assert_array_equal(a.iq, b.iq)
    assert config_hash(GeneratorConfig()) == config_hash(
        dataclasses.replace(GeneratorConfig(), distortion=DistortionConfig())
    )
    assert not set(DISTORTION_META) & set(a.meta)


def test_a_distorted_set_records_its_draws_and_spares_the_records_it_does_not_hit():
    base = GeneratorConfig(length=256)
    # the dense channel lengthens what the synthesisers make (its run-in), so it is left out
    on = DistortionConfig(polynomial_probability=0.5, gain_step_probability=0.5,
                          slope_probability=0.5)  # fmt: skip
    a = generate(base, ["qpsk", "16qam"], per_class=40, seed=8)
    b = generate(dataclasses.replace(base, distortion=on), ["qpsk", "16qam"], per_class=40, seed=8)
    assert set(DISTORTION_META) <= set(b.meta) and np.isfinite(b.iq).all()
    np.testing.assert_array_equal(b.meta["snr_db"], a.meta["snr_db"])
    for key in ("polynomial_a3", "gain_step_db"):
        assert 0.3 < np.isfinite(b.meta[key]).mean() < 0.7
    spared = np.isnan(b.meta["polynomial_a3"]) & np.isnan(b.meta["gain_step_db"])
    spared &= b.meta["slope"] == 0
    assert spared.any() and not np.allclose(b.iq[~spared], a.iq[~spared])
    np.testing.assert_array_equal(b.iq[spared], a.iq[spared])
    dense = dataclasses.replace(on, dense_probability=0.5)
    c = generate(dataclasses.replace(base, distortion=dense), ["qpsk"], per_class=40, seed=8)
    assert 0.3 < np.isfinite(c.meta["dense_taps"]).mean() < 0.7 and np.isfinite(c.iq).all()


def test_bad_distortion_values_are_named():
    with pytest.raises(ConfigError, match=r"dense_probability"):
        apply_overrides(PretrainConfig(), ["data.generator.distortion.dense_probability=1.5"])
    with pytest.raises(ConfigError, match=r"dense_coherence_bandwidth: 0.0 is below"):
        apply_overrides(
            PretrainConfig(), ["data.generator.distortion.dense_coherence_bandwidth=[0.0, 0.1]"]
        )
