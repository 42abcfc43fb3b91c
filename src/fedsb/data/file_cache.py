"""The cache entry of a set of the user's files: its images on disk and what splits need.

An entry is two files named by the key (``file_sets``: data config, file sizes and times,
record length, classes): ``images-files-<key>.npy``, the uint8 images memory-mapped by
:mod:`.image_store`, and ``images-files-<key>.npz``, every record's label, SNR (and other
meta columns), group and attributes, the class list and the sizes of the training,
validation and test parts. With both, a second run splits and trains without opening the
source files. Each is written atomically, the images first; a damaged entry is rebuilt.
Attributes (text) are stored as a JSON list of values and integer codes, never as pickles.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io.cache import atomic_file, read_npz_members
from ..signals.recordset import RecordSet
from .files import FileRecords
from .image_store import ImageStore, open_store

log = logging.getLogger(__name__)

#: Bumped when the layout changes: an entry of another version is rebuilt.
VERSION = 1


@dataclass(frozen=True)
class Entry:
    """A cached set: the joined records (no samples), its parts' sizes and its images."""

    records: FileRecords
    parts: tuple[tuple[int, dict[str, int]] | None, ...]  # (size, dropped) of train, val, test
    store: ImageStore


def entry_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    """(images, index) files of the entry ``key``."""
    stem = Path(cache_dir) / f"images-files-{key}"
    return stem.with_suffix(".npy"), stem.with_suffix(".npz")


def cacheable(records: FileRecords) -> bool:
    """Whether the index can hold ``records``: numeric meta columns only (no pickles)."""
    return all(v.dtype.kind in "biuf" for v in records.records.meta.values())


def save_index(path: Path, records: FileRecords, parts: tuple, key: str) -> None:
    """Write the index of ``records`` (joined parts of the given sizes) to ``path``."""
    r = records.records
    arrays = {"labels": r.labels, "groups": records.groups}
    attrs = []
    for i, (name, values) in enumerate(records.attrs.items()):
        unique, codes = np.unique(values.astype(object), return_inverse=True)
        arrays[f"attr{i}"] = codes.ravel().astype(np.int32)
        attrs.append([name, [str(u) for u in unique]])
    for i, values in enumerate(r.meta.values()):
        arrays[f"meta{i}"] = values
    header = {
        "version": VERSION,
        "key": key,
        "class_names": list(r.class_names),
        "sample_rate": float(r.sample_rate),
        "info": dict(r.info),
        "dropped": records.dropped,
        "meta": list(r.meta),
        "attrs": attrs,
        "parts": [None if p is None else [p[0], p[1]] for p in parts],
    }
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with atomic_file(path, ".npz") as handle:
        np.savez(handle, **arrays)


def _columns(members: dict, prefix: str, names: list, n: int) -> list[np.ndarray]:
    out = [members[f"{prefix}{i}"] for i in range(len(names))]
    if any(v.shape != (n,) for v in out):
        raise ValueError(f"a {prefix} column is not one value per record")
    return out


def _records(members: dict[str, np.ndarray], header: dict) -> FileRecords:
    """The joined FileRecords of an index (``records.iq`` of shape (N, 0): no samples)."""
    labels, groups = members["labels"], members["groups"]
    n = labels.shape[0]
    meta = dict(zip(header["meta"], _columns(members, "meta", header["meta"], n)))
    attrs = {}
    for (name, values), codes in zip(
        header["attrs"], _columns(members, "attr", header["attrs"], n)
    ):
        attrs[name] = np.asarray(values, dtype=object)[codes]  # IndexError if out of range
    records = RecordSet(
        np.zeros((n, 0), np.complex64),
        labels,
        tuple(header["class_names"]),
        meta,
        float(header["sample_rate"]),
        header["info"],
    )
    return FileRecords(records, groups.astype(np.int64), attrs, dict(header["dropped"]))


def load_entry(cache_dir: Path, key: str) -> Entry | None:
    """The entry ``key``, or None: absent, or damaged (with a warning; it is rebuilt)."""
    images, index = entry_paths(cache_dir, key)
    if not (images.is_file() and index.is_file()):
        return None
    try:
        members = read_npz_members(index, ("header", "labels", "groups"), "file cache index")
        header = json.loads(members["header"].tobytes().decode())
        if header.get("version") != VERSION or header.get("key") != key:
            raise ValueError("written for another key or version")
        records = _records(members, header)
        parts = tuple(None if p is None else (int(p[0]), dict(p[1])) for p in header["parts"])
        if len(parts) != 3 or sum(p[0] for p in parts if p) != len(records):
            raise ValueError("part sizes do not add up to the records")
        store = open_store(images)
        if len(store) != len(records):
            raise ValueError(f"{len(store)} images for {len(records)} records")
    except (DataError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        log.warning("%s: damaged file cache (%s); building it again", index, exc)
        return None
    return Entry(records, parts, store)


__all__ = ["VERSION", "Entry", "cacheable", "entry_paths", "load_entry", "save_index"]
