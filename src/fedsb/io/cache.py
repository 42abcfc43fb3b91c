"""Exact, atomic .npz cache of a RecordSet, plus the atomic-write helpers the writers share.

The cache is the fast path between commands (generate once, train many times), so it stores
everything a RecordSet holds and reads back bit-identical arrays. Writes go to a temporary file
in the target directory and are renamed over the target only when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import DataError
from ..signals.recordset import RecordSet

#: Bumped when the layout changes; readers refuse newer versions.
CACHE_VERSION = 1
_META_PREFIX = "meta__"
_REQUIRED = ("iq", "labels", "class_names")


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


def _read_members(path: Path) -> dict[str, np.ndarray]:
    """Every array in the archive, reading eagerly so corruption surfaces here."""
    if not path.is_file():
        raise DataError(path, "file not found" if not path.exists() else "not a file")
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(path, f"not a readable .npz cache ({problem})") from exc


def load_npz(path: str | Path) -> RecordSet:
    """Read a cache written by :func:`save_npz`; anything malformed raises DataError."""
    path = Path(path)
    members = _read_members(path)
    missing = [name for name in _REQUIRED if name not in members]
    if missing:
        raise DataError(path, f"not a fedsb cache: missing array {missing[0]!r}")
    version = int(members.get("format_version", np.asarray(CACHE_VERSION)))
    if version > CACHE_VERSION:
        raise DataError(path, f"cache format {version} is newer than this fedsb ({CACHE_VERSION})")
    iq, labels = members["iq"], members["labels"]
    if not np.iscomplexobj(iq):
        raise DataError(path, f"iq must be complex, got {iq.dtype}")
    if labels.dtype.kind not in "iu":
        raise DataError(path, f"labels must be integers, got {labels.dtype}")
    info: Any = {}
    if "info" in members:
        try:
            info = json.loads(str(members["info"]))
        except json.JSONDecodeError as exc:
            raise DataError(path, f"info is not valid JSON ({exc.msg})") from exc
    meta = {k[len(_META_PREFIX) :]: v for k, v in members.items() if k.startswith(_META_PREFIX)}
    try:
        return RecordSet(
            iq=iq.astype(np.complex64, copy=False),
            labels=labels.astype(np.int64, copy=False),
            class_names=tuple(str(name) for name in members["class_names"].reshape(-1)),
            meta=meta,
            sample_rate=float(members.get("sample_rate", 1.0)),
            info=info if isinstance(info, dict) else {"info": info},
        )
    except ValueError as exc:
        raise DataError(path, f"inconsistent cache: {exc}") from exc
