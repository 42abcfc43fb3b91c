"""fading.model = a standard tapped-delay-line profile, measured from impulse responses.

The reference profiles below are copied from the standards (3GPP TS 36.104 Annex B.2 and
TR 38.901 Table 7.7.2-1/-4), not from the module, and mapped onto the sample grid here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedsb.signals import generate, impairments, tdl
from fedsb.signals.config import FadingConfig, GeneratorConfig
from fedsb.signals.tdl_profiles import TDL_MODELS

EPA_NS = [0, 30, 70, 90, 110, 190, 410]
EPA_DB = [0.0, -1.0, -2.0, -3.0, -8.0, -17.2, -20.8]
TDL_A = [  # normalised delay, power dB
    (0.0000, -13.4), (0.3819, 0.0), (0.4025, -2.2), (0.5868, -4.0), (0.4610, -6.0),
    (0.5375, -8.2), (0.6708, -9.9), (0.5750, -10.5), (0.7618, -7.5), (1.5375, -15.9),
    (1.8978, -6.6), (2.2242, -16.7), (2.1718, -12.4), (2.4942, -15.2), (2.5119, -10.8),
    (3.0582, -11.3), (4.0810, -12.7), (4.4579, -16.2), (4.5695, -18.3), (4.7966, -18.9),
    (5.0066, -16.6), (5.3043, -19.9), (9.6586, -29.7),
]  # fmt: skip
TDL_D_RAYLEIGH_AT_0 = [-13.5, -18.8]  # the Rayleigh part of the first path, and 0.035 DS
TDL_D_LOS_DB, TDL_D_ALL_DB = -0.2, [-13.5, -18.8, -21.0, -22.8, -17.9, -20.1, -21.9, -22.9,
                                    -27.8, -23.6, -24.8, -30.0, -27.7]  # fmt: skip


def _impulse_responses(cfg: FadingConfig, n: int, length: int = 160, seed: int = 0):
    """(n, length) impulse responses of a static channel: an impulse at output sample 0."""
    pad = impairments.channel_padding(cfg)
    x = np.zeros((n, length + pad), np.complex64)
    x[:, pad] = 1.0
    y, meta = tdl.multipath(x, np.random.default_rng(seed), cfg, length)
    return y.astype(np.complex128), meta


def _expected(delays_samples, powers_db, length):
    out = np.zeros(length)
    for d, p in zip(delays_samples, powers_db):
        out[int(round(d))] += 10 ** (p / 10)
    return out / out.sum()


def test_epa_tap_powers_at_100_mhz_are_the_published_profile():
    # At 100 MHz the EPA delays fall on samples 0, 3, 7, 9, 11, 19 and 41.
    cfg = FadingConfig(model="epa", sample_rate_mhz=(100.0, 100.0), time_varying=False)
    h, meta = _impulse_responses(cfg, 4000)
    measured = np.mean(np.abs(h) ** 2, axis=0)
    expected = _expected([d / 10 for d in EPA_NS], EPA_DB, h.shape[1])
    on = expected > 0
    assert np.flatnonzero(on).tolist() == [0, 3, 7, 9, 11, 19, 41]
    np.testing.assert_allclose(measured[on], expected[on], rtol=0.08)  # 4000 Rayleigh draws
    assert measured[~on].max() < 1e-10
    assert np.all(meta["taps"] == 7) and np.all(meta["tdl"] == TDL_MODELS.index("epa"))


def test_tdl_a_delays_scale_with_the_delay_spread_and_the_sample_rate():
    # 100 ns at 10 MHz: one sample per unit of normalised delay; 300 ns: three.
    for spread, step in ((100.0, 1.0), (300.0, 3.0)):
        cfg = FadingConfig(
            model="tdl-a",
            sample_rate_mhz=(10.0, 10.0),
            tdl_delay_spread_ns=(spread, spread),
            time_varying=False,
        )
        h, meta = _impulse_responses(cfg, 3000, seed=1)
        measured = np.mean(np.abs(h) ** 2, axis=0)
        expected = _expected([d * step for d, _ in TDL_A], [p for _, p in TDL_A], h.shape[1])
        strong = expected > 0.01
        np.testing.assert_allclose(measured[strong], expected[strong], rtol=0.1)
        assert measured[expected == 0].max() < 1e-10  # nothing between the paths
        k = np.arange(h.shape[1])
        rms = np.sqrt((k**2 * expected).sum() - (k * expected).sum() ** 2)
        np.testing.assert_allclose(meta["delay_spread"], rms, rtol=1e-9)


def test_tdl_d_keeps_a_line_of_sight_path_at_its_k_factor():
    # 1000 ns at 10 MHz: the LOS path and Rayleigh paths at 0 and 0.035 DS share sample 0.
    cfg = FadingConfig(
        model="tdl-d",
        sample_rate_mhz=(10.0, 10.0),
        tdl_delay_spread_ns=(1000.0, 1000.0),
        time_varying=False,
    )
    h, meta = _impulse_responses(cfg, 4000, seed=2)
    g = np.abs(h[:, 0]) ** 2
    m2, m4 = g.mean(), (g**2).mean()
    los = np.sqrt(max(2 * m2**2 - m4, 0.0))  # moments of a Rician tap: LOS power
    k_db = 10 * np.log10(los / (m2 - los))
    total = 10 ** (TDL_D_LOS_DB / 10) + sum(10 ** (p / 10) for p in TDL_D_ALL_DB)
    expected_k = TDL_D_LOS_DB - 10 * np.log10(sum(10 ** (p / 10) for p in TDL_D_RAYLEIGH_AT_0))
    assert abs(k_db - expected_k) < 1.0  # 12.2 dB
    np.testing.assert_allclose(meta["k_db"], expected_k, atol=1e-9)
    at_0 = 10 ** (TDL_D_LOS_DB / 10) + sum(10 ** (p / 10) for p in TDL_D_RAYLEIGH_AT_0)
    np.testing.assert_allclose(m2, at_0 / total, rtol=0.05)
    assert np.all(meta["fading"] == 2.0)


def test_doppler_makes_every_path_vary_and_static_paths_stay():
    cfg = FadingConfig(model="eva", sample_rate_mhz=(10.0, 10.0), doppler=(0.005, 0.005))
    pad = impairments.channel_padding(cfg)
    x = np.ones((64, 2048 + pad), np.complex64)  # a constant through the channel: sum of gains
    y, _ = tdl.multipath(x, np.random.default_rng(3), cfg, 2048)
    assert np.median(np.std(np.abs(y), axis=1)) > 0.2
    static = dataclasses.replace(cfg, time_varying=False)
    y, _ = tdl.multipath(x, np.random.default_rng(3), static, 2048)
    assert np.abs(y - y[:, :1]).max() < 1e-5


@pytest.mark.parametrize("model", ["standard", "etu"])
def test_the_generator_runs_the_profiles_and_records_them(model):
    fading = FadingConfig(model=model, probability=0.7, sample_rate_mhz=(1.0, 20.0))
    cfg = GeneratorConfig(length=512, fading=fading)
    rs = generate(cfg, "qpsk,gfsk,am-ssb", per_class=80, seed=4)
    assert np.all(np.isfinite(rs.iq))
    faded = rs.meta["fading"] > 0
    assert abs(faded.mean() - 0.7) < 0.1
    index = rs.meta["tdl"][faded]
    if model == "standard":
        assert set(index) == set(range(len(TDL_MODELS)))
        los = np.isin(index, [TDL_MODELS.index("tdl-d"), TDL_MODELS.index("tdl-e")])
        assert np.all((rs.meta["fading"][faded] == 2.0) == los)
    else:
        assert np.all(index == TDL_MODELS.index("etu")) and np.all(rs.meta["fading"][faded] == 1)
    assert np.all(np.isnan(rs.meta["tdl"][~faded]))
    # ETU's 5 us at 20 MHz is 100 samples, TDL-E's 20.65 x 300 ns 124: the run-in made
    assert impairments.channel_padding(fading) == (100 if model == "etu" else 124)
