"""Hostile and broken input files for the bad-input corpus, each made by a small function.

Every factory takes the corpus directory and returns the path it wrote. Nothing is downloaded
and nothing large is held in memory: the bombs are streamed (zeros compress to almost nothing).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from fedsb.io.cache import save_npz
from fedsb.signals.recordset import RecordSet

L = 32  # record length of the small files (the CLI is called with --length 32 for SigMF)
FACTORIES: dict[str, Callable[[Path], Path]] = {}


def factory(name: str):
    """Register ``fn`` as the maker of corpus file ``name``."""

    def register(fn: Callable[[Path], Path]) -> Callable[[Path], Path]:
        FACTORIES[name] = fn
        return fn

    return register


def records(n: int = 6, length: int = L, classes: tuple[str, ...] = ("bpsk", "qpsk")) -> RecordSet:
    rng = np.random.default_rng(5)
    iq = (rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length))).astype(
        np.complex64
    )
    labels = (np.arange(n) % len(classes)).astype(np.int64)
    return RecordSet(iq, labels, classes, {"snr_db": np.linspace(-5, 15, n)}, 1.0, {})


def _npz(path: Path, **members: np.ndarray) -> Path:
    """An npz with exactly ``members`` (a valid cache unless a member says otherwise)."""
    good = records()
    arrays = {
        "format_version": np.asarray(1),
        "iq": good.iq,
        "labels": good.labels,
        "class_names": np.asarray(good.class_names),
        "sample_rate": np.asarray(1.0),
        "info": np.asarray("{}"),
        "meta__snr_db": good.meta["snr_db"],
    }
    arrays.update(members)
    with open(path, "wb") as handle:
        np.savez(handle, **{k: v for k, v in arrays.items() if v is not None})
    return path


class _Zeros(io.RawIOBase):
    """``n`` zero bytes as a readable stream (a bomb's payload, never held in memory)."""

    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        k = min(len(buffer), self.left)
        buffer[:k] = bytes(k)
        self.left -= k
        return k


# ------------------------------------------------------------------------------------- npz
@factory("garbage.npz")
def _(d: Path) -> Path:
    (d / "garbage.npz").write_bytes(b"definitely not a zip archive")
    return d / "garbage.npz"


@factory("empty.npz")
def _(d: Path) -> Path:
    (d / "empty.npz").write_bytes(b"")
    return d / "empty.npz"


@factory("truncated.npz")
def _(d: Path) -> Path:
    path = save_npz(records(n=40, length=64), d / "truncated.npz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@factory("weights.npz")
def _(d: Path) -> Path:
    np.savez(d / "weights.npz", weights=np.ones(3))
    return d / "weights.npz"


@factory("object.npz")
def _(d: Path) -> Path:
    return _npz(d / "object.npz", iq=np.array([object()], dtype=object))


@factory("bomb.npz")
def _(d: Path) -> Path:
    """A member whose .npy header claims 10^12 complex64 samples (the file is tiny)."""
    path = d / "bomb.npz"
    _npz(path, iq=None)
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        header, {"descr": "<c8", "fortran_order": False, "shape": (10**6, 10**6)}
    )
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("iq.npy", b"\x93NUMPY\x02\x00" + header.getvalue()[8:] + bytes(64))
    return path


@factory("version-string.npz")
def _(d: Path) -> Path:
    return _npz(d / "version-string.npz", format_version=np.asarray("one"))


@factory("version-matrix.npz")
def _(d: Path) -> Path:
    return _npz(d / "version-matrix.npz", format_version=np.ones((2, 2)))


@factory("version-future.npz")
def _(d: Path) -> Path:
    return _npz(d / "version-future.npz", format_version=np.asarray(99))


@factory("duplicate-classes.npz")
def _(d: Path) -> Path:
    return _npz(d / "duplicate-classes.npz", class_names=np.asarray(["bpsk", "bpsk"]))


@factory("labels-out-of-range.npz")
def _(d: Path) -> Path:
    return _npz(d / "labels-out-of-range.npz", labels=np.full(6, 7, np.int64))


@factory("labels-float.npz")
def _(d: Path) -> Path:
    return _npz(d / "labels-float.npz", labels=np.zeros(6))


@factory("iq-real.npz")
def _(d: Path) -> Path:
    return _npz(d / "iq-real.npz", iq=np.zeros((6, L), np.float32))


@factory("iq-3d.npz")
def _(d: Path) -> Path:
    return _npz(d / "iq-3d.npz", iq=np.zeros((6, 2, L), np.complex64))


@factory("iq-nan.npz")
def _(d: Path) -> Path:
    iq = records().iq.copy()
    iq[2, 3] = np.nan
    return _npz(d / "iq-nan.npz", iq=iq)


@factory("no-records.npz")
def _(d: Path) -> Path:
    return _npz(
        d / "no-records.npz",
        iq=np.zeros((0, L), np.complex64),
        labels=np.zeros(0, np.int64),
        meta__snr_db=np.zeros(0),
    )


@factory("zero-length.npz")
def _(d: Path) -> Path:
    return _npz(d / "zero-length.npz", iq=np.zeros((6, 0), np.complex64))


@factory("labels-short.npz")
def _(d: Path) -> Path:
    return _npz(d / "labels-short.npz", labels=np.zeros(2, np.int64))


@factory("meta-short.npz")
def _(d: Path) -> Path:
    return _npz(d / "meta-short.npz", meta__snr_db=np.zeros(2))


@factory("info-bad-json.npz")
def _(d: Path) -> Path:
    return _npz(d / "info-bad-json.npz", info=np.asarray("{not json"))


@factory("info-deep-json.npz")
def _(d: Path) -> Path:
    return _npz(d / "info-deep-json.npz", info=np.asarray("[" * 100_000 + "]" * 100_000))


@factory("class-names-int.npz")
def _(d: Path) -> Path:
    return _npz(d / "class-names-int.npz", class_names=np.asarray([3, 4]))


@factory("sample-rate-negative.npz")
def _(d: Path) -> Path:
    return _npz(d / "sample-rate-negative.npz", sample_rate=np.asarray(-5.0))


@factory("sample-rate-nan.npz")
def _(d: Path) -> Path:
    return _npz(d / "sample-rate-nan.npz", sample_rate=np.asarray(np.nan))


@factory("sample-rate-vector.npz")
def _(d: Path) -> Path:
    return _npz(d / "sample-rate-vector.npz", sample_rate=np.ones(3))


@factory("[bold]marked.npz")
def _(d: Path) -> Path:
    (d / "[bold]marked.npz").write_bytes(b"not a zip")
    return d / "[bold]marked.npz"


@factory("folder.npz")
def _(d: Path) -> Path:
    (d / "folder.npz").mkdir()
    return d / "folder.npz"


# ------------------------------------------------------------------------------- RadioML 2016
class _Payload:
    """Unpickling this would run ``touch <marker>``: the restricted reader must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalPayload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


def _pickle(path: Path, obj, protocol: int = 2) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def marker_of(path: Path) -> Path:
    """The file a malicious pickle would create if it ran."""
    return path.with_name(path.name + ".RAN")


@factory("malicious.pkl")
def _(d: Path) -> Path:
    path = d / "malicious.pkl"
    return _pickle(path, {("bpsk", 0): _Payload(marker_of(path))})


@factory("malicious-eval.pkl")
def _(d: Path) -> Path:
    path = d / "malicious-eval.pkl"
    return _pickle(path, _EvalPayload(marker_of(path)), protocol=4)


@factory("malicious.dat")
def _(d: Path) -> Path:
    path = d / "malicious.dat"
    return _pickle(path, [_Payload(marker_of(path))], protocol=5)


@factory("list.pkl")
def _(d: Path) -> Path:
    return _pickle(d / "list.pkl", [1, 2, 3])


@factory("garbage.pkl")
def _(d: Path) -> Path:
    (d / "garbage.pkl").write_bytes(b"\x80\x02garbage that is no pickle")
    return d / "garbage.pkl"


@factory("empty.pkl")
def _(d: Path) -> Path:
    (d / "empty.pkl").write_bytes(b"")
    return d / "empty.pkl"


@factory("empty-dict.pkl")
def _(d: Path) -> Path:
    return _pickle(d / "empty-dict.pkl", {})


@factory("bad-key.pkl")
def _(d: Path) -> Path:
    return _pickle(d / "bad-key.pkl", {"BPSK": np.zeros((1, 2, 8), np.float32)})


@factory("bad-shape.pkl")
def _(d: Path) -> Path:
    return _pickle(d / "bad-shape.pkl", {("BPSK", 0): np.zeros((1, 8), np.float32)})


@factory("lengths-differ.pkl")
def _(d: Path) -> Path:
    data = {("BPSK", 0): np.zeros((2, 2, 8), np.float32), ("QPSK", 0): np.ones((2, 2, 16))}
    return _pickle(d / "lengths-differ.pkl", data)


@factory("unknown-label.pkl")
def _(d: Path) -> Path:
    return _pickle(d / "unknown-label.pkl", {("WARP9", 0): np.ones((2, 2, 8), np.float32)})


@factory("object-array.pkl")
def _(d: Path) -> Path:
    arr = np.empty((1, 2, 2), dtype=object)
    arr[...] = "x"
    return _pickle(d / "object-array.pkl", {("BPSK", 0): arr})


@factory("nan.pkl")
def _(d: Path) -> Path:
    arr = np.ones((2, 2, 8), np.float32)
    arr[1, 0, 3] = np.nan
    return _pickle(d / "nan.pkl", {("BPSK", 0): arr})


@factory("string-values.pkl")
def _(d: Path) -> Path:
    return _pickle(d / "string-values.pkl", {("BPSK", 0): "not an array"})


# ------------------------------------------------------------------------------- RadioML 2018
def _h5(path: Path, n: int = 24, length: int = L, **override) -> Path:
    y = np.zeros((n, 24), np.int64)
    y[np.arange(n), np.arange(n) % 24] = 1
    fields = {
        "X": np.ones((n, length, 2), np.float32),
        "Y": y,
        "Z": np.zeros((n, 1), np.int64),
        **override,
    }
    with h5py.File(path, "w") as handle:
        for key, value in fields.items():
            if value is not None:
                handle[key] = value
    return path


@factory("garbage.h5")
def _(d: Path) -> Path:
    (d / "garbage.h5").write_text(json.dumps({"X": 1}))
    return d / "garbage.h5"


@factory("empty.hdf5")
def _(d: Path) -> Path:
    (d / "empty.hdf5").write_bytes(b"")
    return d / "empty.hdf5"


@factory("no-xyz.h5")
def _(d: Path) -> Path:
    return _h5(d / "no-xyz.h5", Y=None, Z=None)


@factory("wrong-shapes.h5")
def _(d: Path) -> Path:
    return _h5(d / "wrong-shapes.h5", Y=np.eye(24, 10))


@factory("not-one-hot.h5")
def _(d: Path) -> Path:
    return _h5(d / "not-one-hot.h5", Y=np.zeros((24, 24), np.int64))


@factory("string-x.h5")
def _(d: Path) -> Path:
    path = d / "string-x.h5"
    _h5(path, X=None)
    with h5py.File(path, "a") as handle:
        strings = handle.create_dataset("X", (24, L, 2), dtype=h5py.string_dtype())
        strings[0, 0, 0] = "boom"
    return path


@factory("vlen-y.h5")
def _(d: Path) -> Path:
    path = d / "vlen-y.h5"
    _h5(path, Y=None)
    with h5py.File(path, "a") as handle:
        handle.create_dataset("Y", (24, 24), dtype=h5py.vlen_dtype(np.int32))
    return path


@factory("group-x.h5")
def _(d: Path) -> Path:
    path = d / "group-x.h5"
    _h5(path, X=None)
    with h5py.File(path, "a") as handle:
        handle.create_group("X")
    return path


@factory("nan.h5")
def _(d: Path) -> Path:
    x = np.ones((24, L, 2), np.float32)
    x[4, 5, 0] = np.inf
    return _h5(d / "nan.h5", X=x)


@factory("z-short.h5")
def _(d: Path) -> Path:
    return _h5(d / "z-short.h5", Z=np.zeros((3, 1)))


@factory("bomb.h5")
def _(d: Path) -> Path:
    """Declares 10^7 records of 1024 samples (80 GB), stored as a few kB of compressed chunks."""
    path = d / "bomb.h5"
    n = 10**7
    with h5py.File(path, "w") as handle:
        handle.create_dataset("X", (n, 1024, 2), np.float32, chunks=(1024, 1024, 2), compression=4)
        handle.create_dataset("Y", (n, 24), np.int64, chunks=(4096, 24), compression=4)
        handle.create_dataset("Z", (n, 1), np.int64, chunks=(4096, 1), compression=4)
    return path


# ------------------------------------------------------------------------------------ SigMF
def _signal(n: int) -> np.ndarray:
    return np.exp(1j * np.arange(n) / 5).astype(np.complex64)


def ann(start: int, count: int | None, label: str = "bpsk") -> dict:
    out = {"core:sample_start": start, "core:label": label}
    return out if count is None else {**out, "core:sample_count": count}


def sigmf(
    path: Path,
    data: bytes | np.ndarray | None = None,
    annotations: list | None = None,
    meta_text: str | None = None,
    **glob_fields,
) -> Path:
    """A hand-made ``.sigmf-meta`` + ``.sigmf-data`` pair (``path`` is the meta file)."""
    data = _signal(4 * L) if data is None else data
    raw = data.tobytes() if isinstance(data, np.ndarray) else data
    path.with_suffix(".sigmf-data").write_bytes(raw)
    glob = {"core:datatype": "cf32_le", "core:version": "1.2.6", **glob_fields}
    meta = {
        "global": {k: v for k, v in glob.items() if v is not None},
        "captures": [{"core:sample_start": 0}],
        "annotations": [ann(0, 4 * L)] if annotations is None else annotations,
    }
    path.write_text(meta_text if meta_text is not None else json.dumps(meta))
    return path


SIGMF_CASES: dict[str, dict] = {
    "invalid-json": {"meta_text": '{"global": {"core:datatype": "cf32_le",,}'},
    "meta-list": {"meta_text": "[1, 2, 3]"},
    "no-global": {"meta_text": json.dumps({"annotations": []})},
    "no-datatype": {"core:datatype": None},
    "odd-datatype": {"core:datatype": "cq99"},
    "rate-string": {"core:sample_rate": "fast"},
    "rate-negative": {"core:sample_rate": -1.0},
    "channels-zero": {"core:num_channels": 0},
    "no-labels": {"annotations": [{"core:sample_start": 0, "core:comment": "x"}]},
    "past-end": {"annotations": [ann(0, 2 * L), ann(3 * L, 4 * L)]},
    "negative-start": {"annotations": [ann(-5, L)]},
    "string-count": {"annotations": [{**ann(0, None), "core:sample_count": "lots"}]},
    "annotations-dict": {
        "meta_text": json.dumps({"global": {"core:datatype": "cf32_le"}, "annotations": {"a": 1}})
    },
    "unknown-label": {"annotations": [ann(0, L, "qpsk"), ann(L, L, "Mystery-9")]},
    "overlap": {"annotations": [ann(0, 3 * L, "bpsk"), ann(2 * L, 2 * L, "qpsk")]},
    "deep-json": {"meta_text": '{"global": ' + "[" * 100_000 + "]" * 100_000 + "}"},
    "dtypes-range": {
        "annotations": [{**ann(0, L), "fedsb:power": 1e6}],
        "fedsb:meta_dtypes": {"power": "int8"},
    },
    "dtypes-object": {
        "annotations": [{**ann(0, L), "fedsb:power": 3}],
        "fedsb:meta_dtypes": {"power": "object"},
    },
    "dtypes-number": {
        "annotations": [{**ann(0, L), "fedsb:power": 3}],
        "fedsb:meta_dtypes": {"power": 17},
    },
    "class-names-string": {"fedsb:class_names": "bpsk"},
    "markup-label": {"annotations": [ann(0, L, "[/x]bpsk")]},
    "emoji-label": {"annotations": [ann(0, L, ":thumbs_up:")]},
    "data-truncated": {"data": _signal(4 * L).tobytes() + b"\x01\x02\x03"},
    "data-empty": {"data": b"", "annotations": [ann(0, None)]},
}


def _sigmf_factory(name: str, spec: dict) -> None:
    @factory(f"{name}.sigmf-meta")
    def make(d: Path) -> Path:
        return sigmf(d / f"{name}.sigmf-meta", **spec)


for _name, _spec in SIGMF_CASES.items():
    _sigmf_factory(_name, _spec)


@factory("not-utf8.sigmf-meta")
def _(d: Path) -> Path:
    path = sigmf(d / "not-utf8.sigmf-meta")
    path.write_bytes(b"\xff\xfe\x00garbage")
    return path


@factory("no-data.sigmf-meta")
def _(d: Path) -> Path:
    path = sigmf(d / "no-data.sigmf-meta")
    path.with_suffix(".sigmf-data").unlink()
    return path


@factory("orphan.sigmf-data")
def _(d: Path) -> Path:
    path = d / "orphan.sigmf-data"
    path.write_bytes(_signal(L).tobytes())
    return path


@factory("checksum.sigmf-meta")
def _(d: Path) -> Path:
    return sigmf(d / "checksum.sigmf-meta", **{"core:sha512": "00" * 64})


@factory("no-recordings")
def _(d: Path) -> Path:
    (d / "no-recordings").mkdir()
    (d / "no-recordings" / "notes.txt").write_text("nothing here")
    return d / "no-recordings"


@factory("mixed-rates")
def _(d: Path) -> Path:
    (d / "mixed-rates").mkdir()
    sigmf(d / "mixed-rates" / "a.sigmf-meta", **{"core:sample_rate": 1e6})
    sigmf(d / "mixed-rates" / "b.sigmf-meta", **{"core:sample_rate": 2e6})
    return d / "mixed-rates"


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | io.RawIOBase | None]], mode="w"):
    with tarfile.open(path, mode) as archive:
        for info, payload in members:
            if isinstance(payload, bytes):
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
            else:
                archive.addfile(info, payload)
    return path


def _recording_members(prefix: str, data_size: int | None = None):
    """(meta, data) tar members of a valid recording under ``prefix/``."""
    meta = json.dumps(
        {
            "global": {"core:datatype": "cf32_le", "core:version": "1.2.6"},
            "captures": [{"core:sample_start": 0}],
            "annotations": [ann(0, L)],
        }
    ).encode()
    data_info = tarfile.TarInfo(f"{prefix}.sigmf-data")
    if data_size is None:
        data: bytes | io.RawIOBase = _signal(L).tobytes()
    else:
        data_info.size = data_size
        data = io.BufferedReader(_Zeros(data_size))
    return [(tarfile.TarInfo(f"{prefix}.sigmf-meta"), meta), (data_info, data)]


@factory("corrupt.sigmf")
def _(d: Path) -> Path:
    (d / "corrupt.sigmf").write_bytes(b"this is not a tar file" * 40)
    return d / "corrupt.sigmf"


@factory("escape.sigmf")
def _(d: Path) -> Path:
    return _tar(d / "escape.sigmf", _recording_members("../../escaped/rec"))


@factory("absolute.sigmf")
def _(d: Path) -> Path:
    return _tar(d / "absolute.sigmf", _recording_members(str(d / "absolute-target" / "rec")))


@factory("symlink.sigmf")
def _(d: Path) -> Path:
    link = tarfile.TarInfo("rec/rec.sigmf-data")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    meta = _recording_members("rec/rec")[0]
    return _tar(d / "symlink.sigmf", [meta, (link, None)])


@factory("hardlink.sigmf")
def _(d: Path) -> Path:
    link = tarfile.TarInfo("rec/rec.sigmf-data")
    link.type, link.linkname = tarfile.LNKTYPE, "/etc/passwd"
    meta = _recording_members("rec/rec")[0]
    return _tar(d / "hardlink.sigmf", [meta, (link, None)])


@factory("empty.sigmf")
def _(d: Path) -> Path:
    return _tar(d / "empty.sigmf", [])


@factory("bomb.sigmf.gz")
def _(d: Path) -> Path:
    """256 MB of samples in a gzip-compressed archive of well under a megabyte."""
    return _tar(d / "bomb.sigmf.gz", _recording_members("rec/rec", 256 * 2**20), mode="w:gz")
