"""Splits and caps of whole groups: no group in two splits, stratified, seeded; joined files."""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import pytest

from fedsb.data.files import FileRecords
from fedsb.data.groups import assign_to_splits, cap_groups, split_by_group
from fedsb.errors import ConfigError, DataError
from fedsb.signals.recordset import RecordSet


def _data(n_groups: int = 600, per: int = 3, classes: int = 4, seed: int = 0):
    """Groups of ``per`` records sharing class and SNR; every 10th group has no SNR."""
    rng = np.random.default_rng(seed)
    g_label = rng.integers(0, classes, n_groups)
    g_snr = rng.choice(np.arange(-20.0, 20.0, 2.0), n_groups)
    g_snr[::10] = np.nan
    groups = np.repeat(rng.permutation(n_groups) * 7, per)  # arbitrary, non-contiguous ids
    return np.repeat(g_label, per), np.repeat(g_snr, per), groups


def _owner(splits) -> dict[int, int]:
    return {int(i): s for s, idx in enumerate(splits) for i in idx}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_group_is_in_two_splits_and_every_record_is_in_one(seed: int) -> None:
    labels, snr, groups = _data(seed=seed)
    splits = split_by_group(labels, snr, groups, 0.2, 0.1, seed)
    owner = _owner(splits)
    assert sorted(owner) == list(range(labels.size))
    for g in np.unique(groups):
        assert len({owner[i] for i in np.flatnonzero(groups == g)}) == 1, g


def test_fractions_are_close_overall_per_class_and_per_snr_bin() -> None:
    labels, snr, groups = _data(n_groups=3000)
    train, val, test = split_by_group(labels, snr, groups, 0.15, 0.25, 4)
    n = labels.size
    assert abs(val.size / n - 0.15) < 0.01 and abs(test.size / n - 0.25) < 0.01
    for c in range(4):
        mine = labels == c
        assert abs(mine[test].sum() / mine.sum() - 0.25) < 0.02, c
    bins = np.where(np.isnan(snr), np.inf, np.floor(snr / 2.0))
    for b in np.unique(bins):  # NaN SNR is a bin of its own: it too is split 60/15/25
        mine = bins == b
        assert abs(mine[val].sum() / mine.sum() - 0.15) < 0.06, b
        assert abs(mine[test].sum() / mine.sum() - 0.25) < 0.06, b


def test_the_same_seed_gives_the_same_split_and_another_seed_another() -> None:
    labels, snr, groups = _data()
    a = split_by_group(labels, snr, groups, 0.2, 0.2, 9)
    b = split_by_group(labels, snr, groups, 0.2, 0.2, 9)
    c = split_by_group(labels, snr, groups, 0.2, 0.2, 10)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[2], c[2])


def test_a_small_fraction_still_gives_every_class_a_group() -> None:
    labels, snr, groups = _data(n_groups=40, per=1, classes=2)
    train, val, test = split_by_group(labels, snr, groups, 0.01, 0.01, 0)
    for split in (train, val, test):
        assert set(labels[split].tolist()) == {0, 1}


def test_a_class_with_too_few_groups_goes_to_train_with_a_warning(caplog) -> None:
    labels = np.array([0] * 30 + [1, 1, 1, 1])
    groups = np.concatenate([np.arange(30), [100, 100, 101, 101]])  # class 1: two groups
    snr = np.zeros(labels.size)
    with caplog.at_level(logging.WARNING, logger="fedsb.data.groups"):
        train, val, test = split_by_group(
            labels, snr, groups, 0.2, 0.2, 0, class_names=("bpsk", "qpsk")
        )
    assert set(np.flatnonzero(labels == 1)) <= set(train.tolist())
    assert 0 in labels[val] and 0 in labels[test]
    assert (
        "class qpsk has only 2 group(s) of records that must stay together, fewer than the 3 "
        "splits; all of it goes to train" in caplog.text
    )


def test_no_val_or_test_asked_gives_everything_to_train() -> None:
    labels, snr, groups = _data(n_groups=20)
    train, val, test = split_by_group(labels, snr, groups, 0.0, 0.0, 0)
    assert train.tolist() == list(range(labels.size)) and val.size == test.size == 0


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (1.0, 0.0, "val_fraction: must be in [0, 1), got 1.0"),
        (0.1, -0.1, "test_fraction: must be in [0, 1), got -0.1"),
        (0.5, 0.5, "val_fraction + test_fraction: must be below 1 (train needs records), got 1"),
    ],
)
def test_bad_fractions_are_config_errors(val: float, test: float, message: str) -> None:
    labels, snr, groups = _data(n_groups=10)
    with pytest.raises(ConfigError, match=r"\A" + re.escape(message) + r"\Z"):
        split_by_group(labels, snr, groups, val, test, 0)


def _cap_reference(labels, groups, max_records, max_per_class, seed) -> list[int]:
    """The cap rule written out plainly: visit groups in the seeded order, take what fits."""
    ids = np.unique(groups)
    order = np.random.default_rng(seed).permutation(ids.size)
    total, per_class, taken = 0, {}, []
    for g in ids[order]:
        members = np.flatnonzero(groups == g)
        counts = {int(c): int((labels[members] == c).sum()) for c in np.unique(labels[members])}
        if max_records and total + members.size > max_records:
            continue
        if max_per_class and any(
            per_class.get(c, 0) + n > max_per_class for c, n in counts.items()
        ):
            continue
        taken.extend(members.tolist())
        total += members.size
        for c, n in counts.items():
            per_class[c] = per_class.get(c, 0) + n
        if max_records and total >= max_records:
            break
    return sorted(taken)


@pytest.mark.parametrize("per", [1, 3])
@pytest.mark.parametrize(("max_records", "max_per_class"), [(50, 0), (0, 12), (40, 15)])
def test_caps_match_the_plain_rule(per: int, max_records: int, max_per_class: int) -> None:
    labels, _, groups = _data(n_groups=120, per=per)
    got = cap_groups(labels, groups, max_records, max_per_class, seed=3)
    assert got.tolist() == _cap_reference(labels, groups, max_records, max_per_class, 3)
    if max_records:
        assert got.size <= max_records
    if max_per_class:
        assert np.bincount(labels[got]).max() <= max_per_class


def test_caps_never_divide_a_group_with_several_classes() -> None:
    labels = np.array([0, 1, 0, 1, 0, 0])
    groups = np.array([5, 5, 6, 6, 7, 8])
    got = cap_groups(labels, groups, 0, 1, seed=0)
    assert all(set(np.flatnonzero(groups == g)) <= set(got.tolist()) for g in set(groups[got]))
    assert np.bincount(labels[got], minlength=2).max() <= 1


def _files(name: str, labels: list[int], classes=("bpsk", "qpsk")) -> FileRecords:
    n = len(labels)
    iq = np.full((n, 4), hash(name) % 97, dtype=np.complex64)
    records = RecordSet(iq, np.asarray(labels, np.int64), classes, {"snr_db": np.zeros(n)})
    return FileRecords(records, np.arange(n), {"file": np.full(n, name, dtype=object)})


def test_separate_val_and_test_files_are_used_as_they_are() -> None:
    train = _files("t.npz", [0, 1] * 10)
    val = _files("v.npz", [0, 1, 1])
    test = _files("x.npz", [0], classes=("qpsk",))  # its own class list: re-indexed onto train's
    splits = assign_to_splits(train, val, test)
    assert splits.train.tolist() == list(range(20))
    assert splits.val.tolist() == [20, 21, 22] and splits.test.tolist() == [23]
    r = splits.records.records
    assert r.class_names == ("bpsk", "qpsk") and r.labels[23] == 1
    assert len(set(splits.records.groups.tolist())) == 24  # no group shared across files


def test_a_missing_split_is_drawn_from_train_by_group() -> None:
    train = _files("t.npz", [0, 1] * 20)
    test = _files("x.npz", [0, 1])
    splits = assign_to_splits(train, test=test, val_fraction=0.25, seed=1)
    assert splits.test.tolist() == [40, 41]
    assert splits.val.size == 10 and not set(splits.val) & set(splits.train)
    assert set(splits.val.tolist()) | set(splits.train.tolist()) == set(range(40))


def test_a_file_in_two_splits_or_a_class_train_lacks_is_an_error() -> None:
    train = _files("t.npz", [0, 1] * 5)
    with pytest.raises(DataError, match=r"\At.npz: is in both the train and the test files"):
        assign_to_splits(train, test=_files("t.npz", [0]))
    odd = _files("v.npz", [0, 1], classes=("bpsk", "gfsk"))
    with pytest.raises(DataError, match=r"\Av.npz: val records of class 'gfsk', which no training"):
        assign_to_splits(train, val=odd)
    with pytest.raises(
        ConfigError, match=r"\Aval_fraction: val files are given; drop the fraction"
    ):
        assign_to_splits(train, val=_files("v.npz", [0]), val_fraction=0.1)


def test_split_sizes_follow_records_not_groups() -> None:
    """Big and small groups: the fractions are of records."""
    labels = np.zeros(400, dtype=np.int64)
    groups = np.concatenate([np.repeat(np.arange(20), 10), np.arange(100, 300)])
    train, val, test = split_by_group(labels, np.zeros(400), groups, 0.25, 0.25, 0)
    assert math.isclose(val.size / 400, 0.25, abs_tol=0.03)
    assert math.isclose(test.size / 400, 0.25, abs_tol=0.03)


def test_strata_split_each_value_on_its_own() -> None:
    """Two files of very different sizes: each gets its own 50/25/25 split."""
    labels = np.zeros(240, dtype=np.int64)
    files = np.array(["big"] * 200 + ["small"] * 40, dtype=object)
    groups = np.arange(240) // 2
    train, val, test = split_by_group(labels, np.zeros(240), groups, 0.25, 0.25, 0, strata=files)
    for name, n in (("big", 200), ("small", 40)):
        mine = files == name
        assert mine[val].sum() == n // 4 and mine[test].sum() == n // 4, name
