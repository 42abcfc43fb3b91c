"""generator.bandwidth and generator.center, measured back from the records' spectra.

Clean records (no noise, no impairments) at a fixed drawn bandwidth B; the occupied band is
measured from the Welch PSD averaged over the records (Hann, 1024 bins). Ratios measured/B
on these seeds are in each test's comment; the bounds leave a few % around them.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedsb.signals import generate

from .broadutil import broad_clean, centroid, edge_width, mean_psd, obw

BANDS = (0.05, 0.3, 0.8)
LINEAR = "bpsk,qpsk,16qam,pam4,oqpsk"


def _ratios(classes, band, measure, shapes=("rrc",), carrier=False):
    cfg = broad_clean(bandwidth=(band, band), pulse={"shapes": shapes})
    rs = generate(cfg, classes, per_class=8, seed=5)
    out = {}
    for name in rs.class_names:
        sel = rs.label_names == name
        x = rs.iq[sel].astype(np.complex128)
        if carrier:  # the carrier line is not the band: measure the sidebands
            x = x - x.mean(axis=1, keepdims=True)
        realised = rs.meta["bandwidth"][sel]  # OFDM rounds B to whole subcarriers (< 1/16)
        assert np.all(np.abs(realised - band) <= (1 / 16 if name == "ofdm" else 1e-12))
        f, p = mean_psd(x)
        out[name] = measure(f, p) / realised.mean()
    return out


@pytest.mark.parametrize("band", BANDS)
def test_rrc_signals_end_at_the_drawn_band_edge(band):
    # RRC's spectrum is zero beyond (1 + rolloff) / T: the -30 dB width is the band. Measured
    # 1.016-1.078 (the window's main lobe widens it a little, the PSD's scatter more).
    ratios = _ratios(LINEAR, band, edge_width)
    assert all(0.97 <= r <= 1.1 for r in ratios.values()), ratios


@pytest.mark.parametrize("band", BANDS)
def test_gaussian_and_half_sine_pulses_hold_99_percent_in_the_band(band):
    # Measured 0.969-1.016.
    ratios = _ratios(LINEAR, band, obw, shapes=("gaussian", "half-sine"))
    assert all(0.94 <= r <= 1.05 for r in ratios.values()), ratios


@pytest.mark.parametrize("band", (0.1, 0.3))
def test_rectangular_pulses_have_their_first_nulls_at_the_band_edges(band):
    # sinc^2(f T) with T = 2 / B: nulls at +-B/2, -3.9 dB at +-B/4, sidelobe -13 dB at 0.72 B.
    cfg = broad_clean(bandwidth=(band, band), pulse={"shapes": ("rect",)})
    f, p = mean_psd(generate(cfg, "bpsk,qpsk", per_class=24, seed=6).iq)
    db = 10 * np.log10(p / p[np.abs(f) < band / 20].mean())  # 0 dB: the in-band level at DC
    at = lambda freq: db[np.argmin(np.abs(f - freq))]  # noqa: E731
    for side in (-1, 1):
        assert at(side * band / 2) < -20
        assert -5.0 < at(side * band / 4) < -3.0
        assert -15.5 < at(side * 0.715 * band) < -11.5


@pytest.mark.parametrize("band", BANDS)
def test_fsk_classes_hold_99_percent_in_the_nominal_band(band):
    # The nominal CPFSK bandwidth ((M - 1) h + a tone's width) / T; measured 0.86-1.09
    # (msk lowest: 99 % of MSK is 1.18 / T, the formula says 1.35 / T).
    classes = "cpfsk,gfsk,gmsk,4fsk,8fsk,16fsk,msk,4msk,4gfsk,4gmsk"
    ratios = _ratios(classes, band, obw)
    assert all(0.8 <= r <= 1.2 for r in ratios.values()), ratios


@pytest.mark.parametrize("band", BANDS)
def test_analog_classes_fill_the_band_by_message_bandwidth_and_deviation(band):
    # 99 % bandwidth: am-dsb(-sc) 0.92-0.94, SSB 0.90, wbfm 0.88-1.05 (Carson), lfm 0.97,
    # am-dsb and am-ssb-wc without their carrier 0.92-1.06.
    ratios = _ratios("am-dsb-sc,am-ssb,am-ssb-upper,am-ssb-lower,wbfm,lfm", band, obw)
    ratios |= _ratios("am-dsb,am-ssb-wc", band, obw, carrier=True)
    assert all(0.85 <= r <= 1.1 for r in ratios.values()), ratios


@pytest.mark.parametrize("band", BANDS)
def test_nbfm_sidebands_reach_the_carson_band_and_ofdm_fills_its_subcarriers(band):
    # nbfm: the carrier holds most of the power, so its -30 dB sideband width (0.89-0.92) is
    # the band; OFDM: 95 % of the power inside (0.98-1.09; its sinc tails hold the rest).
    (nbfm,) = _ratios("nbfm", band, edge_width, carrier=True).values()
    (ofdm,) = _ratios("ofdm", band, lambda f, p: obw(f, p, 0.95)).values()
    assert 0.8 <= nbfm <= 1.05 and 0.9 <= ofdm <= 1.15


def test_the_symbol_rate_follows_from_the_band_and_the_rolloff():
    # |x|^2 of an RRC signal has a line at the symbol rate: B / (1 + rolloff) here.
    band = 0.4
    cfg = broad_clean(bandwidth=(band, band))
    rs = generate(cfg, "qpsk", per_class=16, seed=7)
    env = np.abs(rs.iq.astype(np.complex128)) ** 2
    spec = np.abs(np.fft.fft(env - env.mean(axis=1, keepdims=True), axis=1)) ** 2
    f = np.fft.fftfreq(env.shape[1])
    spec[:, f <= 0.02] = 0
    line = f[np.argmax(spec, axis=1)]
    np.testing.assert_allclose(line, band / (1 + rs.meta["rolloff"]), atol=2 / env.shape[1])


def test_bands_sit_at_the_drawn_centre_and_stay_inside_the_sampled_band():
    cfg = broad_clean(length=2048, bandwidth=(0.05, 1.0), center=(-0.45, 0.45))
    rs = generate(cfg, "bpsk,16qam,cpfsk,ofdm,am-dsb-sc,wbfm", per_class=40, seed=8)
    c, b = rs.meta["center"], rs.meta["bandwidth"]
    assert np.all(np.abs(c) + b / 2 <= 0.5 + 1e-12)  # the band is inside
    assert c.min() < -0.3 and c.max() > 0.3  # and still spread over the range
    narrow = np.flatnonzero(b < 0.5)
    measured = np.array([centroid(*mean_psd(rs.iq[i], nperseg=512)) for i in narrow])
    err = np.abs(measured - c[narrow])
    assert np.median(err) < 0.003 and err.max() < 0.02, err.max()  # measured: 0.0005 / 0.008


def test_a_full_band_signal_is_centred_and_a_centre_alone_moves_the_natural_band():
    full = generate(broad_clean(bandwidth=(1.0, 1.0), center=(-0.4, 0.4)), "bpsk", 8, seed=9)
    np.testing.assert_array_equal(full.meta["center"], 0.0)
    rs = generate(broad_clean(length=2048, center=(0.2, 0.2)), "qpsk", per_class=8, seed=9)
    assert "bandwidth" not in rs.meta
    assert abs(centroid(*mean_psd(rs.iq)) - 0.2) < 0.005
