"""Read SigMF recordings into a RecordSet: labelled annotation spans cut into fixed-length records.

SigMF is the interchange format for real captures, so reading is lenient about where a label
comes from but strict about anything that would silently give wrong samples. Writing stores one
annotation per record plus ``fedsb:*`` fields so that ``read_sigmf(write_sigmf(x))`` is exact.

Rules (documented choices):
* Annotations without ``core:label`` are ignored (they are notes, not class spans); a recording
  with no labelled annotation at all is an error, since nothing says what its samples are.
* Multi-channel recordings: channel 0 is used and a warning is logged.
* Real datatypes become complex with a zero imaginary part; integer types are scaled to +-1
  by sigmf-python's autoscale.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tarfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jsonschema.exceptions import ValidationError
from sigmf import sigmffile
from sigmf.error import SigMFError

from ..errors import DataError
from ..signals.recordset import RecordSet
from .labels import canonical_label, order_classes

log = logging.getLogger(__name__)

#: Declared in ``core:extensions`` so validators accept the ``fedsb:`` keys.
EXTENSION: dict[str, Any] = {"name": "fedsb", "version": "1.0.0", "optional": True}
ARCHIVE_SUFFIXES: tuple[str, ...] = (".sigmf", ".sigmf.gz", ".sigmf.xz", ".sigmf.zip")
_DATATYPE = re.compile(r"(c|r)(f32|f64|i32|i16|u32|u16|i8|u8)(_le|_be)?")
_SNR_COMMENT = re.compile(r"snr(?:_db)?\s*[=:]\s*([-+]?(?:inf|nan|[0-9.]+(?:e[-+]?\d+)?))", re.I)
_SIGMF_ERRORS = (
    SigMFError,
    ValidationError,
    json.JSONDecodeError,
    OSError,
    ValueError,
    tarfile.TarError,
    zipfile.BadZipFile,
)


def _one_line(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, ValidationError) else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def is_archive(path: Path) -> bool:
    """True for ``.sigmf`` (and compressed ``.sigmf.*``) archive names."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass
class _Part:
    """Windows cut from one recording, before class names are unified across recordings."""

    iq: np.ndarray
    names: np.ndarray  # (n,) object: class name per window
    meta: dict[str, np.ndarray]
    declared: tuple[str, ...] | None
    sample_rate: float
    stored_info: Any
    unknown: int  # labelled spans dropped as unknown


def _bad_count(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or value < 0


def _check_meta(meta: Any, path: Path) -> dict[str, Any]:
    """The checks sigmf-python leaves to warnings or to chance; returns the global object."""
    glob = meta.get("global") if isinstance(meta, dict) else None
    if not isinstance(glob, dict):
        raise DataError(path, "metadata has no 'global' object")
    datatype = glob.get("core:datatype")
    if datatype is None:
        raise DataError(path, "missing 'core:datatype' in the global object")
    if not isinstance(datatype, str) or not _DATATYPE.fullmatch(datatype):
        raise DataError(path, f"unknown core:datatype {datatype!r} (expected e.g. cf32_le)")
    if _bad_count(glob.get("core:num_channels", 1)) or glob.get("core:num_channels") == 0:
        raise DataError(path, f"invalid core:num_channels {glob.get('core:num_channels')!r}")
    rate = glob.get("core:sample_rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        raise DataError(path, f"invalid core:sample_rate {rate!r}")
    declared = glob.get("fedsb:class_names", [])
    if not isinstance(declared, list) or not all(isinstance(n, str) for n in declared):
        raise DataError(path, "fedsb:class_names must be a list of strings")
    annotations = meta.get("annotations", [])
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise DataError(path, "'annotations' must be a list of objects")
    for i, ann in enumerate(annotations):
        if _bad_count(ann.get("core:sample_start")) or _bad_count(ann.get("core:sample_count", 0)):
            raise DataError(path, f"annotation {i} has an invalid core:sample_start or _count")
    return glob


def _open(path: Path) -> tuple[sigmffile.SigMFFile, Path, Path]:
    """Open one recording through sigmf-python; returns (file, metadata path, data path)."""
    if is_archive(path):
        meta_path = data_path = path
        skip_checksum = False
    elif path.name.lower().endswith((".sigmf-meta", ".sigmf-data")):
        meta_path, data_path = path.with_suffix(".sigmf-meta"), path.with_suffix(".sigmf-data")
        if not meta_path.is_file():
            raise DataError(path, f"no metadata file {meta_path.name} next to this data file")
        try:
            raw = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno} column {exc.colno}"
            raise DataError(meta_path, f"invalid JSON in metadata ({exc.msg} at {where})") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(meta_path, f"cannot read metadata: {_one_line(exc)}") from exc
        skip_checksum = "core:sha512" not in _check_meta(raw, meta_path)
        if data_path.is_file() and data_path.stat().st_size == 0:  # sigmf cannot mmap it
            raise DataError(data_path, "empty recording: the data file holds 0 samples")
    else:
        raise DataError(path, "not a SigMF file (expected .sigmf-meta, .sigmf-data or .sigmf)")
    try:
        sf = sigmffile.fromfile(str(meta_path), skip_checksum=skip_checksum)
    except _SIGMF_ERRORS as exc:
        raise DataError(meta_path, f"cannot read SigMF recording: {_one_line(exc)}") from exc
    if sf.data_file is None and sf.data_buffer is None:
        raise DataError(meta_path, f"no data file: expected {data_path.name} next to it")
    return sf, meta_path, Path(sf.data_file) if sf.data_file is not None else data_path


def _sample_count(sf: sigmffile.SigMFFile, data_path: Path) -> int:
    """Whole samples in the data; empty or truncated data is an error, never a warning."""
    glob = sf.get_global_info()
    frame = sigmffile.dtype_info(glob["core:datatype"])["sample_size"] * sf.num_channels
    nbytes = getattr(sf, "data_size_bytes", None)
    if nbytes is None:
        header = sum(c.get("core:header_bytes", 0) for c in sf.get_captures())
        nbytes = data_path.stat().st_size - header - glob.get("core:trailing_bytes", 0)
    if nbytes <= 0:
        raise DataError(data_path, "empty recording: the data file holds 0 samples")
    if nbytes % frame:
        raise DataError(
            data_path,
            f"truncated data file: {nbytes} bytes is not a whole number "
            f"of {glob['core:datatype']} samples ({frame} bytes each)",
        )
    return nbytes // frame


def _number(value: Any) -> float | int | bool | None:
    """A JSON value as a number ("inf"/"nan" strings included), or None."""
    if isinstance(value, bool | int | float):
        return value
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _snr(ann: dict[str, Any]) -> float:
    """fedsb:snr_db, else "snr_db=<x>" in core:comment, else NaN."""
    value = _number(ann.get("fedsb:snr_db"))
    if value is not None:
        return float(value)
    match = _SNR_COMMENT.search(str(ann.get("core:comment", "")))
    return float(match.group(1)) if match else math.nan


def _column(values: list[Any], declared: Any) -> np.ndarray:
    """One meta column in its declared dtype; missing values are NaN (forcing a float dtype)."""
    try:
        dtype = np.dtype(declared) if isinstance(declared, str) else None
    except TypeError:
        dtype = None
    if any(v is None for v in values):
        floats = [math.nan if v is None else float(v) for v in values]
        return np.asarray(floats, dtype=dtype if dtype is not None and dtype.kind == "f" else None)
    return np.asarray(values, dtype=dtype)


def _samples(sf: sigmffile.SigMFFile, start: int, count: int) -> np.ndarray:
    """Channel 0 as complex64 (real datatypes get a zero imaginary part)."""
    x = sf.read_samples(start, count)
    return (x[:, 0] if x.ndim == 2 else x).astype(np.complex64, copy=False)


def _windows(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    if hop == length:
        return x.reshape(-1, length)
    return np.lib.stride_tricks.sliding_window_view(x, length)[::hop]


def _read_spans(
    sf: sigmffile.SigMFFile, spans: list[tuple[int, int]], length: int, hop: int, data_path: Path
) -> np.ndarray:
    """Windows of every (start, count) span: one read when the spans cover most of the range."""
    if not spans:
        return np.zeros((0, length), np.complex64)
    lo, hi = min(s for s, _ in spans), max(s + k for s, k in spans)
    try:
        if hi - lo <= 2 * sum(k for _, k in spans):
            block = _samples(sf, lo, hi - lo)
            chunks = [_windows(block[s - lo : s - lo + k], length, hop) for s, k in spans]
        else:
            chunks = [_windows(_samples(sf, s, k), length, hop) for s, k in spans]
    except _SIGMF_ERRORS as exc:
        raise DataError(data_path, f"cannot read samples: {_one_line(exc)}") from exc
    return np.concatenate(chunks)


def _resolve(label: Any, declared: tuple[str, ...] | None) -> str | None:
    """A declared class name verbatim (exact round trip), else the canonical alias."""
    if declared is not None and label in declared:
        return str(label)
    return canonical_label(label) if isinstance(label, str) else None


def _cut(path: Path, length: int, hop: int, skip_unknown: bool) -> _Part:
    """Every window of one recording."""
    sf, meta_path, data_path = _open(path)
    glob = _check_meta(
        {"global": sf.get_global_info(), "annotations": sf.get_annotations()}, meta_path
    )
    total = _sample_count(sf, data_path)
    if sf.num_channels > 1:
        log.warning("%s: %d channels; using channel 0 only", path, sf.num_channels)
    declared = tuple(glob["fedsb:class_names"]) if "fedsb:class_names" in glob else None
    dtypes = glob.get("fedsb:meta_dtypes")
    dtypes = dtypes if isinstance(dtypes, dict) else {}
    labelled = [(i, a) for i, a in enumerate(sf.get_annotations()) if "core:label" in a]
    if not labelled:
        raise DataError(meta_path, "no annotations with core:label: nothing says what it holds")
    rows, names, spans, unknown = [], [], [], 0
    for i, ann in labelled:
        label, start = ann["core:label"], ann["core:sample_start"]
        count = ann.get("core:sample_count", total - start)
        if start + count > total:
            raise DataError(
                meta_path,
                f"annotation {i} ({label!r}) ends at sample "
                f"{start + count} but the data holds only {total} samples "
                "(truncated data?)",
            )
        name = _resolve(label, declared)
        if name is None and not skip_unknown:
            raise DataError(
                meta_path,
                f"unknown label {label!r} in annotation {i}; pass "
                "--skip-unknown to drop such records",
            )
        if name is None:
            unknown += 1
        elif count < length:
            log.info("%s: annotation %d (%r) is shorter than %d samples", path, i, label, length)
        else:
            rows.append(ann)
            names.append(name)
            spans.append((start, (count - length) // hop * hop + length))
    if unknown:
        log.warning("%s: dropped %d annotation(s) with unknown labels", path, unknown)
    iq = _read_spans(sf, spans, length, hop, data_path)
    counts = [(k - length) // hop + 1 for _, k in spans]
    keys = sorted({k[6:] for a in rows for k in a if k.startswith("fedsb:")} - {"snr_db"})
    meta = {"snr_db": _column([_snr(a) for a in rows], dtypes.get("snr_db"))}
    meta.update(
        {k: _column([_number(a.get(f"fedsb:{k}")) for a in rows], dtypes.get(k)) for k in keys}
    )
    return _Part(
        iq=iq,
        names=np.repeat(np.asarray(names, dtype=object), counts),
        meta={k: np.repeat(v, counts) for k, v in meta.items()},
        declared=declared,
        sample_rate=float(glob.get("core:sample_rate", 1.0)),
        stored_info=glob.get("fedsb:info"),
        unknown=unknown,
    )


def _merge(parts: list[_Part], path: Path, length: int, hop: int) -> RecordSet:
    """One RecordSet from every recording's windows, with one class list and meta key set."""
    full = [p for p in parts if len(p.iq)]
    if not full:
        if any(p.unknown for p in parts):
            raise DataError(path, "no records left after dropping unknown labels")
        raise DataError(path, f"no records: every labelled span is shorter than {length} samples")
    declared = {p.declared for p in parts}
    found = set().union(*(set(p.names) for p in full))
    first = next(iter(declared))
    if len(declared) == 1 and first is not None and found <= set(first):
        class_names = first
    else:
        class_names = order_classes(found.union(*(set(d) for d in declared if d)))
    rates = sorted({p.sample_rate for p in full})
    if len(rates) > 1:
        raise DataError(
            path,
            f"recordings have different sample rates ({rates[0]} and "
            f"{rates[-1]} Hz); load them separately",
        )
    uniq, inverse = np.unique(np.concatenate([p.names for p in full]), return_inverse=True)
    lookup = np.asarray([class_names.index(n) for n in uniq], dtype=np.int64)
    meta: dict[str, np.ndarray] = {}
    for key in sorted(set().union(*(p.meta for p in full))):
        present = [p.meta[key] for p in full if key in p.meta]
        if len(present) == len(full) and len({c.dtype for c in present}) == 1:
            meta[key] = np.concatenate(present)
        else:  # a key missing somewhere, or dtypes that differ: NaN-filled float64
            meta[key] = np.concatenate(
                [
                    p.meta[key].astype(np.float64) if key in p.meta else np.full(len(p.iq), np.nan)
                    for p in full
                ]
            )
    info: dict[str, Any] = {
        "format": "sigmf",
        "source": str(path),
        "recordings": len(parts),
        "length": length,
        "hop": hop,
    }
    if full[0].stored_info is not None:
        info["written_with"] = full[0].stored_info
    return RecordSet(
        iq=np.concatenate([p.iq for p in full]),
        labels=lookup[inverse.ravel()],
        class_names=class_names,
        meta=meta,
        sample_rate=rates[0],
        info=info,
    )


def find_recordings(directory: Path) -> list[Path]:
    """Every SigMF recording under ``directory`` (recursive, sorted, hidden files skipped)."""
    found = [
        p
        for p in directory.rglob("*")
        if p.is_file()
        and (p.name.lower().endswith(".sigmf-meta") or is_archive(p))
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    ]
    return sorted(found)


def read_sigmf(
    path: str | Path, length: int, skip_unknown: bool = False, hop: int | None = None
) -> RecordSet:
    """Cut ``length``-sample records from every labelled annotation of a SigMF source.

    ``path`` is a ``.sigmf-meta``, a ``.sigmf-data``, a ``.sigmf`` archive or a directory (all
    recordings in it, recursively). Windows step by ``hop`` (default ``length``: no overlap) and
    never cross an annotation's end. Labels go through :func:`canonical_label`; unknown labels
    are an error unless ``skip_unknown``, which drops their spans.
    """
    path = Path(path)
    hop = length if hop is None else hop
    for name, value in (("record length", length), ("hop", hop)):
        if _bad_count(value) or value == 0:
            raise DataError(path, f"{name} must be a positive integer, got {value!r}")
    if path.is_dir():
        files = find_recordings(path)
        if not files:
            raise DataError(path, "no SigMF recordings (.sigmf-meta or .sigmf) in this directory")
    elif not path.exists():
        raise DataError(path, "file not found")
    else:
        files = [path]
    with warnings.catch_warnings(record=True) as caught:  # we report these conditions ourselves
        warnings.simplefilter("always")
        try:
            parts = [_cut(f, length, hop, skip_unknown) for f in files]
        finally:
            for warning in caught:
                log.debug("%s: sigmf-python: %s", path, warning.message)
    return _merge(parts, path, length, hop)
