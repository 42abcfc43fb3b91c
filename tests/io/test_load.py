"""load_records / save_records: dispatch on the path, validation of what was loaded."""

from __future__ import annotations

import numpy as np
import pytest

from fedsb.errors import DataError
from fedsb.io.cache import load_npz
from fedsb.io.load import check_records, load_records, save_records
from fedsb.signals.recordset import RecordSet


@pytest.mark.parametrize("name", ["set.npz", "rec.sigmf-meta", "rec.sigmf"])
def test_save_then_load_round_trips(tmp_path, make_records, same, name: str) -> None:
    records = make_records(n=10, length=64)
    written = save_records(records, tmp_path / name)
    assert written == tmp_path / name
    same(records, load_records(written, length=64))


def test_save_sigmf_data_name_writes_the_pair(tmp_path, make_records, same) -> None:
    records = make_records(n=3, length=64)
    assert save_records(records, tmp_path / "r.sigmf-data") == tmp_path / "r.sigmf-meta"
    same(records, load_records(tmp_path / "r.sigmf-data", length=64))


def test_explicit_format_names_an_unrecognised_extension(tmp_path, make_records, same) -> None:
    records = make_records(n=3, length=16)
    written = save_records(records, tmp_path / "records.bin", format="npz")
    same(records, load_npz(written))


def test_sigmf_length_defaults_to_1024(write_raw_sigmf) -> None:
    data = np.arange(2 * 1024 + 100, dtype=np.float32).astype(np.complex64)
    path = write_raw_sigmf(data, [{"core:sample_start": 0, "core:label": "bpsk"}])
    records = load_records(path)
    assert records.iq.shape == (2, 1024)
    assert np.array_equal(records.iq[1], data[1024:2048])


def test_sigmf_directory_is_loaded(tmp_path, make_records) -> None:
    save_records(make_records(n=2, length=32, seed=1), tmp_path / "d" / "a.sigmf-meta")
    save_records(make_records(n=3, length=32, seed=2), tmp_path / "d" / "b.sigmf")
    assert len(load_records(tmp_path / "d", length=32)) == 5


def test_rml_files_are_dispatched(rml2016_file, rml2018_file) -> None:
    assert load_records(rml2016_file()).info["format"] == "rml2016"
    assert load_records(rml2016_file(name="x.dat"), length=128).info["format"] == "rml2016"
    assert load_records(rml2018_file()).info["format"] == "rml2018"
    assert load_records(rml2018_file(name="x.h5")).info["format"] == "rml2018"


def test_fixed_length_formats_reject_a_different_length(tmp_path, make_records, data_error) -> None:
    path = save_records(make_records(length=16), tmp_path / "s.npz")
    with data_error(path, "records are 16 samples long, not 32"):
        load_records(path, length=32)


def test_check_records_counts_non_finite_records(tmp_path) -> None:
    iq = np.ones((5, 8), np.complex64)
    iq[1, 3] = np.nan
    iq[4, 0] = complex(0, np.inf)
    records = RecordSet(iq, np.zeros(5, np.int64), ("bpsk",))
    with pytest.raises(DataError, match="2 of 5 records contain NaN or Inf samples"):
        check_records(records, tmp_path / "x")
    assert check_records(records.subset([0, 2, 3]), "x") is not None


def test_unknown_output_format_is_an_error(tmp_path, make_records, data_error) -> None:
    with data_error(tmp_path / "out.csv", "cannot tell the output format"):
        save_records(make_records(), tmp_path / "out.csv")
    with data_error(tmp_path / "out.npz", "unknown output format 'csv'"):
        save_records(make_records(), tmp_path / "out.npz", format="csv")


def test_format_contradicting_the_extension_is_refused(tmp_path, make_records, data_error) -> None:
    path = tmp_path / "keep.npz"
    path.write_bytes(b"precious")
    with data_error(path, "the extension means npz but format 'sigmf' was asked"):
        save_records(make_records(), path, format="sigmf")
    assert path.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npz"]
