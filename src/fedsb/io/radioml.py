"""Readers for the DeepSig RadioML datasets, the public benchmarks fedsb evaluates against.

RML2016.10a/b is a Python-2 pickle (small, read whole); RML2018.01a is an HDF5 file of about
20 GB, so it is read in chunks and callers can select part of it.
"""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import DataError
from ..signals.recordset import RecordSet
from .budget import check_budget, count_text
from .labels import RML2018_NAMES, canonical_label, order_classes, rml2018_names
from .safe_pickle import PickleRefused, load_radioml_pickle

log = logging.getLogger(__name__)

#: Records per HDF5 read: 64 Ki x 1024 x 2 float32 = 512 MiB at most in flight.
CHUNK = 65536
#: Short reprs for keys in messages (a hostile key can be huge or deeply nested).
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(path, "file not found")
    if not path.is_file():
        raise DataError(path, "not a file")


def _rml2016_entries(obj: Any, path: Path) -> list[tuple[str, float, np.ndarray]]:
    """(modulation, snr, (n, 2, L) array) per dict entry, validated."""
    if not isinstance(obj, dict) or not obj:
        kind = "an empty dict" if isinstance(obj, dict) else type(obj).__name__
        raise DataError(
            path,
            f"not a RadioML 2016 pickle: expected a dict keyed by (modulation, snr), got {kind}",
        )
    entries = []
    for key, value in obj.items():
        mod, snr = key if isinstance(key, tuple) and len(key) == 2 else (None, None)
        numeric = isinstance(snr, int | float | np.number) and not isinstance(snr, bool)
        if not isinstance(mod, str | bytes) or not numeric:
            raise DataError(
                path, f"not a RadioML 2016 pickle: key {_SHORT.repr(key)} is not (mod, snr)"
            )
        arr = np.asarray(value)
        if arr.ndim != 3 or arr.shape[1] != 2 or arr.dtype.kind not in "fiu":
            raise DataError(
                path,
                f"not a RadioML 2016 pickle: entry {_SHORT.repr(key)} has shape "
                f"{arr.shape} {arr.dtype}, expected (N, 2, L) floats",
            )
        name = mod.decode("latin1") if isinstance(mod, bytes) else mod
        entries.append((name, float(snr), arr))
    lengths = {arr.shape[2] for _, _, arr in entries}
    if len(lengths) > 1:
        raise DataError(path, f"entries have different record lengths {sorted(lengths)}")
    return sorted(entries, key=lambda e: (e[0], e[1]))


def read_rml2016(path: str | Path, skip_unknown: bool = False) -> RecordSet:
    """Read RML2016.10a (``RML2016.10a_dict.pkl``) or 10b (``RML2016.10b.dat``).

    The file is a pickle: ``dict[(mod, snr)] -> float32 [N, 2, 128]`` (I and Q rows). It is
    read by :mod:`.safe_pickle`, which rebuilds only numpy arrays and plain values and refuses
    any other global, so a hostile file cannot run code. Class names are those present in the
    file, in KNOWN_CLASSES order; records dropped by ``skip_unknown`` are counted in
    ``info["dropped"]``.
    """
    path = Path(path)
    _check_file(path)
    size = path.stat().st_size
    if size == 0:
        raise DataError(path, "not a readable pickle (the file is empty)")
    check_budget(path, size, "the pickle", verb="is")
    try:
        obj = load_radioml_pickle(path)
    except PickleRefused as exc:  # its own message, never folded into "unreadable"
        raise DataError(path, f"refused to load: {exc}") from None
    except Exception as exc:  # unpickling can raise anything; this is the whole boundary
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(path, f"not a readable pickle ({problem})") from exc
    entries = _rml2016_entries(obj, path)
    kept, dropped = [], {}
    for mod, snr, arr in entries:
        name = canonical_label(mod)
        if name is None and not skip_unknown:
            raise DataError(path, f"unknown label {mod!r}; pass --skip-unknown to drop it")
        if name is None:
            log.warning("%s: dropped %d records of unknown class %r", path, len(arr), mod)
            dropped[mod] = dropped.get(mod, 0) + len(arr)
        else:
            kept.append((name, snr, arr))
    if not kept:
        raise DataError(path, "no records left after dropping unknown labels")
    class_names = order_classes({name for name, _, _ in kept})
    counts = [len(arr) for _, _, arr in kept]
    iq = np.empty((sum(counts), kept[0][2].shape[2]), dtype=np.complex64)
    start = 0
    for _, _, arr in kept:  # one block copy per (mod, snr) entry
        iq.real[start : start + len(arr)] = arr[:, 0]
        iq.imag[start : start + len(arr)] = arr[:, 1]
        start += len(arr)
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.repeat(np.asarray([index[n] for n, _, _ in kept], dtype=np.int64), counts)
    snr_db = np.repeat(np.asarray([s for _, s, _ in kept], dtype=np.float64), counts)
    info: dict[str, Any] = {"format": "rml2016", "source": str(path)}
    if dropped:
        info["dropped"] = dropped  # records of unknown labels, by label as written
    return RecordSet(iq, labels, class_names, {"snr_db": snr_db}, 1.0, info)


def _selection(
    n: int, max_records: int | None, index: Sequence[int] | np.ndarray | None, path: Path
) -> np.ndarray | None:
    """Record indices to read (None = the first ``max_records`` or all, read as slices)."""
    if max_records is not None and max_records < 0:
        raise DataError(path, f"max_records must be >= 0, got {max_records}")
    if index is None:
        return None
    idx = np.asarray(index)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise DataError(path, "index must be a 1-D sequence of integers")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise DataError(path, f"index out of range: the file has {n} records")
    return idx[:max_records] if max_records is not None else idx


def _plain_dataset(handle: h5py.File, key: str, path: Path) -> h5py.Dataset | None:
    """Dataset ``key`` if it is stored in this file as plain numbers; None if absent."""
    link = handle.get(key, getlink=True)
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        raise DataError(path, f"{key!r} is a link, not a dataset stored in this file")
    dataset = handle.get(key)
    if not isinstance(dataset, h5py.Dataset):
        return None
    if dataset.dtype.kind not in "biuf" or dataset.dtype.names or dataset.dtype.subdtype:
        raise DataError(path, f"dataset {key!r} has dtype {dataset.dtype}, not plain numbers")
    if dataset.external or dataset.is_virtual:
        raise DataError(path, f"dataset {key!r} is stored in other files (external or virtual)")
    return dataset


def _rml2018_datasets(handle: h5py.File, path: Path) -> tuple[h5py.Dataset, ...]:
    """X, Y, Z: present, plain numbers and of consistent shapes."""
    found = {k: _plain_dataset(handle, k, path) for k in ("X", "Y", "Z")}
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise DataError(path, f"not a RadioML 2018 file: no dataset(s) {', '.join(missing)}")
    xs, ys, zs = found["X"], found["Y"], found["Z"]
    n = xs.shape[0] if xs.ndim == 3 else -1
    if (
        xs.ndim != 3
        or xs.shape[2] != 2
        or ys.shape != (n, len(RML2018_NAMES))
        or zs.shape[0] != n
        or zs.size != n
    ):
        raise DataError(
            path,
            f"not a RadioML 2018 file: X {xs.shape}, Y {ys.shape}, Z "
            f"{zs.shape}; expected (N, L, 2), (N, 24), (N, 1)",
        )
    return xs, ys, zs


def _rows(
    n: int, length: int, max_records: int | None, index: Any, path: Path
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorted unique rows to read and the inverse restoring the order asked for (or None).

    Returned only once the selection's size is known to fit the input budget.
    """
    idx = _selection(n, max_records, index, path)
    wanted = (n if max_records is None else min(n, max_records)) if idx is None else idx.size
    count = wanted * length
    check_budget(path, count * 8, "the selection", f"{count_text(count)} complex64 samples")
    if idx is None:
        return np.arange(wanted), None
    if bool(np.all(idx[1:] > idx[:-1])):  # already increasing: no reordering copy
        return idx, None
    return np.unique(idx, return_inverse=True)  # h5py wants increasing unique indices


def _rml2018_block(
    handle: h5py.File, rows: np.ndarray, path: Path, out: tuple[np.ndarray, ...]
) -> None:
    """Read sorted unique ``rows`` into ``out`` (IQ, one-hot column, SNR views of their size).

    (n, L, 2) floats -> complex64; the caller's arrays are filled in place, so a selection
    costs its own size plus one chunk, not twice its size.
    """
    contiguous = rows[-1] - rows[0] + 1 == len(rows)
    sel = slice(int(rows[0]), int(rows[-1]) + 1) if contiguous else rows
    x, y, z = handle["X"][sel], handle["Y"][sel], handle["Z"][sel]
    hot = y > 0
    bad = np.flatnonzero(hot.sum(axis=1) != 1)
    if bad.size:
        raise DataError(path, f"Y row {int(rows[bad[0]])} is not one-hot")
    iq, cols, snr = out
    iq.real, iq.imag = x[..., 0], x[..., 1]
    cols[:] = np.argmax(hot, axis=1)
    snr[:] = np.asarray(z, dtype=np.float64).reshape(-1)


def read_rml2018(
    path: str | Path,
    max_records: int | None = None,
    index: Sequence[int] | np.ndarray | None = None,
    order: str = "corrected",
) -> RecordSet:
    """Read RML2018.01a (``GOLD_XYZ_OSC.0001_1024.hdf5``), optionally only part of it.

    ``X`` [N, 1024, 2] float32, ``Y`` one-hot [N, 24] in the "fixed" class order, ``Z`` [N, 1]
    SNR. ``max_records`` keeps the first records (of ``index``, if given); ``index`` selects
    records by position (any order, repeats allowed). The file is read in chunks, so only the
    selection is ever in memory, and its size is checked against the input budget before any
    read (a small file can declare millions of records). X, Y and Z must be plain numbers
    stored in this file (no links, external or virtual storage). The class list is all 24
    classes, in KNOWN_CLASSES order. ``order`` names the one-hot columns: "corrected" (the
    order that matches the GOLD file, the default) or "classes-txt" (the published list).
    """
    path = Path(path)
    column_names = rml2018_names(order)
    with _open_hdf5(path) as handle:
        xs, ys, zs = _rml2018_datasets(handle, path)
        n, length = xs.shape[0], xs.shape[1]
        rows, inverse = _rows(n, length, max_records, index, path)
        iq = np.empty((len(rows), length), np.complex64)
        cols, snr = np.empty(len(rows), np.int64), np.empty(len(rows), np.float64)
        try:
            for a in range(0, len(rows), CHUNK):
                views = (iq[a : a + CHUNK], cols[a : a + CHUNK], snr[a : a + CHUNK])
                _rml2018_block(handle, rows[a : a + CHUNK], path, views)
        except (OSError, ValueError) as exc:  # a corrupt chunk, a filter this h5py lacks
            raise DataError(path, f"cannot read the data ({' '.join(str(exc).split())})") from exc
    if inverse is not None:
        iq, cols, snr = iq[inverse.ravel()], cols[inverse.ravel()], snr[inverse.ravel()]
    class_names, remap = _rml2018_classes(column_names)
    info = {"format": "rml2018", "source": str(path), "records_in_file": int(n), "order": order}
    return RecordSet(iq, remap[cols], class_names, {"snr_db": snr}, 1.0, info)


def _open_hdf5(path: Path) -> h5py.File:
    _check_file(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(path, f"not a readable HDF5 file ({' '.join(str(exc).split())})") from exc


def _rml2018_classes(column_names: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """(class list in KNOWN_CLASSES order, one-hot column -> index into it)."""
    names = [canonical_label(name) or name for name in column_names]
    class_names = order_classes(names)
    return class_names, np.asarray([class_names.index(name) for name in names], dtype=np.int64)


@dataclass(frozen=True)
class Rml2018Index:
    """What an RML2018 file holds, without its samples: enough to choose which rows to read."""

    length: int  # samples per record
    labels: np.ndarray  # (N,) int64 into class_names
    snr_db: np.ndarray  # (N,) float64
    class_names: tuple[str, ...]


def read_rml2018_index(path: str | Path, order: str = "corrected") -> Rml2018Index:
    """Labels and SNR of every record of an RML2018 file, read in chunks (X is not read).

    A 20 GB GOLD file has 2.5 M records: their labels take 40 MB, so callers can pick the rows
    they want (classes, caps) and read only those with ``read_rml2018(path, index=...)``.
    """
    path = Path(path)
    column_names = rml2018_names(order)
    with _open_hdf5(path) as handle:
        xs, ys, zs = _rml2018_datasets(handle, path)
        n = xs.shape[0]
        check_budget(path, n * 16, "the labels and SNR", f"{count_text(n)} records")
        cols, snr = np.empty(n, np.int64), np.empty(n, np.float64)
        try:
            for a in range(0, n, CHUNK):
                hot = ys[a : a + CHUNK] > 0
                bad = np.flatnonzero(hot.sum(axis=1) != 1)
                if bad.size:
                    raise DataError(path, f"Y row {a + int(bad[0])} is not one-hot")
                cols[a : a + CHUNK] = np.argmax(hot, axis=1)
                snr[a : a + CHUNK] = np.asarray(zs[a : a + CHUNK], np.float64).reshape(-1)
        except (OSError, ValueError) as exc:
            raise DataError(path, f"cannot read the data ({' '.join(str(exc).split())})") from exc
        length = int(xs.shape[1])
    class_names, remap = _rml2018_classes(column_names)
    return Rml2018Index(length, remap[cols], snr, class_names)
