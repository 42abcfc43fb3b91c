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
* Overlapping labelled annotations are allowed when they name the same class (after alias
  resolution: "QAM16" and "16qam" agree) and refused when they name different classes, since
  their shared samples would be windows with two labels. Annotations dropped as unknown by
  ``skip_unknown`` take no part.
* Hostile input: archives are vetted by :mod:`.sigmf_archive` (no links, no escaping names,
  no bombs); metadata size, the samples the spans would materialise and ``fedsb:meta_dtypes``
  values are checked (see :mod:`.budget` and :mod:`.sigmf_checks`) before anything is read.
"""

from __future__ import annotations

import json
import logging
import sys
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
from .budget import check_budget, count_text
from .labels import canonical_label, order_classes
from .sigmf_archive import SCAN_ERRORS, check_archive, find_recordings, is_archive
from .sigmf_checks import (
    SHORT,
    Span,
    bad_count,
    check_meta,
    check_overlaps,
    meta_column,
    meta_dtypes,
    number,
    snr_of,
)

log = logging.getLogger(__name__)

#: Declared in ``core:extensions`` so validators accept the ``fedsb:`` keys.
EXTENSION: dict[str, Any] = {"name": "fedsb", "version": "1.0.0", "optional": True}
_SIGMF_ERRORS = (
    SigMFError,
    ValidationError,
    json.JSONDecodeError,
    OSError,
    ValueError,
    tarfile.TarError,
    zipfile.BadZipFile,
)


def _too_deep(path: Path) -> DataError:
    return DataError(
        path,
        "metadata nests deeper than Python's recursion limit "
        f"({sys.getrecursionlimit()} levels); fedsb cannot read it",
    )


def one_line(exc: BaseException) -> str:
    """An exception as one line of text (its message with the whitespace folded)."""
    text = exc.message if isinstance(exc, ValidationError) else str(exc)
    return " ".join(text.split()) or type(exc).__name__


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


def _read_meta_json(meta_path: Path) -> Any:
    """The metadata JSON of a pair, its size checked against the budget first."""
    check_budget(meta_path, meta_path.stat().st_size, "the metadata file", verb="is")
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise DataError(meta_path, f"invalid JSON in metadata ({exc.msg} at {where})") from exc
    except RecursionError:
        raise _too_deep(meta_path) from None
    except (OSError, ValueError) as exc:  # not UTF-8; an integer of 5,000 digits
        raise DataError(meta_path, f"cannot read metadata: {one_line(exc)}") from exc


def _open(path: Path) -> tuple[sigmffile.SigMFFile, Path, Path]:
    """Open one recording through sigmf-python; returns (file, metadata path, data path)."""
    if is_archive(path):
        meta_path = data_path = path
        skip_checksum = False
        try:
            check_archive(path)
        except SCAN_ERRORS as exc:
            raise DataError(path, f"cannot read SigMF recording: {one_line(exc)}") from exc
    elif path.name.lower().endswith((".sigmf-meta", ".sigmf-data")):
        meta_path, data_path = path.with_suffix(".sigmf-meta"), path.with_suffix(".sigmf-data")
        if not meta_path.is_file():
            raise DataError(path, f"no metadata file {meta_path.name} next to this data file")
        skip_checksum = "core:sha512" not in check_meta(_read_meta_json(meta_path), meta_path)
        if data_path.is_file() and data_path.stat().st_size == 0:  # sigmf cannot mmap it
            raise DataError(data_path, "empty recording: the data file holds 0 samples")
    else:
        raise DataError(path, "not a SigMF file (expected .sigmf-meta, .sigmf-data or .sigmf)")
    try:
        sf = sigmffile.fromfile(str(meta_path), skip_checksum=skip_checksum)
    except RecursionError:
        raise _too_deep(meta_path) from None
    except _SIGMF_ERRORS as exc:
        raise DataError(meta_path, f"cannot read SigMF recording: {one_line(exc)}") from exc
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
    """Windows of every (start, count) span: one read when the spans cover most of the range.

    The samples read and the windows made are checked against the input budget first (a
    small metadata file can label terabytes, and a small hop multiplies the samples).
    """
    if not spans:
        return np.zeros((0, length), np.complex64)
    lo, hi = min(s for s, _ in spans), max(s + k for s, k in spans)
    covered = sum(k for _, k in spans)
    one_read = hi - lo <= 2 * covered
    windows = sum((k - length) // hop + 1 for _, k in spans) * length
    need = max(hi - lo if one_read else covered, windows)
    detail = f"{count_text(need)} complex64 samples"
    check_budget(data_path, need * 8, "the labelled spans", detail, verb="claim")
    try:
        if one_read:
            block = _samples(sf, lo, hi - lo)
            chunks = [_windows(block[s - lo : s - lo + k], length, hop) for s, k in spans]
        else:
            chunks = [_windows(_samples(sf, s, k), length, hop) for s, k in spans]
    except _SIGMF_ERRORS as exc:
        raise DataError(data_path, f"cannot read samples: {one_line(exc)}") from exc
    return np.concatenate(chunks)


def _resolve(label: Any, declared: tuple[str, ...] | None) -> str | None:
    """A declared class name verbatim (exact round trip), else the canonical alias."""
    if declared is not None and label in declared:
        return str(label)
    return canonical_label(label) if isinstance(label, str) else None


@dataclass
class _Spans:
    """The labelled annotations of one recording that give windows, in file order."""

    rows: list[dict[str, Any]]
    names: list[str]
    spans: list[tuple[int, int]]  # (start, samples used: whole windows only)
    unknown: int


def _spans(
    sf: sigmffile.SigMFFile,
    where: tuple[Path, Path],
    total: int,
    length: int,
    hop: int,
    declared: tuple[str, ...] | None,
    skip_unknown: bool,
) -> _Spans:
    """Check every labelled annotation (extent, label, overlaps) and keep the usable ones."""
    path, meta_path = where
    labelled = [(i, a) for i, a in enumerate(sf.get_annotations()) if "core:label" in a]
    if not labelled:
        raise DataError(meta_path, "no annotations with core:label: nothing says what it holds")
    out, known = _Spans([], [], [], 0), []
    for i, ann in labelled:
        label, start = ann["core:label"], ann["core:sample_start"]
        count = ann.get("core:sample_count", total - start)
        if start + count > total:
            raise DataError(
                meta_path,
                f"annotation {i} ({SHORT.repr(label)}) ends at sample {start + count} but the "
                f"data holds only {total} samples (truncated data?)",
            )
        name = _resolve(label, declared)
        if name is None and not skip_unknown:
            raise DataError(
                meta_path,
                f"unknown label {SHORT.repr(label)} in annotation {i}; pass "
                "--skip-unknown to drop such records",
            )
        if name is None:
            out.unknown += 1
            continue
        known.append(Span(start, start + count, i, name, label))
        if count < length:
            log.info("%s: annotation %d (%r) is shorter than %d samples", path, i, label, length)
        else:
            out.rows.append(ann)
            out.names.append(name)
            out.spans.append((start, (count - length) // hop * hop + length))
    check_overlaps(known, meta_path)
    return out


def _meta(rows: list[dict[str, Any]], glob: dict[str, Any], meta_path: Path) -> dict:
    """Per-span meta columns: snr_db always, plus every numeric ``fedsb:*`` field."""
    dtypes = meta_dtypes(glob, meta_path)
    keys = sorted({k[6:] for a in rows for k in a if k.startswith("fedsb:")} - {"snr_db"})
    meta = {
        "snr_db": meta_column("snr_db", [snr_of(a) for a in rows], dtypes.get("snr_db"), meta_path)
    }
    for key in keys:
        values = [number(a.get(f"fedsb:{key}")) for a in rows]
        meta[key] = meta_column(key, values, dtypes.get(key), meta_path)
    return meta


def _cut(path: Path, length: int, hop: int, skip_unknown: bool) -> _Part:
    """Every window of one recording."""
    sf, meta_path, data_path = _open(path)
    glob = check_meta(
        {"global": sf.get_global_info(), "annotations": sf.get_annotations()}, meta_path
    )
    total = _sample_count(sf, data_path)
    if sf.num_channels > 1:
        log.warning("%s: %d channels; using channel 0 only", path, sf.num_channels)
    declared = tuple(glob["fedsb:class_names"]) if "fedsb:class_names" in glob else None
    found = _spans(sf, (path, meta_path), total, length, hop, declared, skip_unknown)
    if found.unknown:
        log.warning("%s: dropped %d annotation(s) with unknown labels", path, found.unknown)
    meta = _meta(found.rows, glob, meta_path)
    iq = _read_spans(sf, found.spans, length, hop, data_path)
    counts = [(k - length) // hop + 1 for _, k in found.spans]
    return _Part(
        iq=iq,
        names=np.repeat(np.asarray(found.names, dtype=object), counts),
        meta={k: np.repeat(v, counts) for k, v in meta.items()},
        declared=declared,
        sample_rate=float(glob.get("core:sample_rate", 1.0)),
        stored_info=glob.get("fedsb:info"),
        unknown=found.unknown,
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
        if bad_count(value) or value == 0:
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
