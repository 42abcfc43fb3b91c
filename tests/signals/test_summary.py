"""Class x SNR-bin counting used by `fedsb data generate` and `inspect`."""

from __future__ import annotations

import numpy as np

from fedsb.signals.recordset import RecordSet
from fedsb.signals.summary import accuracy_by_snr, class_snr_table, snr_bins


def _records(labels, snr):
    n = len(labels)
    return RecordSet(
        np.zeros((n, 8), np.complex64),
        np.asarray(labels, np.int64),
        ("a", "b"),
        {"snr_db": np.asarray(snr, float)},
    )


def test_grid_snrs_get_one_column_each():
    rs = _records([0, 0, 1, 1, 1], [-2, 0, 0, 2, 2])
    table = class_snr_table(rs)
    assert table.bin_labels == ("-2", "0", "2")
    assert table.counts.tolist() == [[1, 1, 0], [0, 1, 2]]


def test_continuous_snrs_use_width_bins_and_count_every_record():
    rng = np.random.default_rng(0)
    snr = rng.uniform(-10, 20, 500)
    labels = rng.integers(0, 2, 500)
    table = class_snr_table(_records(labels, snr), width=5.0)
    assert table.bin_labels[0] == "[-10,-5)" and table.bin_labels[-1] == "[15,20)"
    assert table.counts.sum() == 500
    expected = [np.sum((snr >= lo) & (snr < lo + 5)) for lo in range(-10, 20, 5)]
    assert table.counts.sum(axis=0).tolist() == expected
    assert table.counts.sum(axis=1).tolist() == np.bincount(labels, minlength=2).tolist()


def test_clean_and_unknown_snr_get_their_own_columns():
    table = class_snr_table(_records([0, 1, 1], [np.inf, np.nan, 3.0]))
    assert table.bin_labels == ("3", "clean", "n/a")
    assert table.counts.tolist() == [[0, 1, 0], [1, 0, 1]]


def test_no_finite_snr_gives_no_bins():
    edges, labels = snr_bins(np.array([np.nan, np.inf]))
    assert edges.size == 0 and labels == []


def test_accuracy_by_snr_bins_edges_upward_and_leaves_out_clean_and_unknown():
    """5-dB bins over 17 distinct SNRs: 0 and 5 (inner edges) go up, 20 (the last edge) goes to
    the last bin; +inf (clean) and NaN (unknown) are in no bin."""
    snr = np.array([*np.linspace(0.5, 19.5, 17), 0.0, 5.0, 20.0, np.inf, np.nan])
    correct = np.zeros(len(snr), bool)
    correct[[0, 17, 18, 19, 20, 21]] = True  # 0.5, 0, 5, 20, inf, nan
    out = accuracy_by_snr(correct, snr, width=5.0)
    assert out.labels == ("[0,5)", "[5,10)", "[10,15)", "[15,20)")
    assert out.edges.tolist() == [0.0, 5.0, 10.0, 15.0, 20.0]
    in_bin = [np.sum((snr >= lo) & (snr < lo + 5)) for lo in (0, 5, 10)]
    assert out.counts == (*in_bin, 17 + 3 - sum(in_bin))
    assert out.accuracy[0] == 2 / in_bin[0] and out.accuracy[1] == 1 / in_bin[1]
    assert out.accuracy[2] == 0.0 and out.accuracy[3] == 1 / out.counts[3]


def test_accuracy_by_snr_of_no_finite_snr_is_empty():
    out = accuracy_by_snr(np.ones(2, bool), np.array([np.inf, np.nan]))
    assert out.labels == () and out.counts == () and out.accuracy == ()
