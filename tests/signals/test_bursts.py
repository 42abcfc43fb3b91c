"""Energy detection of bursts: positions against generated truth, the floor, the edges, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from fedsb.errors import ConfigError
from fedsb.signals.bursts import (
    BlockPower,
    BurstConfig,
    band_edges,
    detect_bursts,
    feed,
    noise_floor,
    periodogram,
)

from .bursts_data import burst_recording, matched, noise

CLASSES = ("bpsk", "qpsk", "16qam", "gfsk", "am-dsb")


def _chunks(x: np.ndarray, size: int):
    return (x[i : i + size] for i in range(0, x.size, size))


def test_block_powers_do_not_depend_on_the_chunking():
    x = noise(10_000, 2.0, np.random.default_rng(0))
    want = (np.abs(x[: 10_000 // 64 * 64]) ** 2).reshape(-1, 64).mean(1)
    for size in (1, 63, 64, 1000, 10_000):
        np.testing.assert_allclose(feed(_chunks(x, size), 64), want, rtol=1e-5)
    assert BlockPower(64).result().shape == (0,)


@pytest.mark.parametrize("snr_db", [10.0, 20.0])
def test_bursts_are_found_where_the_truth_says(snr_db):
    iq, truth = burst_recording(CLASSES, 6, 2048, snr_db, seed=1)
    found, floor = detect_bursts(feed(_chunks(iq, 4096), 64))
    assert floor == pytest.approx(1e-3, rel=0.03)
    assert len(found) == len(truth)
    errors = np.array(
        [(s - t["start"], s + n - t["start"] - t["count"]) for (s, n), t in zip(found, truth)]
    )  # both in sample order
    assert np.abs(errors).max() <= 192 and np.abs(errors).mean() <= 64, errors


def test_weak_bursts_are_found_and_nothing_in_the_gaps():
    iq, truth = burst_recording(CLASSES, 6, 2048, 0.0, seed=3)
    found, _ = detect_bursts(feed(_chunks(iq, 4096), 64))
    assert sum(matched(truth, found)) >= len(truth) - 1
    ends = [(t["start"], t["start"] + t["count"]) for t in truth]
    assert all(any(min(b, s + n) > max(a, s) for a, b in ends) for s, n in found)


def test_noise_alone_gives_no_burst_and_its_floor():
    x = noise(2_000_000, 0.25, np.random.default_rng(3))
    power = feed(_chunks(x, 1 << 16), 64)
    assert noise_floor(power) == pytest.approx(0.25, rel=0.01)
    assert detect_bursts(power)[0] == []


def test_a_short_dip_inside_a_burst_is_bridged_and_a_long_gap_is_not():
    rng = np.random.default_rng(4)
    x = noise(40_000, 1.0, rng)
    x[5000:9000] += 4 * noise(4000, 1.0, rng)
    x[6000:6100] = noise(100, 1.0, rng)  # 100 quiet samples: fading, not a new burst
    x[20_000:22_000] += 4 * noise(2000, 1.0, rng)
    found, _ = detect_bursts(feed([x], 64))
    assert len(found) == 2
    assert found[0][0] == pytest.approx(5000, abs=96) and found[1][0] == pytest.approx(
        20_000, abs=96
    )


def test_a_recording_too_short_for_a_floor_gives_nothing():
    power = np.ones(10, np.float32)
    assert np.isnan(noise_floor(power))
    assert detect_bursts(power) == ([], pytest.approx(np.nan, nan_ok=True))


def test_band_edges_of_a_narrowband_burst():
    """A signal in [0.10, 0.25] of the sample rate, 13 dB over the floor."""
    rng = np.random.default_rng(5)
    n, rate = 65_536, 1e6
    spec = np.zeros(n, complex)
    band = np.arange(int(0.10 * n), int(0.25 * n))
    spec[band] = rng.standard_normal(band.size) + 1j * rng.standard_normal(band.size)
    tone = np.fft.ifft(spec)
    tone *= np.sqrt(20 / np.mean(np.abs(tone) ** 2) * 0.15)  # in-band PSD 20x the floor
    x = (tone + noise(n, 1.0, rng)).astype(np.complex64)
    psd, segments = periodogram(x, 256)
    lower, upper = band_edges(psd, segments, 1.0, rate)
    assert lower == pytest.approx(0.10 * rate, abs=rate / 64)
    assert upper == pytest.approx(0.25 * rate, abs=rate / 64)
    noise_psd, k = periodogram(noise(n, 1.0, rng), 256)
    assert band_edges(noise_psd, k, 1.0, rate) is None
    assert band_edges(psd, 0, 1.0, rate) is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"block": 0}, r"detect\.block: must be >= 1"),
        ({"scales": (100,)}, r"detect\.scales: multiples of the block \(64\)"),
        ({"off_sigmas": 6.0}, r"detect\.off_sigmas: must be > 0 and below detect\.on_sigmas"),
        ({"min_length": 0}, r"detect\.min_length: must be >= 1"),
        ({"floor_quantile": 0.3}, r"detect\.floor_quantile: one of"),
    ],
)
def test_bad_settings_are_config_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        detect_bursts(np.ones(100, np.float32), BurstConfig(**change))
