"""The front-end with given estimates: the training-time front-end's output, and a burst's band."""

from __future__ import annotations

from dataclasses import replace
from itertools import product

import numpy as np
import pytest

from fedsb.signals import generate
from fedsb.signals.burst_frontend import BAND_SAMPLES, apply_given, burst_band
from fedsb.signals.config import GeneratorConfig
from fedsb.signals.frontend import FrontendConfig, apply_frontend
from fedsb.signals.occupancy import HALF_POWER_TO_OCCUPIED

from .bursts_data import noise

STEPS = [
    FrontendConfig(recentre=r, resample=s, gate=g, fill=f)
    for r, s, g, f in product([False, True], [False, True], [False, True], ["wrap", "zeros"])
    if r or s or g
]


@pytest.fixture(scope="module")
def records() -> np.ndarray:
    x = generate(replace(GeneratorConfig(), length=512), ["bpsk", "gfsk", "am-dsb", "16qam"], 4, 3)
    iq = x.iq.copy()
    iq[:3, :200] *= 0.01  # bursts for the gate
    return iq


@pytest.mark.parametrize(
    "config", STEPS, ids=lambda c: f"{c.recentre}-{c.resample}-{c.gate}-{c.fill}"
)
def test_with_the_records_own_estimates_it_is_the_front_end(records, config):
    want, est = apply_frontend(records, config)
    got = apply_given(records, config, (est.f0, est.bw, est.detected), (est.start, est.stop))
    np.testing.assert_array_equal(got, want)


def test_a_bursts_band_comes_from_its_middle():
    """A flat band 0.2 wide centred at 0.15 cycles/sample, 20 dB up, 40,000 samples."""
    rng = np.random.default_rng(0)
    n = 40_000
    spec = np.zeros(n, complex)
    band = np.arange(int(0.05 * n), int(0.25 * n))
    spec[band] = rng.standard_normal(band.size) + 1j * rng.standard_normal(band.size)
    x = np.fft.ifft(spec)
    x = (x / np.sqrt(np.mean(np.abs(x) ** 2)) * 10 + noise(n, 1.0, rng)).astype(np.complex64)
    f0, bw, detected = burst_band(x)
    # a flat band's half-power width is its width; the estimate scales it to a raised cosine's
    assert detected and f0 == pytest.approx(0.15, abs=0.005)
    assert bw == pytest.approx(0.2 * HALF_POWER_TO_OCCUPIED, rel=0.05)
    middle = x[(n - BAND_SAMPLES) // 2 : (n + BAND_SAMPLES) // 2]
    assert burst_band(x) == burst_band(middle)  # only the middle is used
    assert burst_band(x[:10]) == (0.0, 1.0, False)  # too short for a PSD
