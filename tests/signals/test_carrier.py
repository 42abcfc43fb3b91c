"""The carrier from x^p's lines: exact where a line stands clear, the band's centre otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from fedsb.config import apply_overrides
from fedsb.data.config import DataConfig
from fedsb.errors import ConfigError
from fedsb.signals.carrier import CHUNK, line_carrier
from fedsb.signals.config import FadingConfig, GeneratorConfig, PulseConfig
from fedsb.signals.frontend import FrontendConfig, apply_frontend, estimate
from fedsb.signals.generator import generate

from .sigutil import with_imp


def drawn(classes: str, snr=(20.0, 30.0), sps=(2.5, 12.0), per_class=30, seed=0):
    """Generator records with offsets across the band, and each record's true carrier."""
    cfg = GeneratorConfig(
        length=1024, snr_db=snr, pulse=PulseConfig(sps=sps), fading=FadingConfig(enabled=False)
    )
    rs = generate(with_imp(cfg, cfo=(-0.25, 0.25)), classes, per_class, seed=seed)
    carrier = (rs.meta.get("center", 0.0) + rs.meta["cfo"] + 0.5) % 1.0 - 0.5
    return rs.iq, carrier


def circular(d: np.ndarray) -> np.ndarray:
    """|d| wrapped to [0, 0.5] cycles/sample."""
    return np.abs((d + 0.5) % 1.0 - 0.5)


def clipped_bpsk(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """BPSK near the band edge, its spectrum cut at +-0.25 by a brick wall (TorchSig-like)."""
    cfg = GeneratorConfig(length=1024, noise_enabled=False, pulse=PulseConfig(sps=(2.5, 3.0)))
    cfg = with_imp(cfg.clean(), cfo_enabled=True, cfo=(0.17, 0.2))
    rs = generate(cfg, "bpsk", n, seed=seed)
    spec = np.fft.fft(rs.iq.astype(np.complex128), axis=1)
    spec[:, np.abs(np.fft.fftfreq(1024)) > 0.25] = 0
    rng = np.random.default_rng(seed)
    noise = (rng.standard_normal(spec.shape) + 1j * rng.standard_normal(spec.shape)) * 0.01
    return (np.fft.ifft(spec, axis=1) + noise).astype(np.complex64), rs.meta["cfo"]


@pytest.mark.parametrize(("classes", "share"), [("bpsk,pam4", 0.8), ("qpsk", 0.5), ("am-dsb", 0.8)])
def test_a_clear_line_gives_the_carrier(classes, share):
    iq, carrier = drawn(classes)
    est = estimate(iq)
    line, found = line_carrier(iq, est.f0, est.start, est.stop)
    assert found.mean() > share
    assert np.median(circular(line - carrier)[found]) < 2e-4
    assert np.quantile(circular(line - carrier)[found], 0.9) < 1e-3
    band = circular(est.f0 - carrier)[found]
    assert np.median(circular(line - carrier)[found]) < np.median(band) / 4


def test_a_band_cut_by_a_filter_edge_is_recentred_on_its_carrier():
    iq, carrier = clipped_bpsk()
    band = estimate(iq)
    lines = estimate(iq, carrier="lines")
    assert np.median(circular(band.f0 - carrier)) > 0.02  # the visible band's middle
    moved = lines.f0 != band.f0  # a clear line (the others keep the band's centre)
    assert moved.mean() > 0.6
    assert np.quantile(circular(lines.f0 - carrier)[moved], 0.9) < 1e-3
    # the band is widened to stay symmetric about the carrier: its far edge is the cut at 0.25
    assert np.all(lines.bw[moved] > band.bw[moved] + 0.04)
    low = (lines.f0 - lines.bw / 2)[moved], (band.f0 - band.bw / 2)[moved]
    assert np.allclose(*low, atol=1e-9)
    assert np.array_equal(lines.bw[~moved], band.bw[~moved])


def test_noise_and_fsk_keep_the_band_centre():
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal((300, 1024)) + 1j * rng.standard_normal((300, 1024))) / 2**0.5
    whole = np.zeros(300, np.int64), np.full(300, 1024)
    f0 = rng.uniform(-0.5, 0.5, 300)
    line, found = line_carrier(noise.astype(np.complex64), f0, *whole)
    assert not found.any() and np.array_equal(line, f0)
    iq, _ = drawn("msk,4fsk,wbfm", per_class=40)
    est = estimate(iq)
    assert line_carrier(iq, est.f0, est.start, est.stop)[1].mean() < 0.1


def test_a_record_does_not_depend_on_its_batch():
    iq, _ = drawn("bpsk,qpsk,gfsk", per_class=CHUNK // 2)  # more than one chunk
    est = estimate(iq, carrier="lines")
    for i in (0, 5, CHUNK + 3, len(iq) - 1):
        one = estimate(iq[i : i + 1], carrier="lines")
        assert one.f0[0] == est.f0[i] and one.bw[0] == est.bw[i]


def test_band_is_the_default_and_unchanged():
    iq, _ = drawn("bpsk,8psk", per_class=10)
    a, b = estimate(iq), estimate(iq, carrier="band")
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    y_lines, _ = apply_frontend(iq, FrontendConfig(recentre=True, carrier="lines"))
    y_band, _ = apply_frontend(iq, FrontendConfig(recentre=True))
    assert not np.array_equal(y_lines, y_band)


def test_the_option_is_checked_and_reaches_the_image_config():
    cfg = apply_overrides(DataConfig(), ["images.frontend.carrier='lines'"])
    assert cfg.images.frontend.carrier == "lines"
    with pytest.raises(ConfigError, match=r"\Aimages\.frontend\.carrier: 'x' is not one of"):
        apply_overrides(DataConfig(), ["images.frontend.carrier='x'"])
