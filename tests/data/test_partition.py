"""Partition plans (label, quantity, SNR and channel skew) and the client data built from them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from fedsb.config import apply_overrides, to_dict
from fedsb.data.config import CHANNEL_PROFILES, DataConfig, PartitionConfig
from fedsb.data.imageset import join_sets
from fedsb.data.partition import (
    build_client_data,
    channel_profile,
    partition_rows,
    plan_partition,
)
from fedsb.federated.config import RunConfig
from fedsb.training.config import TARGET_GENERATOR

from ..federated.conftest import TINY_IMAGES

DATA = DataConfig(classes="rml2016", per_class=1, seed=1, generator=TARGET_GENERATOR)
K = 11  # rml2016 classes


def _plan(**kw):
    return plan_partition(PartitionConfig(**kw), DATA)


def _flat(plans):
    return [(p.counts, p.snr_db, p.profile) for p in plans]


def test_plan_is_seeded():
    kw = {"clients": 8, "records_per_client": 200, "quantity_sigma": 0.5}
    assert _flat(_plan(**kw, seed=3)) == _flat(_plan(**kw, seed=3))
    assert _flat(_plan(**kw, seed=3)) != _flat(_plan(**kw, seed=4))


@pytest.mark.parametrize("alpha", [0.0, 0.1, 1.0, 100.0])
def test_counts_sum_to_each_client_size(alpha):
    plans = _plan(clients=12, records_per_client=97, dirichlet_alpha=alpha, quantity_sigma=0.7)
    for p in plans:
        assert len(p.counts) == K and min(p.counts) >= 0
        assert sum(p.counts) == p.size >= 32
    assert [p.client for p in plans] == list(range(12))


def _mean_max_share(alpha: float) -> float:
    plans = _plan(clients=40, records_per_client=500, dirichlet_alpha=alpha)
    return float(np.mean([max(p.counts) / p.size for p in plans]))


def test_dirichlet_skew_grows_as_alpha_shrinks():
    shares = [_mean_max_share(a) for a in (0.1, 1.0, 100.0)]
    assert shares[0] > shares[1] > shares[2]
    assert shares[0] > 0.5  # alpha 0.1: most of a client's data is one class
    assert shares[2] < 2 / K  # alpha 100: close to balanced (1/11)


def test_alpha_zero_is_class_balanced():
    for p in _plan(clients=5, records_per_client=100, dirichlet_alpha=0.0):
        assert max(p.counts) - min(p.counts) <= 1 and sum(p.counts) == 100


def test_quantity_skew_sizes():
    n, per = 10, 300
    sizes = [p.size for p in _plan(clients=n, records_per_client=per, quantity_sigma=1.0)]
    assert min(sizes) >= 32 and len(set(sizes)) > 1
    # the lognormal shares are rounded to exactly n * per; only the min_records floor adds some
    assert n * per <= sum(sizes) <= n * per + n * 32
    assert [p.size for p in _plan(clients=n, records_per_client=per)] == [per] * n


def test_min_records_floor_under_strong_quantity_skew():
    plans = _plan(clients=20, records_per_client=50, quantity_sigma=3.0, min_records=40, seed=1)
    sizes = [p.size for p in plans]
    assert min(sizes) == 40  # sigma 3 draws some tiny shares: they are raised to the floor


def test_snr_windows_inside_the_range_and_covering_it():
    lo, hi = DATA.generator.snr_db
    plans = _plan(clients=10, snr_window_db=15.0)
    windows = sorted(p.snr_db for p in plans)
    assert all(b - a == pytest.approx(15.0) for a, b in windows)
    assert all(lo <= a and b <= hi for a, b in windows)
    assert windows[0][0] == lo and windows[-1][1] == hi
    reach = lo
    for a, b in windows:  # no gap between the windows: their union is [lo, hi]
        assert a <= reach
        reach = max(reach, b)
    assert reach == hi
    assert len({p.snr_db for p in plans}) == 10  # every client has its own window
    for p in plans:
        assert p.generator.snr_db == p.snr_db


def test_snr_window_wider_than_the_range_is_the_range():
    lo, hi = DATA.generator.snr_db
    assert {p.snr_db for p in _plan(clients=4, snr_window_db=100.0)} == {(lo, hi)}
    assert {p.snr_db for p in _plan(clients=4, snr_skew=False)} == {(lo, hi)}


def _diff(a, b, prefix=""):
    """Dotted keys whose values differ between two nested dicts, with the new value."""
    out = {}
    for key in a:
        if isinstance(a[key], dict):
            out.update(_diff(a[key], b[key], f"{prefix}{key}."))
        elif a[key] != b[key]:
            out[prefix + key] = b[key]
    return out


def test_channel_profiles_change_only_the_documented_fields():
    base = TARGET_GENERATOR
    cfo = [c / 5 for c in base.impairments.cfo]
    expected = {
        "multipath": {
            "fading.taps": [3, 4],
            "fading.delay_spread": [1.0, 1.5],
            "impairments.cfo": cfo,
        },
        "cfo": {"fading.taps": [1, 1]},
        "iq-imbalance": {
            "fading.taps": [1, 2],
            "fading.delay_spread": [0.3, 0.6],
            "impairments.cfo": cfo,
            "impairments.iq_amplitude_db": [-2.0, 2.0],
            "impairments.iq_phase_deg": [-10.0, 10.0],
        },
        "flat": {"fading.taps": [1, 1], "fading.model": "rician", "impairments.cfo": cfo},
        "phase-noise": {
            "fading.taps": [1, 2],
            "fading.delay_spread": [0.3, 0.6],
            "impairments.cfo": cfo,
            "impairments.phase_noise": [0.005, 0.02],
        },
    }
    assert set(expected) == set(CHANNEL_PROFILES)
    for profile, changes in expected.items():
        got = _diff(to_dict(base), to_dict(channel_profile(base, profile)))
        assert got == changes, profile
    with pytest.raises(ValueError, match="unknown channel profile 'rain'"):
        channel_profile(base, "rain")


def test_profiles_are_spread_over_clients():
    plans = _plan(clients=10)
    names = [p.profile for p in plans]
    assert sorted(names) == sorted(list(CHANNEL_PROFILES) * 2)
    for p in plans:
        expected = replace(channel_profile(DATA.generator, p.profile), snr_db=p.snr_db)
        assert p.generator == expected
    for p in _plan(clients=4, channel_skew=False):
        assert p.profile == "mixed" and p.generator == replace(DATA.generator, snr_db=p.snr_db)


def test_partition_rows_describe_the_plan():
    plans = _plan(clients=3, records_per_client=40)
    rows = partition_rows(plans)
    assert [r["records"] for r in rows] == [p.size for p in plans]
    assert [tuple(r["counts"]) for r in rows] == [p.counts for p in plans]
    assert [r["profile"] for r in rows] == [p.profile for p in plans]


def test_built_client_data_follow_the_plan(tmp_path):
    data = apply_overrides(RunConfig(), TINY_IMAGES).data
    cfg = PartitionConfig(
        clients=3,
        records_per_client=40,
        dirichlet_alpha=0.3,
        val_per_class=2,
        test_per_class=3,
        snr_window_db=8.0,
        min_records=8,
    )
    plans = plan_partition(cfg, data)
    built = [build_client_data(p, cfg, data, tmp_path) for p in plans]
    for p, c in zip(plans, built):
        assert c.plan == p
        assert c.train.class_names == ("bpsk", "qpsk", "gfsk")
        counts = torch.bincount(c.train.labels, minlength=3).tolist()
        assert tuple(counts) == p.counts
        assert torch.bincount(c.val.labels, minlength=3).tolist() == [2, 2, 2]
        assert torch.bincount(c.test.labels, minlength=3).tolist() == [3, 3, 3]
        lo, hi = p.snr_db
        for split in (c.train, c.val, c.test):
            assert split.images.shape[1:] == (2, 16, 16)
            assert bool(((split.snr_db >= lo - 1e-4) & (split.snr_db <= hi + 1e-4)).all())
    # clients and splits are independent draws
    assert not torch.equal(built[0].val.images, built[1].val.images)
    assert not torch.equal(built[0].val.images, built[0].test.images[: len(built[0].val)])
    # the same plan gives the same data (from the cache or generated again)
    again = build_client_data(plans[1], cfg, data, None)
    assert torch.equal(again.train.images, built[1].train.images)
    union = join_sets([c.test for c in built])
    assert len(union) == 27 and torch.equal(union.labels[9:18], built[1].test.labels)
