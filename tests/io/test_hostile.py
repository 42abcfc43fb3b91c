"""Hostile .npz caches, RadioML 2018 HDF5 files and checkpoints: one-line errors, no allocation.

(The checkpoint cases test ``fedsb.models.checkpoint.load_checkpoint``, hardened with the readers.)
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fedsb.io.cache import load_npz, read_npz_members, save_npz
from fedsb.io.radioml import read_rml2018
from fedsb.models.checkpoint import load_checkpoint, save_checkpoint


# ------------------------------------------------------------------------------------- npz
def _cache(path: Path, make_records, **override) -> Path:
    """A valid cache with some members replaced (None removes one)."""
    save_npz(make_records(n=6, length=8), path)
    with np.load(path) as npz:
        members = {k: npz[k] for k in npz.files}
    members.update(override)
    np.savez(path, **{k: v for k, v in members.items() if v is not None})
    return path


def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        header, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return header.getvalue()


def test_a_member_claiming_terabytes_is_refused_before_loading(
    tmp_path: Path, make_records, data_error, budget
) -> None:
    path = _cache(tmp_path / "bomb.npz", make_records, iq=None)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("iq.npy", _npy_header("<c8", (10**6, 10**6)) + bytes(64))
    budget("12G")
    problem = (
        r"array 'iq' claims 8\.0 TB \(10\^12 complex64 values\), over the 12\.0 GB input "
        r"budget; set FEDSB_INPUT_BUDGET=8T to raise it"
    )
    with data_error(path, problem):
        load_npz(path)


def test_declared_unpacked_size_and_total_count_against_the_budget(
    tmp_path: Path, data_error, budget
) -> None:
    path = tmp_path / "big.npz"
    np.savez_compressed(path, a=np.zeros(4000, np.uint8), b=np.zeros(100, np.uint8))
    budget("2k")
    with data_error(path, r"array 'a' claims 4\.1 kB \(its unpacked size\), over the 2\.0 kB"):
        read_npz_members(path)
    np.savez(path, a=np.zeros(1500, np.uint8), b=np.zeros(1500, np.uint8))
    with data_error(path, r"its arrays together claim 3\.0 kB, over the 2\.0 kB input budget"):
        read_npz_members(path)


def test_read_npz_members_is_exact_and_names_missing_arrays(tmp_path: Path, data_error) -> None:
    path = tmp_path / "predictions.npz"
    logits = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.savez_compressed(path, logits=logits, class_names=np.asarray(["a", "b", "c"]))
    members = read_npz_members(path, required=("logits",), kind="predictions file")
    assert np.array_equal(members["logits"], logits) and members["logits"].dtype == np.float32
    assert members["class_names"].tolist() == ["a", "b", "c"]
    with data_error(path, "not a predictions file: missing array 'labels'"):
        read_npz_members(path, required=("logits", "labels"), kind="predictions file")


def test_a_member_that_is_not_npy_is_refused(tmp_path: Path, data_error) -> None:
    path = tmp_path / "extra.npz"
    np.savez(path, iq=np.zeros(2, np.complex64))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("notes.txt", b"hello")
    with data_error(path, "array 'notes.txt' is not a .npy array"):
        load_npz(path)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (np.asarray("one"), r"format_version must be one integer, got <U3 of shape \(\)"),
        (np.asarray(1.5), r"format_version must be one integer, got float64"),
        (np.ones((2, 2), np.int64), r"format_version must be one integer, .*shape \(2, 2\)"),
        (np.asarray(0), "format_version 0 is not a cache format"),
        (np.asarray(99), r"cache format 99 is newer than this fedsb \(1\)"),
    ],
)
def test_garbage_format_version(tmp_path, make_records, data_error, value, problem) -> None:
    path = _cache(tmp_path / "v.npz", make_records, format_version=value)
    with data_error(path, problem):
        load_npz(path)


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"class_names": np.asarray(["bpsk", "qpsk", "bpsk"])}, "duplicate name 'bpsk'"),
        ({"class_names": np.asarray([3, 4, 5])}, "class_names must be strings, got int64"),
        ({"labels": np.full(6, 7)}, "label 7 is out of range for 3 class names"),
        ({"labels": np.full(6, -1)}, "label -1 is out of range for 3 class names"),
        ({"labels": np.full(6, 2**63, np.uint64)}, "label 9223372036854775808 is out of range"),
        ({"sample_rate": np.asarray(-5.0)}, "sample_rate must be one positive number, got -5.0"),
        ({"sample_rate": np.asarray(np.nan)}, "sample_rate must be one positive number, got nan"),
        ({"sample_rate": np.asarray(np.inf)}, "sample_rate must be one positive number, got inf"),
        ({"sample_rate": np.ones(3)}, r"sample_rate must be one .*float64 of shape \(3,\)"),
        ({"sample_rate": np.asarray("fast")}, "sample_rate must be one positive number"),
        ({"info": np.asarray("[" * 100_000 + "]" * 100_000)}, "info is JSON nested too deeply"),
        ({"info": np.asarray("1" * 5000)}, r"info is not valid JSON \(Exceeds the limit"),
        ({"info": np.asarray(["{}", "{}"])}, "info must be one JSON string"),
    ],
)
def test_bad_cache_members(tmp_path, make_records, data_error, override, problem) -> None:
    path = _cache(tmp_path / "bad.npz", make_records, **override)
    with data_error(path, problem):
        load_npz(path)


# ------------------------------------------------------------------------------- RadioML 2018
def _h5(path: Path, n: int = 4, length: int = 8, **datasets) -> Path:
    y = np.zeros((n, 24), np.int64)
    y[np.arange(n), np.arange(n) % 24] = 1
    fields = {"X": np.ones((n, length, 2), np.float32), "Y": y, "Z": np.zeros((n, 1), np.int64)}
    fields.update(datasets)
    with h5py.File(path, "w") as handle:
        for key, value in fields.items():
            if value is not None:
                handle[key] = value
    return path


@pytest.mark.parametrize(
    ("key", "dtype", "shown"),
    [
        ("X", h5py.string_dtype(), "object"),
        ("Y", h5py.vlen_dtype(np.int32), "object"),
        ("Z", np.dtype("S4"), r"\|S4"),
        ("X", np.dtype([("i", "f4"), ("q", "f4")]), r"\[\('i', '<f4'\), \('q', '<f4'\)\]"),
        ("Z", np.dtype("c8"), "complex64"),
    ],
)
def test_non_numeric_datasets_are_refused_by_name(tmp_path, data_error, key, dtype, shown) -> None:
    path = _h5(tmp_path / "odd.h5", **{key: None})
    shape = {"X": (4, 8, 2), "Y": (4, 24), "Z": (4, 1)}[key]
    with h5py.File(path, "a") as handle:
        handle.create_dataset(key, shape, dtype=dtype)
    with data_error(path, f"dataset '{key}' has dtype {shown}, not plain numbers"):
        read_rml2018(path)


def test_links_and_external_storage_are_refused(tmp_path: Path, data_error) -> None:
    raw = tmp_path / "raw.bin"
    raw.write_bytes(np.ones(4 * 8 * 2, np.float32).tobytes())
    path = _h5(tmp_path / "external.h5", X=None)
    with h5py.File(path, "a") as handle:
        handle.create_dataset("X", (4, 8, 2), np.float32, external=[(str(raw), 0, 256)])
    with data_error(path, r"dataset 'X' is stored in other files \(external or virtual\)"):
        read_rml2018(path)
    path = _h5(tmp_path / "linked.h5", Y=None)
    with h5py.File(path, "a") as handle:
        handle["Y"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/Y")
    with data_error(path, "'Y' is a link, not a dataset stored in this file"):
        read_rml2018(path)


def test_a_file_declaring_millions_of_records_fails_fast_on_the_budget(
    tmp_path: Path, data_error, budget
) -> None:
    path = tmp_path / "fill.h5"
    n = 10**7
    with h5py.File(path, "w") as handle:  # never written: HDF5 stores only the fill value
        handle.create_dataset("X", (n, 1024, 2), np.float32, fillvalue=1.0)
        handle.create_dataset("Y", (n, 24), np.int64, fillvalue=0)
        handle.create_dataset("Z", (n, 1), np.int64, fillvalue=0)
    assert path.stat().st_size < 100_000
    budget("64M")
    problem = (
        r"the selection claims 81\.9 GB \(10,240,000,000 complex64 samples\), over the "
        r"64\.0 MB input budget; set FEDSB_INPUT_BUDGET=82G to raise it"
    )
    with data_error(path, problem):
        read_rml2018(path)
    with data_error(path, r"claims 8\.2 MB \(1,024,000 complex64 samples\)"):
        budget("1M")
        read_rml2018(path, max_records=1000)
    with data_error(path, r"claims 24\.6 kB \(3,072 complex64 samples\)"):
        budget("10k")
        read_rml2018(path, index=[5, 5, 9])


# ------------------------------------------------------------------------------- checkpoints
def test_checkpoint_header_claiming_a_petabyte_is_one_line(tmp_path: Path, data_error) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 10**15) + b'{"__metadata__": {}}')
    with data_error(path, r"not a readable checkpoint \(.*header too large\)"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("fedsb", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "metadata 'fedsb' nests too deeply to read"),
        ("[1, 2]", r"metadata 'fedsb' is not a JSON object \(got list\)"),
        ('"text"', r"metadata 'fedsb' is not a JSON object \(got str\)"),
        ("{oops", r"not a readable checkpoint \(JSONDecodeError\)"),
    ],
)
def test_checkpoint_metadata(tmp_path: Path, data_error, fedsb: str, problem: str) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"fedsb": fedsb})
    with data_error(path, problem):
        load_checkpoint(path)


def test_checkpoint_round_trip_and_budget(tmp_path: Path, data_error, budget) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.arange(3.0)}, {"epoch": 2})
    state, meta = load_checkpoint(path)
    assert torch.equal(state["w"], torch.arange(3.0)) and meta == {"epoch": 2}
    assert json.loads(json.dumps(meta)) == {"epoch": 2}
    budget("100")
    with data_error(path, r"the checkpoint is \d+ B, over the 100 B input budget"):
        load_checkpoint(path)
