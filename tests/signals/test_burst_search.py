"""Sub-band detection and edge fits: z-scores against scipy, weak bursts against generated truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fedsb.errors import ConfigError
from fedsb.signals.burst_search import (
    SPEC_BINS,
    SPEC_BLOCK,
    SpectralPower,
    fit_edges,
    hysteresis,
    wh_ratio,
    wh_z,
)
from fedsb.signals.bursts import BurstConfig, detect_bursts, feed

from .bursts_data import matched, noise


def _spectrum(x: np.ndarray, size: int = 1 << 16) -> np.ndarray:
    acc = SpectralPower()
    for i in range(0, x.size, size):
        acc.add(x[i : i + size])
    return acc.result()


def _narrowband(n: int, width: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise band-limited to ``width`` of the sample rate around DC."""
    spec = np.zeros(n, complex)
    keep = int(width * n / 2)
    spec[np.r_[0 : keep + 1, n - keep : n]] = rng.standard_normal(2 * keep + 1) + 1j * (
        rng.standard_normal(2 * keep + 1)
    )
    x = np.fft.ifft(spec)
    return (x / np.sqrt(np.mean(np.abs(x) ** 2))).astype(np.complex64)


@pytest.mark.parametrize("dof", [16, 64, 1024])
@pytest.mark.parametrize("z", [-2.0, 3.0, 6.0])
def test_wilson_hilferty_z_matches_the_gamma_distribution(dof, z):
    """Reference: the mean of ``dof`` unit exponentials is Gamma(dof, 1 / dof)."""
    ratio = stats.gamma.ppf(stats.norm.cdf(z), dof, scale=1 / dof)
    assert float(wh_z(ratio, dof)) == pytest.approx(z, abs=0.06 if z < 6 else 0.12)
    assert wh_ratio(z, dof) == pytest.approx(ratio, rel=0.01 if z < 6 else 0.02)


def _hysteresis_loop(s, on, off, gap):
    """Reference: the plain loop over runs above ``off``."""
    out, a = [], None
    for i, v in enumerate(np.append(s, -np.inf)):
        if v > off and a is None:
            a = i
        elif v <= off and a is not None:
            if (s[a:i] > on).any():
                if out and a - out[-1][1] < gap:
                    out[-1] = (out[-1][0], i)
                else:
                    out.append((a, i))
            a = None
    return out


@pytest.mark.parametrize("gap", [0, 1, 3])
def test_hysteresis_is_the_plain_loop(gap):
    s = np.random.default_rng(gap).random(2000)
    assert hysteresis(s, 0.95, 0.6, gap) == _hysteresis_loop(s, 0.95, 0.6, gap)
    assert hysteresis(np.zeros(10), 0.95, 0.6, gap) == []


def test_the_spectrogram_is_the_mean_periodogram_and_does_not_depend_on_the_chunking():
    x = noise(40 * SPEC_BLOCK + 100, 2.0, np.random.default_rng(0))
    rows = x[: 40 * SPEC_BLOCK].reshape(40, SPEC_BLOCK // SPEC_BINS, SPEC_BINS)
    want = np.fft.fftshift((np.abs(np.fft.fft(rows, axis=2)) ** 2).mean(1) / SPEC_BINS, axes=1)
    for size in (1, 100, 256, 5000, x.size):
        np.testing.assert_allclose(_spectrum(x, size), want, rtol=1e-4)
    assert _spectrum(x).mean() == pytest.approx(2.0, rel=0.05)  # white noise: P in every bin
    assert SpectralPower().result().shape == (0, SPEC_BINS)


def test_a_weak_narrowband_burst_is_found_in_its_sub_band_only():
    """-12 dB over the whole band, but 4 % of it wide: 1 dB over the floor in its bin."""
    rng = np.random.default_rng(1)
    x = noise(400_000, 1.0, rng)
    truth = [{"start": 100_000 + 60_000 * i, "count": 3000} for i in range(5)]
    for t in truth:
        x[t["start"] : t["start"] + 3000] += _narrowband(3000, 0.04, rng) * 10 ** (-12 / 20)
    power, spec = feed([x], 64), _spectrum(x)
    wide, floor = detect_bursts(power, BurstConfig(band_sigmas=0))
    assert floor == pytest.approx(1.0, rel=0.02)
    assert not any(matched(truth, wide))
    found, _ = detect_bursts(power, spectrum=spec)
    assert all(matched(truth, found)) and len(found) == len(truth)
    for (s, n), t in zip(found, truth, strict=True):
        assert abs(s - t["start"]) <= 512 and abs(s + n - t["start"] - 3000) <= 512


def test_noise_alone_gives_no_sub_band_burst():
    rng = np.random.default_rng(2)
    x = noise(4_000_000, 0.5, rng)
    assert detect_bursts(feed([x], 64), spectrum=_spectrum(x))[0] == []


def test_an_edge_fit_moves_a_weak_bursts_edges_to_its_true_ones():
    """A 4096-sample burst at 0 dB (1 x the floor over it) found 1024 samples short each side."""
    rng = np.random.default_rng(3)
    x = noise(20_000, 1.0, rng)
    x[8000:12096] += noise(4096, 1.0, rng)
    power = feed([x], 64)
    [(a, b)] = fit_edges([((8000 + 1024) // 64, (12096 - 1024) // 64)], power, 1.0, 32)
    assert abs(a * 64 - 8000) <= 128 and abs(b * 64 - 12096) <= 128
    strong = power.copy()
    strong[125:189] = 100.0  # far over the floor: its edges are left as they are
    assert fit_edges([(130, 180)], strong, 1.0, 32) == [(130, 180)]


def test_an_edge_fit_stops_half_way_to_a_neighbour():
    power = np.ones(400)
    power[100:200] = power[210:300] = 2.0  # two bursts 10 blocks apart
    assert fit_edges([(120, 180), (230, 290)], power, 1.0, 64) == [(100, 200), (210, 300)]
    power[200:210] = 2.0  # one burst, found in two pieces: each keeps its half
    assert fit_edges([(120, 180), (230, 290)], power, 1.0, 64) == [(100, 205), (205, 300)]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"band_sigmas": 1.0}, r"detect\.band_sigmas: must be 0 \(off\) or above detect\.off"),
        ({"reach": 100}, r"detect\.reach: a multiple of the block \(64\) >= 0 expected"),
        ({"reach": -64}, r"detect\.reach: a multiple of the block \(64\) >= 0 expected"),
    ],
)
def test_bad_search_settings_are_config_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        detect_bursts(np.ones(100, np.float32), BurstConfig(**change))
