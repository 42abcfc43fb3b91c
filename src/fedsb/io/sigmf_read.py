"""Read SigMF recordings into a RecordSet: labelled annotation spans cut into fixed-length records.

SigMF is the interchange format for real captures, so reading is lenient about where a label
comes from but strict about anything that would silently give wrong samples. Writing stores one
annotation per record plus ``fedsb:*`` fields so that ``read_sigmf(write_sigmf(x))`` is exact.

Rules (documented choices):
* Annotations without ``core:label`` (or ``core:description``, see :mod:`.sigmf_spans`) are
  ignored (they are notes, not class spans); a recording with no labelled annotation and no
  global ``core:description`` is an error, since nothing says what its samples are.
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
from .labels import order_classes
from .sigmf_archive import SCAN_ERRORS, check_archive, find_recordings, is_archive
from .sigmf_checks import (
    bad_count,
    check_meta,
    union_meta,
)
from .sigmf_spans import Spans, find_spans, span_attrs, span_meta

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
    spans: Spans
    span_of: np.ndarray  # (n,) int64: the span each window comes from
    attrs: dict[str, np.ndarray]  # (n,) str per scalar field


@dataclass(frozen=True)
class SigmfSource:
    """A SigMF source with what splits and partitions need besides the records.

    Attributes:
        records: the windows, as :func:`read_sigmf` returns them.
        groups: (N,) int64; the windows of one labelled span share a value.
        attrs: (N,) str per field: every scalar global, capture-segment and annotation field
            (annotation over capture over global) and "file", the recording's path; "" where
            a recording lacks the field.
        dropped: windows dropped by ``skip_unknown``, by label as written.
    """

    records: RecordSet
    groups: np.ndarray
    attrs: dict[str, np.ndarray]
    dropped: dict[str, int]


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


def _cut(path: Path, length: int, hop: int, skip_unknown: bool, snr_key: str) -> _Part:
    """Every window of one recording."""
    sf, meta_path, data_path = _open(path)
    glob = check_meta(
        {"global": sf.get_global_info(), "annotations": sf.get_annotations()}, meta_path
    )
    total = _sample_count(sf, data_path)
    if sf.num_channels > 1:
        log.warning("%s: %d channels; using channel 0 only", path, sf.num_channels)
    declared = tuple(glob["fedsb:class_names"]) if "fedsb:class_names" in glob else None
    found = find_spans(sf, (path, meta_path), total, (length, hop), declared, skip_unknown)
    if found.unknown:
        log.warning("%s: dropped %d annotation(s) with unknown labels", path, found.unknown)
    for place, label in found.short:
        log.info("%s: %s (%r) is shorter than %d samples", path, place, label, length)
    meta = span_meta(found, glob, meta_path, snr_key)
    iq = _read_spans(sf, found.spans, length, hop, data_path)
    counts = [(k - length) // hop + 1 for _, k in found.spans]
    return _Part(
        iq=iq,
        names=np.repeat(np.asarray(found.names, dtype=object), counts),
        meta={k: np.repeat(v, counts) for k, v in meta.items()},
        declared=declared,
        sample_rate=float(glob.get("core:sample_rate", 1.0)),
        stored_info=glob.get("fedsb:info"),
        spans=found,
        span_of=np.repeat(np.arange(len(counts), dtype=np.int64), counts),
        attrs=span_attrs(found, glob, path, counts),
    )


def _class_names(parts: list[_Part], full: list[_Part]) -> tuple[str, ...]:
    """The declared class list when every recording shares it and it covers them, else found."""
    declared = {p.declared for p in parts}
    found = set().union(*(set(p.names) for p in full))
    first = next(iter(declared))
    if len(declared) == 1 and first is not None and found <= set(first):
        return first
    return order_classes(found.union(*(set(d) for d in declared if d)))


def _merge(parts: list[_Part], path: Path, length: int, hop: int) -> RecordSet:
    """One RecordSet from every recording's windows, with one class list and meta key set."""
    full = [p for p in parts if len(p.iq)]
    if not full:
        if any(p.spans.unknown for p in parts):
            raise DataError(path, "no records left after dropping unknown labels")
        raise DataError(path, f"no records: every labelled span is shorter than {length} samples")
    class_names = _class_names(parts, full)
    rates = sorted({p.sample_rate for p in full})
    if len(rates) > 1:
        raise DataError(
            path,
            f"recordings have different sample rates ({rates[0]} and "
            f"{rates[-1]} Hz); load them separately",
        )
    uniq, inverse = np.unique(np.concatenate([p.names for p in full]), return_inverse=True)
    lookup = np.asarray([class_names.index(n) for n in uniq], dtype=np.int64)
    meta = union_meta([p.meta for p in full], [len(p.iq) for p in full])
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


def _source(parts: list[_Part], records: RecordSet) -> SigmfSource:
    """Groups (one per labelled span, numbered across recordings), attributes, drop counts."""
    full = [p for p in parts if len(p.iq)]
    offsets = np.cumsum([0] + [len(p.spans.spans) for p in full])
    groups = np.concatenate([p.span_of + off for p, off in zip(full, offsets, strict=False)])
    keys = sorted(set().union(*(p.attrs for p in full)))
    attrs = {
        k: np.concatenate([p.attrs.get(k, np.full(len(p.iq), "", object)) for p in full])
        for k in keys
    }
    dropped: dict[str, int] = {}
    for part in parts:
        for label, n in part.spans.dropped.items():
            dropped[label] = dropped.get(label, 0) + n
    return SigmfSource(records, groups.astype(np.int64), attrs, dropped)


def read_sigmf_source(
    path: str | Path,
    length: int,
    skip_unknown: bool = False,
    hop: int | None = None,
    snr_key: str = "",
) -> SigmfSource:
    """:func:`read_sigmf`, plus each window's group and attributes (see :class:`SigmfSource`).

    ``snr_key`` names a field (on annotations, then capture segments) that holds the SNR in
    dB; it wins over the usual places (see :func:`.sigmf_checks.snr_of`).
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
            parts = [_cut(f, length, hop, skip_unknown, snr_key) for f in files]
        finally:
            for warning in caught:
                log.debug("%s: sigmf-python: %s", path, warning.message)
    return _source(parts, _merge(parts, path, length, hop))


def read_sigmf(
    path: str | Path, length: int, skip_unknown: bool = False, hop: int | None = None
) -> RecordSet:
    """Cut ``length``-sample records from every labelled annotation of a SigMF source.

    ``path`` is a ``.sigmf-meta``, a ``.sigmf-data``, a ``.sigmf`` archive or a directory (all
    recordings in it, recursively). Windows step by ``hop`` (default ``length``: no overlap) and
    never cross an annotation's end. Labels go through :func:`canonical_label` (see
    :mod:`.sigmf_spans` for the core:description fallback); unknown labels are an error unless
    ``skip_unknown``, which drops their spans.
    """
    return read_sigmf_source(path, length, skip_unknown, hop).records
