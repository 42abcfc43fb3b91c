"""The hardware options: a Rapp amplifier with AM/PM and a receiver ADC, each checked against
its formula on crafted records, and off by default."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedsb.config import ConfigError, apply_overrides
from fedsb.signals import generate
from fedsb.signals.config import GeneratorConfig, HardwareConfig
from fedsb.signals.hardware import HARDWARE_META, adc, amplifier, rapp
from fedsb.training.config import PretrainConfig


def _tone(n: int, length: int, amplitude: float) -> np.ndarray:
    k = np.arange(length)
    phase = 2 * np.pi * 0.01 * k + np.arange(n)[:, None]
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def test_at_zero_backoff_a_constant_envelope_meets_the_rapp_gain_and_the_full_turn():
    x = _tone(3, 64, 2.0)
    cfg = HardwareConfig(amplifier_probability=1.0, backoff_db=(0.0, 0.0), smoothness=(2.0, 2.0),
                         am_pm_deg=(10.0, 10.0))  # fmt: skip
    y, meta = amplifier(x, np.random.default_rng(0), cfg)
    # r = A: gain 1/2^(1/2p) = 2^-0.25; the phase turns by the full 10 degrees
    np.testing.assert_allclose(np.abs(y), 2.0 * 2**-0.25, rtol=1e-5)
    turn = np.angle(y / x)
    np.testing.assert_allclose(turn, np.deg2rad(10.0), atol=1e-5)
    assert np.all(meta["amplifier_backoff_db"] == 0.0)


def test_rapp_is_linear_when_small_and_saturates_at_a():
    r = np.array([1e-3, 1.0, 1e3])
    out = rapp(r, np.ones(3), np.full(3, 3.0))
    np.testing.assert_allclose(out[0], 1e-3, rtol=1e-9)
    assert out[2] == pytest.approx(1.0, rel=1e-6) and out[1] < 1.0


def test_a_share_of_the_records_is_hit_and_the_others_are_left_as_they_are():
    x = _tone(2000, 16, 1.0)
    cfg = HardwareConfig(amplifier_probability=0.3)
    y, meta = amplifier(x, np.random.default_rng(1), cfg)
    hit = ~np.isnan(meta["amplifier_backoff_db"])
    assert 0.25 < hit.mean() < 0.35
    np.testing.assert_array_equal(y[~hit], x[~hit])
    assert not np.allclose(y[hit], x[hit])


def test_the_adc_puts_every_sample_on_its_grid_within_half_a_step():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((4, 4096)) + 1j * rng.standard_normal((4, 4096))).astype(np.complex64)
    cfg = HardwareConfig(adc_probability=1.0, adc_bits=(5, 5), adc_headroom_db=(12.0, 12.0))
    y, meta = adc(x, np.random.default_rng(3), cfg)
    assert np.all(meta["adc_bits"] == 5)
    rms = np.sqrt(np.mean(np.abs(x) ** 2, axis=1) / 2)  # per rail
    full = rms * 10 ** (12 / 20)
    step = 2 * full / 32
    for i in range(4):
        rails = np.concatenate([y[i].real, y[i].imag])
        levels = np.unique(rails)
        assert len(levels) <= 32
        grid = levels / step[i] - 0.5  # whole numbers: the mid-rise levels
        np.testing.assert_allclose(grid, np.round(grid), atol=1e-3)
        inside = np.abs(np.concatenate([x[i].real, x[i].imag])) < full[i] - step[i]
        err = np.abs(rails - np.concatenate([x[i].real, x[i].imag]))[inside]
        assert err.max() <= step[i] / 2 * (1 + 1e-4)
        assert np.abs(rails).max() <= full[i]


def test_a_generated_set_with_hardware_records_its_draws_and_keeps_the_other_draws():
    base = GeneratorConfig(length=256)
    # far below saturation and no AM/PM: the amplifier is all but linear
    gentle = HardwareConfig(amplifier_probability=1.0, backoff_db=(40.0, 40.0), am_pm_deg=(0, 0))
    a = generate(base, ["qpsk", "16qam"], per_class=8, seed=4)
    b = generate(dataclasses.replace(base, hardware=gentle), ["qpsk", "16qam"], per_class=8, seed=4)
    np.testing.assert_allclose(b.iq, a.iq, atol=2e-4)
    assert set(HARDWARE_META) <= set(b.meta) and not set(HARDWARE_META) & set(a.meta)
    np.testing.assert_array_equal(b.meta["snr_db"], a.meta["snr_db"])


def test_bad_hardware_values_are_named():
    with pytest.raises(ConfigError, match=r"adc_bits: 20 is above the maximum 16"):
        apply_overrides(PretrainConfig(), ["data.generator.hardware.adc_bits=[4, 20]"])
    with pytest.raises(ConfigError, match=r"amplifier_probability"):
        apply_overrides(PretrainConfig(), ["data.generator.hardware.amplifier_probability=2.0"])
