"""RML2016 pickles through the restricted unpickler: genuine files load, payloads never run."""

from __future__ import annotations

import os
import pathlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from fedsb.io.radioml import read_rml2016
from fedsb.io.safe_pickle import MAX_DEPTH


def _py2_str(raw: bytes) -> bytes:
    """A Python 2 ``str`` (SHORT_BINSTRING / BINSTRING); loads as latin-1 text."""
    if len(raw) < 256:
        return b"U" + bytes([len(raw)]) + raw
    return b"T" + struct.pack("<i", len(raw)) + raw


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def py2_pickle(entries: dict[tuple[str, int], np.ndarray]) -> bytes:
    """Protocol 2 as Python 2.7 + numpy 1.x wrote RML2016: ``numpy.core`` globals, py2 strs."""
    out = [b"\x80\x02}("]
    for (mod, snr), arr in entries.items():
        arr = np.ascontiguousarray(arr, dtype="<f4")
        out += [_py2_str(mod.encode()), _int(snr), b"\x86"]
        out += [b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy\nndarray\n"]
        out += [b"K\x00\x85", _py2_str(b"b"), b"\x87R", b"(K\x01"]
        out += [b"(" + b"".join(_int(n) for n in arr.shape) + b"t"]
        out += [b"cnumpy\ndtype\n", _py2_str(b"f4"), b"K\x00K\x01\x87R"]
        out += [b"(K\x03", _py2_str(b"<"), b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"]
        out += [b"\x89", _py2_str(arr.tobytes()), b"tb"]
    return b"".join([*out, b"u."])


def _source() -> dict[tuple[str, int], np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        ("QPSK", 2): rng.standard_normal((3, 2, 128)).astype(np.float32),
        ("BPSK", -4): rng.standard_normal((2, 2, 128)).astype(np.float32),
    }


def _assert_matches(records, source: dict) -> None:
    """Every entry's records equal I + jQ of the source array, with its SNR."""
    assert len(records) == sum(len(a) for a in source.values())
    for (mod, snr), arr in source.items():
        mask = (records.label_names == mod.lower()) & (records.snr_db == snr)
        assert np.array_equal(records.iq[mask], arr[:, 0] + 1j * arr[:, 1])


def test_python2_style_pickle_loads_exactly(tmp_path: Path) -> None:
    path = tmp_path / "RML2016.10a_dict.pkl"
    path.write_bytes(py2_pickle(_source()))
    with open(path, "rb") as handle:  # the builder is right: stock pickle reads the same
        stock = pickle.load(handle, encoding="latin1")
    assert all(np.array_equal(stock[k], v) for k, v in _source().items())
    _assert_matches(read_rml2016(path), _source())


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickles_of_every_protocol_load_exactly(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / f"p{protocol}.pkl"
    path.write_bytes(pickle.dumps(_source(), protocol=protocol))
    _assert_matches(read_rml2016(path), _source())


def test_big_endian_arrays_numpy_scalar_keys_and_float64(tmp_path: Path) -> None:
    source = {("QPSK", 2): _source()[("QPSK", 2)]}
    data = {
        ("QPSK", np.int64(2)): source[("QPSK", 2)].astype(">f4"),
        ("BPSK", np.int16(-4)): _source()[("BPSK", -4)].astype(np.float64),
    }
    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    records = read_rml2016(path)
    _assert_matches(records, {**source, ("BPSK", -4): _source()[("BPSK", -4)]})


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Touch:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize(
    ("payload", "global_name"),
    [
        (_System, f"{os.system.__module__}.system"),
        (_Touch, "pathlib.Path.touch|__builtin__.getattr"),  # protocol 2 spells it getattr
    ],
)
def test_a_payload_never_runs_and_the_error_names_its_global(
    tmp_path: Path, data_error, protocol: int, payload, global_name: str
) -> None:
    marker = tmp_path / "RAN"
    path = tmp_path / "evil.pkl"
    arr = np.zeros((1, 2, 8), np.float32)
    path.write_bytes(pickle.dumps({("BPSK", 0): arr, ("QPSK", 0): payload(marker)}, protocol))
    problem = (
        rf"refused to load: the pickle wants to call ({global_name}), which a RadioML 2016 file "
        r"never holds \(fedsb never runs code from a data file\)"
    )
    with data_error(path, problem):
        read_rml2016(path)
    assert not marker.exists()


def test_eval_and_builtins_are_refused_too(tmp_path: Path, data_error) -> None:
    class Eval:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    path = tmp_path / "eval.pkl"
    path.write_bytes(pickle.dumps(Eval(), protocol=4))
    with data_error(path, r"refused to load: the pickle wants to call builtins\.eval"):
        read_rml2016(path)


def test_object_arrays_are_refused(tmp_path: Path, data_error) -> None:
    arr = np.empty((1, 2, 2), dtype=object)
    arr[...] = "x"
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps({("BPSK", 0): arr}, protocol=2))
    with data_error(path, r"refused to load: the pickle holds an array of dtype 'O8'"):
        read_rml2016(path)


def _claims(opcode: bytes, nbytes: int) -> bytes:
    return b"\x80\x05" + opcode + struct.pack("<Q", nbytes) + b"abc"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (_claims(b"\x8e", 2**40), r"an item claims 1099511627776 bytes but only 3 remain"),
        (_claims(b"\x96", 2**40), r"an item claims 1099511627776 bytes but only 3 remain"),
        (_claims(b"\x95", 2**40), r"a frame claims 1099511627776 bytes but the file is 14"),
        (b"\x80\x02}r" + struct.pack("<I", 2**32 - 1) + b".", "memo index out of order"),
        (b"\x80\x02K\x01t.", "no mark"),
    ],
)
def test_claims_the_file_cannot_back_are_refused_before_allocating(
    tmp_path: Path, data_error, data: bytes, problem: str
) -> None:
    path = tmp_path / "claims.pkl"
    path.write_bytes(data)
    with data_error(path, r"not a readable pickle \(" + problem):
        read_rml2016(path)


def test_an_array_claiming_more_than_its_data_is_unreadable(tmp_path: Path, data_error) -> None:
    good = pickle.dumps({("BPSK", 0): np.zeros((1, 2, 4), np.float32)}, protocol=2)
    shape = b"K\x01K\x02K\x04\x87"
    assert good.count(shape) == 1
    path = tmp_path / "shape.pkl"
    path.write_bytes(good.replace(shape, b"\x8a\x06" + (10**12).to_bytes(6, "little") + shape[2:]))
    with data_error(
        path, r"not a readable pickle \(array claims 32000000000000 bytes but holds 32"
    ):
        read_rml2016(path)


def test_nesting_is_bounded(tmp_path: Path, data_error) -> None:
    """Stock pickle hashes nested tuple keys recursively: 10^6 levels segfault it."""
    path = tmp_path / "deep.pkl"
    path.write_bytes(b"\x80\x02}K\x01" + b"\x85" * (MAX_DEPTH + 1) + b"K\x02s.")
    with data_error(path, f"refused to load: the pickle nests objects deeper than {MAX_DEPTH}"):
        read_rml2016(path)
    path.write_bytes(b"\x80\x02}K\x01" + b"\x85" * (MAX_DEPTH - 1) + b"K\x02s.")
    with data_error(path, r"not a RadioML 2016 pickle: key \(\(\(\("):
        read_rml2016(path)


def test_long_flat_lists_are_not_mistaken_for_nesting(tmp_path: Path, data_error) -> None:
    path = tmp_path / "flat.pkl"
    path.write_bytes(b"\x80\x02]" + b"K\x01a" * (10 * MAX_DEPTH) + b".")
    with data_error(path, "not a RadioML 2016 pickle: expected a dict .*got list"):
        read_rml2016(path)


def test_empty_and_over_budget_files(tmp_path: Path, data_error, budget) -> None:
    path = tmp_path / "empty.pkl"
    path.write_bytes(b"")
    with data_error(path, r"not a readable pickle \(the file is empty\)"):
        read_rml2016(path)
    path.write_bytes(pickle.dumps(_source(), protocol=2))
    budget("1k")
    with data_error(path, r"the pickle is \d+\.\d kB, over the 1\.0 kB input budget"):
        read_rml2016(path)
