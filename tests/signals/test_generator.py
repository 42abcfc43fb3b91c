"""The batched, seeded generator: shapes, counts, reproducibility, draws and the SNR definition."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedsb.signals.classes import ALL_CLASSES, GENERATED_CLASSES, RML2016_CLASSES
from fedsb.signals.config import GeneratorConfig
from fedsb.signals.generator import BLOCK, META_KEYS, SYNTHESISERS, draw_snr, generate

from .sigutil import clean, periodogram, power, with_fading, with_imp, with_pulse

SMALL = GeneratorConfig(length=128)


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.iq, b.iq)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert set(a.meta) == set(b.meta)
    for k in a.meta:
        np.testing.assert_array_equal(a.meta[k], b.meta[k])


def test_every_class_has_a_synthesiser_with_the_documented_signature():
    assert set(SYNTHESISERS) == set(GENERATED_CLASSES)
    rng = np.random.default_rng(0)
    for name, synth in SYNTHESISERS.items():
        x, meta = synth(name, rng, 3, 100, SMALL.pulse)
        assert x.shape == (3, 100) and x.dtype == np.complex64, name
        assert set(meta) <= set(META_KEYS), name
        assert all(np.shape(v) == (3,) for v in meta.values()), name
        np.testing.assert_allclose(power(x), 1.0, rtol=1e-4, err_msg=name)


@pytest.mark.parametrize("length", [128, 1000, 1024])
def test_shapes_dtypes_meta_and_finite_samples(length):
    cfg = dataclasses.replace(GeneratorConfig(), length=length)
    rs = generate(cfg, "all", per_class=3, seed=1)
    n = 3 * len(ALL_CLASSES)
    assert rs.iq.shape == (n, length) and rs.iq.dtype == np.complex64
    assert rs.labels.shape == (n,) and rs.labels.dtype == np.int64
    assert rs.class_names == ALL_CLASSES
    assert set(rs.meta) == set(META_KEYS)
    assert all(rs.meta[k].shape == (n,) for k in META_KEYS)
    assert np.all(np.isfinite(rs.iq))
    assert np.all((rs.snr_db >= -10) & (rs.snr_db <= 20))
    assert rs.info["seed"] == 1 and rs.info["per_class"] == 3


def test_counts_are_exact_and_labels_shuffled():
    rs = generate(SMALL, "rml2016", per_class=7, seed=2)
    assert rs.counts().tolist() == [7] * len(RML2016_CLASSES)
    assert not np.array_equal(rs.labels, np.sort(rs.labels))
    # shuffled across the whole set: each class appears in both halves
    half = len(rs) // 2
    assert len(np.unique(rs.labels[:half])) >= 8 and len(np.unique(rs.labels[half:])) >= 8


def test_clean_records_have_unit_power_and_infinite_snr():
    rs = generate(SMALL.clean(), "all", per_class=2, seed=3)
    np.testing.assert_allclose(power(rs.iq), 1.0, rtol=1e-4)
    assert np.all(rs.snr_db == np.inf)


def test_same_seed_is_bit_identical_and_different_seeds_differ():
    a = generate(SMALL, "rml2016", per_class=4, seed=10)
    b = generate(SMALL, "rml2016", per_class=4, seed=10)
    c = generate(SMALL, "rml2016", per_class=4, seed=11)
    _same(a, b)
    assert not np.array_equal(a.iq, c.iq)
    assert not np.array_equal(a.meta["snr_db"], c.meta["snr_db"])


def test_output_does_not_depend_on_chunk():
    per_class = 12  # 25 classes x 12 = 300 records: two seeded blocks of BLOCK = 256
    assert per_class * len(ALL_CLASSES) > BLOCK
    a = generate(SMALL, "all", per_class=per_class, seed=4, chunk=256)
    b = generate(SMALL, "all", per_class=per_class, seed=4, chunk=4096)
    c = generate(SMALL, "all", per_class=per_class, seed=4, chunk=1)  # rounds up to a block
    _same(a, b)
    _same(a, c)


def test_output_does_not_depend_on_workers():
    cfg = dataclasses.replace(SMALL, length=64)
    a = generate(cfg, "all", per_class=11, seed=5, workers=1, chunk=256)
    b = generate(cfg, "all", per_class=11, seed=5, workers=2, chunk=256)  # two tasks, 2 procs
    _same(a, b)
    c = generate(cfg, "all", per_class=11, seed=5, workers=0, chunk=256)  # 0: one per core
    _same(a, c)


def test_progress_reports_every_record_once():
    calls: list[int] = []
    rs = generate(SMALL, "all", per_class=12, seed=6, chunk=256, progress=calls.append)
    assert sum(calls) == len(rs) == 300 and calls == [256, 44]


def test_empty_set():
    rs = generate(SMALL, "bpsk", per_class=0, seed=0)
    assert rs.iq.shape == (0, 128) and len(rs) == 0 and set(rs.meta) == set(META_KEYS)
    with pytest.raises(ValueError):
        generate(SMALL, "bpsk", per_class=-1)


def test_class_subset_labels_index_into_it():
    rs = generate(SMALL.clean(), "bpsk,qpsk", per_class=20, seed=7)
    assert rs.class_names == ("bpsk", "qpsk")
    assert rs.counts().tolist() == [20, 20]
    # the label really names the modulation: clean BPSK is real-valued after RRC shaping
    bpsk = rs.iq[rs.labels == 0]
    qpsk = rs.iq[rs.labels == 1]
    assert np.max(np.abs(bpsk.imag)) < 1e-6 < np.min(np.max(np.abs(qpsk.imag), axis=1))
    seq = generate(SMALL.clean(), ("qpsk", "bpsk"), per_class=1, seed=7)
    assert seq.class_names == ("qpsk", "bpsk")


@pytest.mark.parametrize(
    ("off", "kept"),
    [
        (
            {"iq_imbalance_enabled": False},
            ("cfo", "phase", "phase_noise", "dc_db", "sps", "snr_db"),
        ),
        (
            {"dc_offset_enabled": False},
            ("cfo", "phase", "phase_noise", "iq_amp_db", "iq_phase_deg"),
        ),
        ({"cfo_enabled": False}, ("phase", "phase_noise", "iq_amp_db", "dc_db", "fading", "taps")),
        ({"phase_enabled": False}, ("cfo", "phase_noise", "iq_phase_deg", "dc_db")),
        ({"phase_noise_enabled": False}, ("cfo", "phase", "iq_amp_db", "dc_db")),
    ],
)
def test_switching_one_impairment_off_keeps_the_other_draws(off, kept):
    a = generate(SMALL, "bpsk,qpsk,gfsk", per_class=30, seed=8)
    b = generate(with_imp(SMALL, **off), "bpsk,qpsk,gfsk", per_class=30, seed=8)
    for key in kept:
        np.testing.assert_array_equal(a.meta[key], b.meta[key], err_msg=key)


def test_switching_fading_off_keeps_the_symbol_and_carrier_draws():
    a = generate(SMALL, "bpsk,ofdm,lfm", per_class=30, seed=9)
    b = generate(with_fading(SMALL, enabled=False), "bpsk,ofdm,lfm", per_class=30, seed=9)
    for key in (
        "sps",
        "rolloff",
        "timing",
        "mod_index",
        "cfo",
        "phase",
        "iq_amp_db",
        "dc_db",
        "snr_db",
    ):
        np.testing.assert_array_equal(a.meta[key], b.meta[key], err_msg=key)
    assert np.all(b.meta["fading"] == 0) and np.all(np.isnan(b.meta["taps"]))


def test_meta_is_nan_where_a_parameter_does_not_apply():
    rs = generate(SMALL, "bpsk,gfsk,am-ssb,lfm", per_class=5, seed=12)
    names = rs.label_names
    assert np.all(np.isnan(rs.meta["sideband"][names != "am-ssb"]))
    assert set(np.unique(rs.meta["sideband"][names == "am-ssb"])) <= {-1.0, 1.0}
    assert np.all(np.isnan(rs.meta["bt"][names != "gfsk"]))
    assert np.all(np.isnan(rs.meta["rolloff"][names != "bpsk"]))
    assert not np.any(np.isnan(rs.meta["sps"][np.isin(names, ["bpsk", "gfsk"])]))
    assert np.all(np.isnan(rs.meta["sps"][np.isin(names, ["am-ssb", "lfm"])]))


def test_snr_step_puts_every_snr_on_the_grid():
    cfg = dataclasses.replace(SMALL, snr_db=(-10.0, 20.0), snr_step=2.0)
    rs = generate(cfg, "rml2016", per_class=30, seed=13)
    snr = rs.snr_db
    np.testing.assert_array_equal(snr, np.round(snr / 2) * 2)
    assert set(np.unique(snr)) == set(np.arange(-10, 21, 2).astype(float))  # all 16 used
    odd = draw_snr(np.random.default_rng(0), 2000, dataclasses.replace(cfg, snr_db=(-9.0, 20.0)))
    assert set(np.unique(odd)) == set(np.arange(-9, 20, 2).astype(float))  # never above 20


def test_noise_disabled_gives_infinite_snr_and_clean_records():
    cfg = dataclasses.replace(SMALL, noise_enabled=False)
    rs = generate(cfg, "bpsk,am-ssb", per_class=10, seed=14)
    assert np.all(rs.snr_db == np.inf)
    np.testing.assert_allclose(power(rs.iq), 1.0, rtol=1e-4)


def test_clean_switches_everything_off_but_keeps_ranges():
    cfg = GeneratorConfig(length=256, snr_db=(0.0, 4.0), snr_step=1.0)
    cfg = with_pulse(cfg, sps=(3.0, 5.0), rolloff=(0.2, 0.3), gaussian_bt=(0.3, 0.4))
    c = cfg.clean()
    assert (c.length, c.snr_db, c.snr_step, c.noise_enabled) == (256, (0.0, 4.0), 1.0, False)
    assert (c.pulse.sps, c.pulse.rolloff, c.pulse.gaussian_bt) == (
        (3.0, 5.0),
        (0.2, 0.3),
        (0.3, 0.4),
    )
    assert c.pulse.timing is False and c.fading.enabled is False
    imp_flags = [f.name for f in dataclasses.fields(c.impairments) if f.name.endswith("_enabled")]
    assert imp_flags and not any(getattr(c.impairments, f) for f in imp_flags)


@pytest.mark.parametrize(
    "bad",
    [
        {"length": 8},
        {"snr_db": (10.0, 0.0)},
        {"snr_step": -1.0},
        {"snr_db": (-60.0, 0.0)},
    ],
)
def test_invalid_generator_config_is_rejected(bad):
    with pytest.raises(ValueError):
        dataclasses.replace(GeneratorConfig(), **bad)


# ---------------------------------------------------------------- the SNR definition
#
# SNR = mean signal power per complex sample / noise power per complex sample over the full
# band (impairments.awgn). Measured back two independent ways.


def test_snr_measured_from_the_noise_itself_matches_meta():
    # (a) Same seed with and without noise: everything before the AWGN is identical, so
    # noisy - clean is the noise. Per record, 10 log10(P_clean / P_noise) has a standard
    # deviation of (10 / ln 10) / sqrt(L) = 0.096 dB at L = 2048 (|n|^2 is exponential);
    # 0.5 dB is a 5.2 sigma bound. The mean over 120 records at fixed SNR is within 0.05 dB.
    length = 2048
    cfg = GeneratorConfig(length=length, snr_db=(-5.0, 25.0))  # full default impairments
    noisy = generate(cfg, "rml2016", per_class=8, seed=15)
    quiet = generate(dataclasses.replace(cfg, noise_enabled=False), "rml2016", per_class=8, seed=15)
    clean_part = quiet.iq.astype(np.complex128)
    noise = noisy.iq.astype(np.complex128) - clean_part
    measured = 10 * np.log10(power(clean_part) / power(noise))
    assert np.max(np.abs(measured - noisy.snr_db)) < 0.5
    for key in META_KEYS:  # everything but the SNR column is the same set
        if key != "snr_db":
            np.testing.assert_array_equal(noisy.meta[key], quiet.meta[key], err_msg=key)

    fixed = dataclasses.replace(cfg, snr_db=(10.0, 10.0))
    noisy = generate(fixed, "all", per_class=5, seed=16)
    quiet = generate(dataclasses.replace(fixed, noise_enabled=False), "all", per_class=5, seed=16)
    noise = noisy.iq.astype(np.complex128) - quiet.iq
    measured = 10 * np.log10(power(quiet.iq) / power(noise))
    assert np.all(noisy.snr_db == 10.0)
    assert abs(np.mean(measured) - 10.0) < 0.05


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_snr_measured_from_the_out_of_band_noise_floor(snr_db):
    # (b) BPSK at sps = 8, roll-off 0.35 occupies |f| <= (1 + 0.35) / 16 = 0.084 cycles/sample.
    # Beyond |f| >= 0.25 only white noise remains, so the mean periodogram there is the noise
    # density N0 and the full-band noise power is N0 (per unit band); signal = total - N0.
    # A Hann window keeps the signal's periodogram leakage below the noise floor: without it
    # the 20 dB estimate is biased to 19.75 dB, with it the error is < 0.03 dB.
    length, n = 1024, 64
    cfg = with_pulse(
        GeneratorConfig(length=length, snr_db=(snr_db, snr_db)).clean(),
        sps=(8.0, 8.0),
        rolloff=(0.35, 0.35),
    )
    cfg = dataclasses.replace(cfg, noise_enabled=True)
    rs = generate(cfg, "bpsk", per_class=n, seed=17)
    win = np.hanning(length)
    spec = periodogram(rs.iq * win) / np.sum(win**2)  # mean over bins = power per sample
    mean_spec = spec.mean(axis=0)
    f = np.fft.fftfreq(length)
    noise = mean_spec[np.abs(f) >= 0.25].mean()
    total = mean_spec.mean()
    assert 10 * np.log10((total - noise) / noise) == pytest.approx(snr_db, abs=0.5)


def test_clean_bpsk_has_no_out_of_band_power():
    # the control for the estimate above: without noise the floor is far below every SNR tested
    cfg = clean(1024, sps=(8.0, 8.0), rolloff=(0.35, 0.35))
    rs = generate(cfg, "bpsk", per_class=16, seed=17)
    win = np.hanning(1024)
    spec = periodogram(rs.iq * win).mean(axis=0) / np.sum(win**2)
    f = np.fft.fftfreq(1024)
    assert 10 * np.log10(spec[np.abs(f) >= 0.25].mean() / spec.mean()) < -40
