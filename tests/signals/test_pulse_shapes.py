"""pulse.shapes: RRC, Gaussian, rectangular and half-sine pulses of the linear classes."""

from __future__ import annotations

import numpy as np
import pytest

from fedsb.signals import generate, pulses
from fedsb.signals.config import PULSE_SHAPES

from .broadutil import broad_clean, mean_psd


def test_rectangular_pulses_hold_each_symbol_for_a_whole_symbol():
    # At 8 samples per symbol and no timing offset a record changes value only every 8 samples.
    cfg = broad_clean(length=1024, pulse={"shapes": ("rect",), "sps": (8.0, 8.0)})
    rs = generate(cfg, "bpsk,16qam,8ask", per_class=6, seed=21)
    for x in rs.iq:
        steps = np.flatnonzero(np.abs(np.diff(x)) > 1e-6) + 1
        assert steps.size > 20 and np.all((steps - steps[0]) % 8 == 0)
    rrc = generate(broad_clean(length=1024, pulse={"sps": (8.0, 8.0)}), "bpsk", 6, seed=21)
    assert np.all((np.abs(np.diff(rrc.iq, axis=1)) > 1e-6).mean(axis=1) > 0.9)  # control


def test_half_sine_oqpsk_is_msk_with_a_constant_envelope():
    cfg = broad_clean(length=2048, pulse={"shapes": ("half-sine",), "sps": (4.0, 12.0)})
    env = np.abs(generate(cfg, "oqpsk", per_class=8, seed=22).iq)
    assert np.all(env.std(axis=1) / env.mean(axis=1) < 1e-3)
    rrc = np.abs(generate(broad_clean(length=2048), "oqpsk", per_class=8, seed=22).iq)
    assert np.all(rrc.std(axis=1) / rrc.mean(axis=1) > 0.05)  # RRC OQPSK's envelope moves


@pytest.mark.parametrize("bt", [0.3, 0.5])
def test_gaussian_pulses_have_a_gaussian_spectrum_half_power_at_bt(bt):
    # |P(f)|^2 = exp(-ln 2 (f T / BT)^2): half power at f = BT / T, parabolic in dB.
    sps = 8.0
    cfg = broad_clean(pulse={"shapes": ("gaussian",), "sps": (sps, sps), "gaussian_bt": (bt, bt)})
    f, p = mean_psd(generate(cfg, "qpsk,16qam", per_class=16, seed=23).iq)
    db = 10 * np.log10(p / p[np.argmin(np.abs(f))])
    main = np.abs(f) < 2 * bt / sps  # down to about -12 dB
    slope = np.polyfit((f[main] * sps / bt) ** 2, db[main], 1)
    np.testing.assert_allclose(slope[0], -10 * np.log10(2), rtol=0.06)  # -3.01 dB per (f T/BT)^2
    resid = np.polyval(slope, (f[main] * sps / bt) ** 2) - db[main]
    assert np.sqrt(np.mean(resid**2)) < 0.4 and np.abs(resid).max() < 1.5  # the PSD's scatter


def test_each_record_draws_one_of_the_listed_shapes_and_its_own_parameters():
    shapes = ("gaussian", "rect", "half-sine")
    cfg = broad_clean(length=256, pulse={"shapes": shapes})
    rs = generate(cfg, "bpsk,oqpsk,cpfsk,am-dsb", per_class=90, seed=24)
    linear = np.isin(rs.label_names, ["bpsk", "oqpsk"])
    drawn = rs.meta["pulse"][linear]
    counts = [np.sum(drawn == PULSE_SHAPES.index(s)) for s in shapes]
    assert sum(counts) == linear.sum() and min(counts) > 40  # 180 records, 60 expected each
    assert np.all(np.isnan(rs.meta["pulse"][~linear]))
    assert np.all(np.isnan(rs.meta["rolloff"][linear]))  # no RRC drawn
    gauss = linear & (rs.meta["pulse"] == PULSE_SHAPES.index("gaussian"))
    assert np.all(np.isfinite(rs.meta["bt"][gauss]))
    assert np.all(np.isnan(rs.meta["bt"][linear & ~gauss]))


def test_the_new_pulses_are_the_textbook_ones():
    u = np.linspace(-2, 2, 401)
    np.testing.assert_array_equal(pulses.rect(u), (np.abs(u + 1e-12) <= 0.5) * 1.0)
    np.testing.assert_allclose(
        pulses.half_sine(u), np.where(np.abs(u) <= 0.5, np.cos(np.pi * u), 0)
    )
    g = pulses.gaussian(u, 0.5)
    spec = np.abs(np.fft.fft(pulses.gaussian(np.arange(-4096, 4096) / 64, 0.5), 1 << 16))
    f = np.fft.fftfreq(1 << 16, 1 / 64)
    half = f[np.argmin(np.abs(spec[: 1 << 14] / spec[0] - 2**-0.5))]  # -3 dB of amplitude
    assert g[200] == 1.0 and abs(half - 0.5) < 0.01
