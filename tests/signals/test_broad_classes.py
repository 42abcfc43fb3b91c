"""The FSK, AM and FM variants of the broad domain, the wide25 set and the class aliases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import find_peaks

from fedsb.errors import ConfigError
from fedsb.io.labels import canonical_label
from fedsb.signals import classes as C
from fedsb.signals import generate
from fedsb.signals.generator import SYNTHESISERS

from .broadutil import broad_clean, mean_psd

#: KNOWN_CLASSES after the 25 of "all", as it was before the broad classes (file class lists
#: are ordered by it, so it must not move).
OLD_EXTERNAL = (
    "64apsk", "128apsk", "64psk", "128qam", "am-ssb-wc", "am-dsb-sc", "am-ssb-sc",
    "16ask", "32ask", "64ask", "8fsk", "16fsk", "msk", "tone", "chirpss",
    "4gfsk", "8gfsk", "16gfsk", "4msk", "8msk", "16msk", "4gmsk", "8gmsk", "16gmsk",
    "512qam", "1024qam",
)  # fmt: skip


def _inst_freq(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.complex128)
    return np.angle(x[:, 1:] * np.conj(x[:, :-1])) / (2 * np.pi)


@pytest.mark.parametrize("levels", [8, 16])
def test_orthogonal_mfsk_shows_one_spectral_line_per_tone(levels):
    # h = 1: tones at a / (2 sps) for odd a up to levels - 1, one symbol rate apart.
    sps = 32.0
    cfg = broad_clean(length=8192, pulse={"sps": (sps, sps)})
    f, p = mean_psd(generate(cfg, f"{levels}fsk", per_class=16, seed=31).iq)
    db = 10 * np.log10(p / p.max())
    inside = np.abs(f) < levels / (2 * sps)
    peaks, _ = find_peaks(np.where(inside, db, -100), prominence=3, height=-20)
    tones = np.arange(-(levels - 1), levels, 2) / (2 * sps)
    assert len(peaks) == levels
    np.testing.assert_allclose(np.sort(f[peaks]), tones, atol=1.5 / 1024)


@pytest.mark.parametrize(("name", "levels"), [("msk", 2), ("4msk", 4)])
def test_msk_variants_sit_on_frequencies_a_quarter_symbol_rate_apart(name, levels):
    # h = 1/2, rectangular frequency pulse: the frequency is a / (4 sps), a odd, all the time.
    sps = 8.0
    cfg = broad_clean(length=2048, pulse={"sps": (sps, sps)})
    freq = _inst_freq(generate(cfg, name, per_class=8, seed=32).iq) * 4 * sps
    levels_seen = np.round(freq)
    assert np.mean(np.abs(freq - levels_seen) < 1e-3) > 0.99
    assert set(np.unique(levels_seen)) == set(np.arange(-(levels - 1), levels, 2))
    gauss = _inst_freq(generate(cfg, f"{'4' if levels == 4 else ''}gmsk", 8, seed=32).iq)
    assert np.mean(np.abs(gauss * 4 * sps - np.round(gauss * 4 * sps)) < 1e-3) < 0.5  # control


def test_am_dsb_sc_has_no_carrier_and_am_dsb_has_one():
    rs = generate(broad_clean(length=2048), "am-dsb,am-dsb-sc", per_class=20, seed=33)
    sc = rs.iq[rs.label_names == "am-dsb-sc"]
    wc = rs.iq[rs.label_names == "am-dsb"]
    assert np.all(np.abs(sc.imag) == 0)  # a real message on the carrier's phase
    assert np.all(np.abs(sc.mean(axis=1)) < 0.1) and np.all(np.abs(wc.mean(axis=1)) > 0.7)


@pytest.mark.parametrize(("name", "side"), [("am-ssb-upper", 1), ("am-ssb-lower", -1)])
def test_single_sideband_classes_keep_their_own_side(name, side):
    rs = generate(broad_clean(length=2048), name, per_class=16, seed=34)
    assert np.all(rs.meta["sideband"] == side)
    spec = np.abs(np.fft.fft(rs.iq.astype(np.complex128), axis=1)) ** 2
    f = np.fft.fftfreq(rs.length)
    named, other = spec[:, side * f > 0].sum(axis=1), spec[:, side * f < 0].sum(axis=1)
    assert np.all(10 * np.log10(named / other) > 20)


def test_am_ssb_wc_is_a_carrier_and_one_sideband():
    rs = generate(broad_clean(length=2048), "am-ssb-wc", per_class=16, seed=35)
    x = rs.iq.astype(np.complex128)
    carrier = np.abs(x.mean(axis=1)) ** 2  # the DC line's share of the power
    assert np.all((carrier > 0.4) & (carrier < 0.95))
    spec = np.abs(np.fft.fft(x - x.mean(axis=1, keepdims=True), axis=1)) ** 2
    f = np.fft.fftfreq(rs.length)
    side = rs.meta["sideband"][:, None]
    named = np.where(side * f > 0, spec, 0).sum(axis=1)
    other = np.where(side * f < 0, spec, 0).sum(axis=1)
    assert np.all(10 * np.log10(named / other) > 20)


def test_fm_classes_peak_at_their_deviation_with_a_constant_envelope():
    rs = generate(broad_clean(length=2048), "nbfm,wbfm", per_class=20, seed=36)
    assert np.allclose(np.abs(rs.iq), 1.0, atol=1e-5)
    peak = np.abs(_inst_freq(rs.iq)).max(axis=1)  # the message's peak is 1
    np.testing.assert_allclose(peak, rs.meta["mod_index"], rtol=2e-3)
    nb = rs.label_names == "nbfm"
    assert peak[nb].max() <= 0.01 + 1e-5 and peak[~nb].min() >= 0.02 - 1e-5


def test_every_generated_class_makes_unit_power_records_with_and_without_a_band():
    names = ",".join(C.BROAD_CLASSES)
    for band in ((0.0, 0.0), (0.05, 1.0)):
        cfg = broad_clean(length=512, bandwidth=band)
        rs = generate(cfg, names, per_class=4, seed=37)
        assert np.all(np.isfinite(rs.iq))
        p = np.mean(np.abs(rs.iq.astype(np.complex128)) ** 2, axis=1)
        np.testing.assert_allclose(p, 1.0, rtol=1e-4)
    assert set(SYNTHESISERS) == set(C.GENERATED_CLASSES)


def test_wide25_is_the_rml2016_set_and_14_more_that_other_toolchains_label():
    wide = C.resolve_classes("wide25")
    assert len(wide) == len(set(wide)) == 25 and wide[:11] == C.RML2016_CLASSES
    assert set(wide) <= set(C.GENERATED_CLASSES)
    assert all(canonical_label(n) == n for n in wide)  # file labels land on these names
    torchsig_names = {"2fsk": "cpfsk", "2msk": "msk", "8fsk": "8fsk", "fm": "wbfm"}
    for torchsig, ours in {**torchsig_names, "am-dsb-sc": "am-dsb-sc", "ofdm-64": "ofdm"}.items():
        assert canonical_label(torchsig) == ours and ours in wide


def test_the_all_set_and_the_known_order_do_not_move():
    assert len(C.ALL_CLASSES) == 25 and C.CLASS_SETS["all"] == C.ALL_CLASSES
    assert C.KNOWN_CLASSES[: 25 + len(OLD_EXTERNAL)] == C.ALL_CLASSES + OLD_EXTERNAL
    assert set(C.KNOWN_CLASSES[25 + len(OLD_EXTERNAL) :]) == {
        "am-ssb-upper",
        "am-ssb-lower",
        "nbfm",
    }
    assert not set(C.EXTERNAL_CLASSES) & set(C.GENERATED_CLASSES)
    assert all(canonical_label(n) == n for n in C.BROAD_CLASSES)


def test_aliases_resolve_to_the_class_the_file_readers_map_them_to():
    assert C.resolve_classes("2FSK, fm ,DSB-SC") == ("cpfsk", "wbfm", "am-dsb-sc")
    for alias, name in C.CLASS_ALIASES.items():
        assert canonical_label(alias) == name, alias
    with pytest.raises(ConfigError, match="a class is listed twice"):
        C.resolve_classes("cpfsk,bfsk")
