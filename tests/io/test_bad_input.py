"""Every bad input is a one-line DataError naming the file and the problem."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from fedsb.io import read_sigmf, write_sigmf
from fedsb.io.cache import save_npz
from fedsb.io.load import load_records

L = 32


def _ann(start: int, count: int | None, label: str = "bpsk") -> dict:
    ann = {"core:sample_start": start, "core:label": label}
    return ann if count is None else {**ann, "core:sample_count": count}


def _signal(n: int) -> np.ndarray:
    return np.exp(1j * np.arange(n) / 5).astype(np.complex64)


@pytest.fixture(autouse=True)
def _no_warnings_escape():
    """sigmf-python warns about several of these conditions; none of that may leak out."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ------------------------------------------------------------------------------ any format
@pytest.mark.parametrize(
    "name", ["gone.npz", "gone.sigmf-meta", "gone.sigmf", "gone.pkl", "gone.h5"]
)
def test_missing_file(tmp_path: Path, data_error, name: str) -> None:
    with data_error(tmp_path / name, "file not found"):
        load_records(tmp_path / name)


def test_missing_file_for_the_sigmf_reader(tmp_path: Path, data_error) -> None:
    with data_error(tmp_path / "gone.sigmf-meta", "file not found"):
        read_sigmf(tmp_path / "gone.sigmf-meta", L)


def test_unknown_extension(tmp_path: Path, data_error) -> None:
    path = tmp_path / "data.csv"
    path.write_text("1,2\n")
    with data_error(path, "unknown file type"):
        load_records(path)


def test_unwritable_target_is_a_data_error(tmp_path: Path, make_records, data_error) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with data_error(blocker / "out.npz", "cannot write here"):
        save_npz(make_records(), blocker / "out.npz")


# ------------------------------------------------------------------------------ SigMF metadata
def test_invalid_json_in_metadata(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(_signal(L), meta_text='{"global": {"core:datatype": "cf32_le",,}')
    with data_error(path, r"invalid JSON in metadata \(.* at line 1 column \d+\)"):
        load_records(path, length=L)


def test_missing_datatype(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(_signal(L), [_ann(0, L)], **{"core:datatype": None})
    with data_error(path, "missing 'core:datatype'"):
        load_records(path, length=L)


def test_unknown_datatype(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(_signal(L), [_ann(0, L)], **{"core:datatype": "cq99"})
    with data_error(path, "unknown core:datatype 'cq99'"):
        load_records(path, length=L)


def test_no_labelled_annotations(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(_signal(L), [{"core:sample_start": 0, "core:comment": "x"}])
    with data_error(path, "no annotations with core:label"):
        load_records(path, length=L)


def test_annotation_past_end_of_data(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(_signal(100), [_ann(0, 64), _ann(150, 50)])
    with data_error(path, "annotation 1 .*ends at sample 200 but the data holds only 100 samples"):
        load_records(path, length=L)


def test_data_file_missing(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(_signal(L), [_ann(0, L)])
    path.with_suffix(".sigmf-data").unlink()
    with data_error(path, "no data file: expected rec.sigmf-data"):
        load_records(path, length=L)


def test_data_file_without_metadata(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(_signal(L), [_ann(0, L)])
    path.unlink()
    data = path.with_suffix(".sigmf-data")
    with data_error(data, "no metadata file rec.sigmf-meta"):
        load_records(data, length=L)


def test_directory_without_recordings(tmp_path: Path, data_error) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with data_error(tmp_path, "no SigMF recordings"):
        load_records(tmp_path, length=L)


def test_corrupt_archive(tmp_path: Path, data_error) -> None:
    path = tmp_path / "broken.sigmf"
    path.write_bytes(b"this is not a tar file" * 40)
    with data_error(path, "cannot read SigMF recording"):
        load_records(path, length=L)


def test_directory_with_different_sample_rates(tmp_path: Path, write_raw_sigmf, data_error) -> None:
    write_raw_sigmf(_signal(L), [_ann(0, L)], name="a", **{"core:sample_rate": 1e6})
    write_raw_sigmf(_signal(L), [_ann(0, L)], name="b", **{"core:sample_rate": 2e6})
    with data_error(tmp_path, "different sample rates"):
        load_records(tmp_path, length=L)


# ------------------------------------------------------------------------------ SigMF data
def test_truncated_data_not_a_whole_sample(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(_signal(L).tobytes() + b"\x00\x01\x02", [_ann(0, L)])
    data = path.with_suffix(".sigmf-data")
    with data_error(data, r"truncated data file: 259 bytes .* cf32_le samples \(8 bytes each\)"):
        load_records(path, length=L)


def test_truncated_data_shorter_than_annotations(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(_signal(4 * L), [_ann(0, 2 * L), _ann(2 * L, 2 * L)])
    data = path.with_suffix(".sigmf-data")
    data.write_bytes(data.read_bytes()[: 3 * L * 8])
    with data_error(path, f"ends at sample {4 * L} but the data holds only {3 * L} samples"):
        load_records(path, length=L)


def test_empty_recording(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(b"", [_ann(0, None)])
    with data_error(path.with_suffix(".sigmf-data"), "empty recording: the data file holds 0"):
        load_records(path, length=L)


def test_no_window_fits(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(_signal(L), [_ann(0, L)])
    with data_error(path, "no records: every labelled span is shorter than 64 samples"):
        load_records(path, length=64)


@pytest.mark.parametrize("bad", [np.nan, np.inf, complex(0, -np.inf)])
def test_non_finite_samples(write_raw_sigmf, data_error, bad: complex) -> None:
    data = _signal(3 * L)
    data[L + 5] = bad
    path = write_raw_sigmf(data, [_ann(0, 3 * L)])
    with data_error(path, "1 of 3 records contain NaN or Inf samples"):
        load_records(path, length=L)


def test_checksum_mismatch(tmp_path: Path, make_records, data_error) -> None:
    path = write_sigmf(make_records(n=2, length=L), tmp_path / "r.sigmf-meta")
    data = path.with_suffix(".sigmf-data")
    raw = bytearray(data.read_bytes())
    raw[0] ^= 0xFF
    data.write_bytes(bytes(raw))
    with data_error(path, "hash does not match"):
        load_records(path, length=L)


# ------------------------------------------------------------------------------ labels
def test_unknown_label_names_it_and_the_option(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(_signal(2 * L), [_ann(0, L, "QPSK"), _ann(L, L, "Mystery-9")])
    with data_error(path, "unknown label 'Mystery-9' in annotation 1; pass --skip-unknown"):
        load_records(path, length=L)
    records = load_records(path, length=L, skip_unknown=True)
    assert records.class_names == ("qpsk",) and len(records) == 1


def test_nothing_left_after_skipping_unknown(write_raw_sigmf, data_error) -> None:
    path = write_raw_sigmf(_signal(2 * L), [_ann(0, L, "foo"), _ann(L, L, "bar")])
    with data_error(path, "no records left after dropping unknown labels"):
        load_records(path, length=L, skip_unknown=True)


# ------------------------------------------------------------------------------ npz cache
def test_corrupt_npz(tmp_path: Path, data_error) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(b"definitely not a zip archive")
    with data_error(path, "not a readable .npz cache"):
        load_records(path)


def test_truncated_npz(tmp_path: Path, make_records, data_error) -> None:
    path = save_npz(make_records(n=50, length=64), tmp_path / "cut.npz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with data_error(path, "not a readable .npz cache"):
        load_records(path)


def test_npz_that_is_not_a_cache(tmp_path: Path, data_error) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3))
    with data_error(path, "not a fedsb cache: missing array 'iq'"):
        load_records(path)


def test_npz_with_pickled_objects_is_refused(tmp_path: Path, data_error) -> None:
    path = tmp_path / "obj.npz"
    np.savez(path, iq=np.array([object()], dtype=object))
    with data_error(path, r"array 'iq' holds Python objects \(refused: not plain data\)"):
        load_records(path)


# ------------------------------------------------------------------------------ RadioML
def test_pickle_that_is_not_a_radioml_dict(tmp_path: Path, data_error) -> None:
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with data_error(path, "not a RadioML 2016 pickle: expected a dict keyed by .*got list"):
        load_records(path)


def test_pickle_with_wrong_keys_or_shapes(tmp_path: Path, data_error) -> None:
    path = tmp_path / "keys.pkl"
    path.write_bytes(pickle.dumps({"BPSK": np.zeros((1, 2, 8), np.float32)}, protocol=2))
    with data_error(path, "key 'BPSK' is not"):
        load_records(path)
    path.write_bytes(pickle.dumps({("BPSK", 0): np.zeros((1, 8), np.float32)}, protocol=2))
    with data_error(path, r"has shape \(1, 8\)"):
        load_records(path)


def test_garbage_pickle(tmp_path: Path, data_error) -> None:
    path = tmp_path / "junk.dat"
    path.write_bytes(b"\x80\x02garbage that is no pickle")
    with data_error(path, "not a readable pickle"):
        load_records(path)


def test_hdf5_without_xyz(tmp_path: Path, data_error) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        handle["X"] = np.zeros((2, 8, 2), np.float32)
    with data_error(path, "not a RadioML 2018 file: no dataset.s. Y, Z"):
        load_records(path)


def test_hdf5_with_wrong_shapes(tmp_path: Path, data_error) -> None:
    path = tmp_path / "shapes.hdf5"
    with h5py.File(path, "w") as handle:
        handle["X"] = np.zeros((2, 8, 2), np.float32)
        handle["Y"] = np.eye(2, 10)
        handle["Z"] = np.zeros((2, 1))
    with data_error(path, r"not a RadioML 2018 file: .*expected \(N, L, 2\), \(N, 24\)"):
        load_records(path)


def test_not_an_hdf5_file(tmp_path: Path, data_error) -> None:
    path = tmp_path / "fake.hdf5"
    path.write_text(json.dumps({"X": 1}))
    with data_error(path, "not a readable HDF5 file"):
        load_records(path)


def test_hdf5_labels_not_one_hot(rml2018_file, data_error) -> None:
    path = rml2018_file()
    with h5py.File(path, "r+") as handle:
        handle["Y"][5, :] = 0
    with data_error(path, "Y row 5 is not one-hot"):
        load_records(path)
