"""RecordSet: validation, subset, concat, re-indexing against another class list."""

from __future__ import annotations

import numpy as np
import pytest

from fedsb.signals.recordset import RecordSet

CLASSES = ("bpsk", "qpsk", "16qam")


def _set(n: int = 6, length: int = 8, seed: int = 0, **meta) -> RecordSet:
    rng = np.random.default_rng(seed)
    iq = rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length))
    labels = np.arange(n, dtype=np.int64) % len(CLASSES)
    meta = meta or {"snr_db": np.linspace(-10, 10, n), "sps": np.full(n, 4.0)}
    return RecordSet(iq.astype(np.complex64), labels, CLASSES, meta, 2e6, {"source": "test"})


def test_a_valid_set_and_its_properties():
    rs = _set()
    assert len(rs) == 6 and rs.length == 8 and rs.sample_rate == 2e6
    assert rs.counts().tolist() == [2, 2, 2] and rs.counts().dtype == np.int64
    assert rs.label_names.tolist() == ["bpsk", "qpsk", "16qam"] * 2
    np.testing.assert_array_equal(rs.snr_db, np.linspace(-10, 10, 6))
    no_snr = RecordSet(rs.iq, rs.labels, ["bpsk", "qpsk", "16qam"])
    assert isinstance(no_snr.class_names, tuple)  # a list is stored as a tuple
    assert np.all(np.isnan(no_snr.snr_db)) and no_snr.snr_db.shape == (6,)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"iq": np.zeros((6, 8), np.complex128)}, "complex64"),
        ({"iq": np.zeros((6, 8), np.float32)}, "complex64"),
        ({"iq": np.zeros(48, np.complex64)}, r"\(N, L\)"),
        ({"iq": np.zeros((2, 6, 4), np.complex64)}, r"\(N, L\)"),
        ({"labels": np.zeros(5, np.int64)}, "labels must be"),
        ({"labels": np.zeros((6, 1), np.int64)}, "labels must be"),
        ({"labels": np.zeros(6, np.int32)}, "int64"),
        ({"labels": np.array([0, 1, 2, 3, 0, 1], np.int64)}, "out of range"),
        ({"labels": np.array([0, -1, 2, 0, 0, 1], np.int64)}, "out of range"),
        ({"meta": {"snr_db": np.zeros(5)}}, "snr_db"),
        ({"meta": {"sps": np.zeros((6, 2))}}, "sps"),
    ],
)
def test_invalid_sets_are_value_errors(change, message):
    rs = _set()
    args = {"iq": rs.iq, "labels": rs.labels, "class_names": CLASSES, "meta": dict(rs.meta)}
    args.update(change)
    with pytest.raises(ValueError, match=message):
        RecordSet(**args)


def test_empty_set_is_valid():
    rs = RecordSet(np.zeros((0, 16), np.complex64), np.zeros(0, np.int64), CLASSES)
    assert len(rs) == 0 and rs.counts().tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    "index", [slice(1, 4), np.array([5, 0, 3]), np.array([True, False, True, False, False, True])]
)
def test_subset_takes_the_same_rows_of_everything(index):
    rs = _set()
    sub = rs.subset(index)
    rows = np.arange(6)[index]
    np.testing.assert_array_equal(sub.iq, rs.iq[rows])
    np.testing.assert_array_equal(sub.labels, rs.labels[rows])
    for key in rs.meta:
        np.testing.assert_array_equal(sub.meta[key], rs.meta[key][rows])
    assert sub.class_names == CLASSES and sub.sample_rate == rs.sample_rate
    assert sub.info == rs.info


def test_concat_stacks_records_and_meta():
    a, b = _set(4, seed=1), _set(3, seed=2)
    both = RecordSet.concat([a, b])
    assert len(both) == 7
    np.testing.assert_array_equal(both.iq, np.concatenate([a.iq, b.iq]))
    np.testing.assert_array_equal(both.labels, np.r_[a.labels, b.labels])
    np.testing.assert_array_equal(both.meta["snr_db"], np.r_[a.meta["snr_db"], b.meta["snr_db"]])
    assert RecordSet.concat([a]).iq.shape == a.iq.shape


def test_concat_rejects_mismatched_sets():
    a = _set(4)
    with pytest.raises(ValueError, match="nothing"):
        RecordSet.concat([])
    with pytest.raises(ValueError, match="lengths"):
        RecordSet.concat([a, _set(4, length=9)])
    other = RecordSet(a.iq, a.labels, ("bpsk", "qpsk", "8psk"), a.meta)
    with pytest.raises(ValueError, match="classes"):
        RecordSet.concat([a, other])
    with pytest.raises(ValueError, match="metadata"):
        RecordSet.concat([a, _set(4, snr_db=np.zeros(4))])


def test_with_classes_reindexes_labels_by_name():
    rs = _set()
    target = ("16qam", "8psk", "bpsk", "qpsk")
    moved = rs.with_classes(target)
    assert moved.class_names == target
    np.testing.assert_array_equal(moved.label_names, rs.label_names)  # same names per record
    np.testing.assert_array_equal(moved.labels, [2, 3, 0, 2, 3, 0])
    np.testing.assert_array_equal(moved.iq, rs.iq)
    assert moved.counts().tolist() == [2, 0, 2, 2]


def test_with_classes_names_a_missing_class():
    with pytest.raises(ValueError, match="'16qam'"):
        _set().with_classes(["bpsk", "qpsk"])
