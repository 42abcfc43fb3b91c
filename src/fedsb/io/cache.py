"""Exact, atomic .npz cache of a RecordSet, plus the atomic-write helpers the writers share.

The cache is the fast path between commands (generate once, train many times), so it stores
everything a RecordSet holds and reads back bit-identical arrays. Writes go to a temporary file
in the target directory and are renamed over the target only when complete.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
from numpy.lib import format as npformat

from ..errors import DataError
from ..signals.recordset import RecordSet
from .budget import check_budget, count_text

#: Bumped when the layout changes; readers refuse newer versions.
CACHE_VERSION = 1
_META_PREFIX = "meta__"
_REQUIRED = ("iq", "labels", "class_names")
_NPY_HEADERS = {
    (1, 0): npformat.read_array_header_1_0,
    (2, 0): npformat.read_array_header_2_0,
    (3, 0): npformat.read_array_header_2_0,  # 3.0 only adds utf-8 field names
}
_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, RecursionError)


def temp_path(target: Path, suffix: str) -> Path:
    """A fresh hidden file next to ``target``: same directory, so the final rename is atomic.

    Created with ``open(..., "xb")`` rather than mkstemp so the result gets the user's umask
    permissions, not mkstemp's private 0600.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix}")
            try:
                with open(tmp, "xb"):
                    return tmp
            except FileExistsError:
                continue
    except OSError as exc:
        raise DataError(target, f"cannot write here: {exc.strerror or exc}") from exc
    raise DataError(target, "cannot create a temporary file next to it")


def discard(*paths: Path) -> None:
    """Remove temporary files, ignoring ones that are already gone."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_file(target: Path, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """Open a temporary file for writing; on success it replaces ``target``, else it is removed."""
    tmp = temp_path(target, suffix)
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        discard(tmp)
        raise DataError(target, f"cannot write: {exc.strerror or exc}") from exc
    except BaseException:
        discard(tmp)
        raise


def _info_json(records: RecordSet, path: Path) -> str:
    try:
        return json.dumps(dict(records.info))
    except (TypeError, ValueError) as exc:
        raise DataError(path, f"info is not JSON-serialisable: {exc}") from exc


def save_npz(records: RecordSet, path: str | Path) -> Path:
    """Write ``records`` to ``path`` (.npz, uncompressed: IQ noise does not compress)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "format_version": np.asarray(CACHE_VERSION, dtype=np.int64),
        "iq": np.ascontiguousarray(records.iq),
        "labels": np.asarray(records.labels),
        "class_names": np.asarray(records.class_names, dtype=np.str_).reshape(-1),
        "sample_rate": np.asarray(records.sample_rate, dtype=np.float64),
        "info": np.asarray(_info_json(records, path)),
    }
    for key, value in records.meta.items():
        if value.dtype.hasobject:
            raise DataError(path, f"meta {key!r} has dtype object, which the cache cannot store")
        arrays[_META_PREFIX + key] = value
    with atomic_file(path) as handle:
        np.savez(handle, **arrays)
    return path


def _npy_header(stream: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the start of a .npy stream; reads only the header."""
    version = npformat.read_magic(stream)
    if version not in _NPY_HEADERS:
        raise ValueError(f"unsupported .npy format version {version}")
    shape, _, dtype = _NPY_HEADERS[version](stream)
    return shape, dtype


def _check_claims(path: Path, archive: zipfile.ZipFile) -> None:
    """Every member's header and claimed size, before anything is read.

    No member that is not a plain .npy array (no pickled objects), none claiming more bytes than
    it holds, and nothing over the input budget.
    """
    total = 0
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if not info.filename.endswith(".npy"):
            raise DataError(path, f"array {info.filename!r} is not a .npy array")
        check_budget(path, info.file_size, f"array {name!r}", "its unpacked size")
        with archive.open(info) as stream:
            shape, dtype = _npy_header(stream)
        if dtype.hasobject:
            raise DataError(path, f"array {name!r} holds Python objects (refused: not plain data)")
        count = math.prod(shape)
        claimed = count * dtype.itemsize
        check_budget(path, claimed, f"array {name!r}", f"{count_text(count)} {dtype} values")
        if claimed > info.file_size:
            raise DataError(path, f"array {name!r} claims {claimed:,} bytes in {info.file_size:,}")
        total += claimed
    check_budget(path, total, "its arrays together", verb="claim")


def read_npz_members(
    path: str | Path, required: Sequence[str] = (), kind: str = ".npz file"
) -> dict[str, np.ndarray]:
    """Every array of an .npz, each member's claimed size checked before it is loaded.

    Object (pickled) arrays are refused. Errors read "not a readable <kind> (...)" and, for a
    name in ``required`` that is absent, "not a <kind>: missing array 'x'". Reading is eager,
    so corruption surfaces here with the file's name.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found" if not path.exists() else "not a file")
    try:
        with open(path, "rb") as handle:
            with zipfile.ZipFile(handle) as archive:
                _check_claims(path, archive)
            handle.seek(0)
            with np.load(handle, allow_pickle=False) as npz:
                members = {name: npz[name] for name in npz.files}
    except _NPZ_ERRORS as exc:
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(path, f"not a readable {kind} ({problem})") from exc
    missing = [name for name in required if name not in members]
    if missing:
        raise DataError(path, f"not a {kind}: missing array {missing[0]!r}")
    return members


def _version(members: dict[str, np.ndarray], path: Path) -> int:
    value = members.get("format_version", np.asarray(CACHE_VERSION))
    if value.shape != () or value.dtype.kind not in "iu":
        raise DataError(
            path, f"format_version must be one integer, got {value.dtype} of shape {value.shape}"
        )
    version = int(value)
    if version < 1:
        raise DataError(path, f"format_version {version} is not a cache format")
    if version > CACHE_VERSION:
        raise DataError(path, f"cache format {version} is newer than this fedsb ({CACHE_VERSION})")
    return version


def _class_names(members: dict[str, np.ndarray], path: Path) -> tuple[str, ...]:
    array = members["class_names"]
    if array.dtype.kind != "U":
        raise DataError(path, f"class_names must be strings, got {array.dtype}")
    names = tuple(str(name) for name in array.reshape(-1))
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(path, f"class_names holds the duplicate name {name!r}")
        seen.add(name)
    return names


def _labels(members: dict[str, np.ndarray], classes: int, path: Path) -> np.ndarray:
    labels = members["labels"]
    if labels.dtype.kind not in "iu":
        raise DataError(path, f"labels must be integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise DataError(path, f"label {bad} is out of range for {classes} class names")
    return labels.astype(np.int64, copy=False)


def _sample_rate(members: dict[str, np.ndarray], path: Path) -> float:
    value = members.get("sample_rate", np.asarray(1.0))
    if value.shape != () or value.dtype.kind not in "iuf" or not 0 < float(value) < math.inf:
        shown = value if value.shape == () else f"{value.dtype} of shape {value.shape}"
        raise DataError(path, f"sample_rate must be one positive number, got {shown}")
    return float(value)


def _info(members: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    if "info" not in members:
        return {}
    value = members["info"]
    if value.shape != () or value.dtype.kind != "U":
        raise DataError(path, f"info must be one JSON string, got {value.dtype}")
    try:
        info = json.loads(str(value))
    except RecursionError:
        raise DataError(path, "info is JSON nested too deeply to read") from None
    except ValueError as exc:
        problem = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise DataError(path, f"info is not valid JSON ({problem})") from exc
    return info if isinstance(info, dict) else {"info": info}


def load_npz(path: str | Path) -> RecordSet:
    """Read a cache written by :func:`save_npz`; anything malformed raises DataError."""
    path = Path(path)
    members = read_npz_members(path, kind=".npz cache")
    missing = [name for name in _REQUIRED if name not in members]
    if missing:
        raise DataError(path, f"not a fedsb cache: missing array {missing[0]!r}")
    _version(members, path)
    iq = members["iq"]
    if not np.iscomplexobj(iq):
        raise DataError(path, f"iq must be complex, got {iq.dtype}")
    class_names = _class_names(members, path)
    labels = _labels(members, len(class_names), path)
    meta = {k[len(_META_PREFIX) :]: v for k, v in members.items() if k.startswith(_META_PREFIX)}
    try:
        return RecordSet(
            iq=iq.astype(np.complex64, copy=False),
            labels=labels,
            class_names=class_names,
            meta=meta,
            sample_rate=_sample_rate(members, path),
            info=_info(members, path),
        )
    except ValueError as exc:
        raise DataError(path, f"inconsistent cache: {exc}") from exc
