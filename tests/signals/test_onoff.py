"""generator.bursts: on/off periods inside a record, measured back from the envelope."""

from __future__ import annotations

import dataclasses

import numpy as np

from fedsb.signals import generate
from fedsb.signals.config import OnOffConfig

from .broadutil import broad_clean, runs

CLASSES = "bpsk,16qam,cpfsk,gmsk,8fsk,am-ssb-wc,wbfm,lfm"  # no exact zeros while on


def test_the_envelope_is_on_exactly_for_the_drawn_periods():
    cfg = broad_clean(
        length=2048, bursts=OnOffConfig(probability=1.0, duty=(0.1, 0.9), count=(1, 3))
    )
    rs = generate(cfg, CLASSES, per_class=12, seed=11)
    env = np.abs(rs.iq)
    on = env > 0  # off samples are exactly zero (no noise, no channel, no DC)
    for i in range(len(rs)):
        periods = runs(on[i])
        assert len(periods) == rs.meta["bursts"][i]
        assert (periods[0][0], periods[-1][1]) == (
            rs.meta["burst_start"][i],
            rs.meta["burst_stop"][i],
        )
    np.testing.assert_array_equal(on.mean(axis=1), rs.meta["duty"])
    duty = rs.meta["duty"]
    assert (
        duty.min() < 0.15
        and duty.max() > 0.85
        and np.all((duty >= 0.1 - 1e-3) & (duty <= 0.9 + 1e-3))
    )
    assert set(np.unique(rs.meta["bursts"])) == {1.0, 2.0, 3.0}


def test_the_probability_sets_the_share_of_bursts_and_the_rest_are_continuous():
    cfg = broad_clean(length=256, bursts=OnOffConfig(probability=0.3, duty=(0.2, 0.5)))
    rs = generate(cfg, "qpsk,4fsk", per_class=200, seed=12)
    bursty = rs.meta["bursts"] > 0
    assert abs(bursty.mean() - 0.3) < 0.08  # binomial std 0.023 over 400 records
    assert np.all(rs.meta["duty"][~bursty] == 1.0)
    assert np.all(np.abs(rs.iq[~bursty]) > 0) and np.all(rs.meta["duty"][bursty] <= 0.5 + 1e-3)


def test_the_snr_of_a_burst_is_that_of_its_on_time():
    # Off samples are noise alone (variance 10^(-SNR/10)); on samples add a unit-power signal.
    base = broad_clean(length=4096, bursts=OnOffConfig(probability=1.0, duty=(0.2, 0.5)))
    cfg = dataclasses.replace(base, noise_enabled=True, snr_db=(5.0, 15.0))
    rs = generate(cfg, "bpsk,am-dsb-sc,gfsk", per_class=20, seed=13)
    clean = generate(base, "bpsk,am-dsb-sc,gfsk", per_class=20, seed=13)
    on = np.abs(clean.iq) > 0
    power = np.abs(rs.iq.astype(np.complex128)) ** 2
    p_on = np.array([power[i, on[i]].mean() for i in range(len(rs))])
    p_off = np.array([power[i, ~on[i]].mean() for i in range(len(rs))])
    measured = 10 * np.log10((p_on - p_off) / p_off)
    err = measured - rs.meta["snr_db"]
    assert abs(np.median(err)) < 0.2 and np.abs(err).max() < 1.0, err
    signal = [
        np.mean(np.abs(clean.iq[i, on[i]].astype(np.complex128)) ** 2) for i in range(len(rs))
    ]
    np.testing.assert_allclose(signal, 1.0, rtol=1e-4)  # unit power while on


def test_switching_bursts_on_only_gates_the_same_signal():
    cont = broad_clean(length=1024)
    gated = dataclasses.replace(cont, bursts=OnOffConfig(probability=1.0, duty=(0.3, 0.6)))
    a = generate(cont, "qpsk,msk,am-ssb", per_class=6, seed=14)
    b = generate(gated, "qpsk,msk,am-ssb", per_class=6, seed=14)
    for i in range(len(a)):
        on = np.abs(b.iq[i]) > 0
        ratio = b.iq[i, on] / a.iq[i, on]  # one real gain per record (the power normalisation)
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)
        assert abs(ratio[0].imag) < 1e-5 and ratio[0].real > 0
