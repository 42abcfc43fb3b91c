"""Deferred loading: labels, groups and attributes now, the same samples later, chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fedsb.data.sources as sources
from fedsb.data.files import FileRecords, load_files
from fedsb.data.samples import Samples

from .test_files import _ann, _gold, _npz, _rml2016, _sigmf, _traced


def _mixed(tmp_path: Path) -> list[Path]:
    return [
        _npz(tmp_path / "a.npz", _traced(5, 64, ("bpsk", "qpsk"))),
        _gold(tmp_path / "g.h5", [3, 4, 5, 3, 4, 5, 3], length=64),
        _rml2016(tmp_path / "b.pkl", ("BPSK", "8PSK"), n=1),
        _sigmf(tmp_path / "c.sigmf-meta", 200, [_ann(0, 200, "bpsk")]),
    ]


def test_a_deferred_set_is_the_loaded_set_without_its_samples(tmp_path: Path) -> None:
    paths = _mixed(tmp_path)
    loaded = load_files(paths, length=32, max_records=20, seed=3)
    deferred = load_files(paths, length=32, max_records=20, seed=3, deferred=True)
    assert deferred.records.iq.shape == (len(loaded), 0) and loaded.samples is None
    np.testing.assert_array_equal(deferred.records.labels, loaded.records.labels)
    np.testing.assert_array_equal(deferred.groups, loaded.groups)
    np.testing.assert_array_equal(deferred.records.snr_db, loaded.records.snr_db)
    assert deferred.attrs.keys() == loaded.attrs.keys()
    for key, values in loaded.attrs.items():
        assert deferred.attrs[key].tolist() == values.tolist()
    everything = np.arange(len(loaded))
    np.testing.assert_array_equal(deferred.read_iq(everything), loaded.records.iq)
    some = np.array([17, 2, 2, 9, 0])
    np.testing.assert_array_equal(deferred.read_iq(some), loaded.records.iq[some])


def test_subset_and_concat_carry_where_the_samples_are(tmp_path: Path) -> None:
    paths = _mixed(tmp_path)
    loaded = load_files(paths, length=32)
    deferred = load_files(paths, length=32, deferred=True)
    parts = [deferred.subset([4, 1]), deferred.subset([12, 0, 5])]
    joined = FileRecords.concat(parts)
    np.testing.assert_array_equal(joined.read_iq(np.arange(5)), loaded.records.iq[[4, 1, 12, 0, 5]])
    with pytest.raises(ValueError, match="cannot concatenate deferred sets with loaded ones"):
        FileRecords.concat([deferred.subset([0]), loaded.subset([0])])


def test_nothing_is_read_from_an_rml2018_file_until_its_samples_are_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gold = _gold(tmp_path / "g.h5", list(range(3, 9)) * 20, length=32)
    asked: list[list[int]] = []
    real = sources.read_rml2018

    def spy(path, *args, index=None, **kwargs):
        asked.append(list(index))
        return real(path, *args, index=index, **kwargs)

    monkeypatch.setattr(sources, "read_rml2018", spy)
    deferred = load_files([gold], length=32, max_per_class=3, seed=1, deferred=True)
    assert asked == [] and deferred.records.counts().tolist() == [3] * 6
    iq = deferred.read_iq(np.arange(len(deferred)))
    chosen = sorted(int(v) for v in iq.real[:, 0])  # X of record i is i
    assert asked == [chosen] and len(chosen) == 18  # only the capped rows, once, in order


def test_samples_read_each_reader_once_in_increasing_row_order() -> None:
    calls: list[tuple[str, list[int]]] = []

    def reader(name: str, offset: float):
        def read(rows):
            calls.append((name, list(rows)))
            return (np.asarray(rows)[:, None] + offset + np.zeros((1, 2))).astype(np.complex64)

        return read

    samples = Samples.concat(
        [Samples.of(reader("a", 0), [5, 1, 3], 2), Samples.of(reader("b", 100), [0, 2], 2)]
    )
    out = samples.read(np.array([4, 0, 2, 3, 1]))
    np.testing.assert_array_equal(out.real[:, 0], [102, 5, 3, 100, 1])
    assert calls == [("a", [1, 3, 5]), ("b", [0, 2])]
    with pytest.raises(ValueError, match="different record lengths"):
        Samples.concat([Samples.of(reader("a", 0), [0], 2), Samples.of(reader("b", 0), [0], 3)])
