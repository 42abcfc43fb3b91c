"""Which samples of a SigMF recording are labelled, and with which class.

A span's label is its annotation's ``core:label``. Captures from tools that never write one
often say what they hold in ``core:description`` instead, so (with one warning per file):
* an annotation without ``core:label`` but with its own ``core:description`` uses that;
* a recording with no labelled annotation at all, whose global object has a
  ``core:description``, is labelled by it as a whole: one span per capture segment.
Annotations with neither are notes, not class spans, and are ignored.

Each span also gets its SNR (see :func:`.sigmf_checks.snr_of`) and, as text, every scalar
field of its annotation, capture segment and global object (for natural partitions).
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sigmf import sigmffile

from ..errors import DataError
from .labels import canonical_label
from .sigmf_checks import (
    SHORT,
    Span,
    check_overlaps,
    meta_column,
    meta_dtypes,
    number,
    scalar_fields,
    snr_of,
)

log = logging.getLogger(__name__)


def resolve_label(label: Any, declared: tuple[str, ...] | None) -> str | None:
    """A declared class name verbatim (exact round trip), else the canonical alias."""
    if declared is not None and label in declared:
        return str(label)
    return canonical_label(label) if isinstance(label, str) else None


@dataclass
class Spans:
    """The labelled spans of one recording that give windows, in file order."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # annotation of each span
    captures: list[dict[str, Any]] = field(default_factory=list)  # its capture segment
    names: list[str] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)  # (start, samples used)
    unknown: int = 0  # labelled spans dropped as unknown
    dropped: dict[str, int] = field(default_factory=dict)  # their windows, by label
    short: list[tuple[str, Any]] = field(default_factory=list)  # (where, label): no window


def capture_of(captures: list[dict[str, Any]], starts: list[int], start: int) -> dict[str, Any]:
    """The capture segment holding sample ``start`` (the last one starting at or before it).

    ``captures`` are sorted by start and ``starts`` are their ``core:sample_start`` values.
    """
    i = bisect.bisect_right(starts, start) - 1
    return captures[i] if i >= 0 else {}


def _captures(sf: sigmffile.SigMFFile) -> list[dict[str, Any]]:
    found = [c for c in sf.get_captures() if isinstance(c, dict)]
    return sorted(found, key=lambda c: c.get("core:sample_start", 0))


def _labelled(sf: sigmffile.SigMFFile, total: int, path: Path) -> list[tuple[int, str, dict, Any]]:
    """(index, where, annotation, label) per labelled span, after the description fallbacks."""
    out = []
    for i, ann in enumerate(sf.get_annotations()):
        if "core:label" in ann:
            out.append((i, f"annotation {i}", ann, ann["core:label"]))
        elif "core:description" in ann:
            out.append((i, f"annotation {i}", ann, ann["core:description"]))
    described = sum("core:label" not in a for _, _, a, _ in out)
    if described:
        log.warning(
            "%s: %d annotation(s) without core:label; using their core:description as the label",
            path,
            described,
        )
    glob = sf.get_global_info()
    if out or "core:description" not in glob:
        return out
    label = glob["core:description"]
    log.warning(
        "%s: no core:label; using core:description %s as the label", path, SHORT.repr(label)
    )
    captures = _captures(sf) or [{"core:sample_start": 0}]
    bounds = [c.get("core:sample_start", 0) for c in captures] + [total]
    for j, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
        if end > start:
            ann = {"core:sample_start": start, "core:sample_count": end - start}
            out.append((j, f"capture segment {j}", ann, label))
    return out


def _unknown(meta_path: Path, place: str, label: Any) -> None:
    if place.startswith("capture"):  # the global description: free text, most likely
        raise DataError(
            meta_path,
            f"no annotations with core:label, and core:description {SHORT.repr(label)} "
            "names no class: nothing says what it holds",
        )
    raise DataError(
        meta_path,
        f"unknown label {SHORT.repr(label)} in {place}; pass --skip-unknown to drop such records",
    )


def find_spans(
    sf: sigmffile.SigMFFile,
    where: tuple[Path, Path],
    total: int,
    window: tuple[int, int],
    declared: tuple[str, ...] | None,
    skip_unknown: bool,
) -> Spans:
    """Check every labelled span (extent, label, overlaps) and keep the usable ones.

    ``window`` is (record length, hop). Spans shorter than one record give no window.
    """
    path, meta_path = where
    length, hop = window
    labelled = _labelled(sf, total, path)
    if not labelled:
        raise DataError(
            meta_path,
            "no annotations with core:label (and no core:description): nothing says what it holds",
        )
    out, known, captures = Spans(), [], _captures(sf)
    starts = [c.get("core:sample_start", 0) for c in captures]
    for i, place, ann, label in labelled:
        start = ann["core:sample_start"]
        count = ann.get("core:sample_count", total - start)
        if start + count > total:
            raise DataError(
                meta_path,
                f"{place} ({SHORT.repr(label)}) ends at sample {start + count} but the "
                f"data holds only {total} samples (truncated data?)",
            )
        name = resolve_label(label, declared)
        if name is None and not skip_unknown:
            _unknown(meta_path, place, label)
        if name is None:
            out.unknown += 1
            text = str(label)[:60]
            out.dropped[text] = out.dropped.get(text, 0) + max(0, (count - length) // hop + 1)
            continue
        known.append(Span(start, start + count, i, name, label))
        if count < length:
            out.short.append((place, label))
        else:
            out.rows.append(ann)
            out.captures.append(capture_of(captures, starts, start))
            out.names.append(name)
            out.spans.append((start, (count - length) // hop * hop + length))
    check_overlaps(known, meta_path)
    return out


def _snr_column(found: Spans, snr_key: str, meta_path: Path) -> list[float]:
    """The SNR of every span (see :func:`snr_of`); a bad value at ``snr_key`` is an error."""
    values, seen = [], False
    for ann, capture in zip(found.rows, found.captures, strict=True):
        seen = seen or snr_key in ann or snr_key in capture
        try:
            values.append(snr_of(ann, capture, snr_key))
        except ValueError as exc:
            start = ann["core:sample_start"]
            raise DataError(meta_path, f"span at sample {start}: {exc}") from None
    if snr_key and values and not seen:
        log.warning("%s: no annotation or capture segment has the SNR field %r", meta_path, snr_key)
    return values


def span_meta(found: Spans, glob: dict[str, Any], meta_path: Path, snr_key: str) -> dict:
    """Per-span meta columns: snr_db always, plus every numeric ``fedsb:*`` field."""
    rows = found.rows
    dtypes = meta_dtypes(glob, meta_path)
    keys = sorted({k[6:] for a in rows for k in a if k.startswith("fedsb:")} - {"snr_db"})
    snr = _snr_column(found, snr_key, meta_path)
    meta = {"snr_db": meta_column("snr_db", snr, dtypes.get("snr_db"), meta_path)}
    for key in keys:
        values = [number(a.get(f"fedsb:{key}")) for a in rows]
        meta[key] = meta_column(key, values, dtypes.get(key), meta_path)
    return meta


def span_attrs(found: Spans, glob: dict[str, Any], path: Path, counts: list[int]) -> dict:
    """Per-window text of every scalar field (annotation over capture over global)."""
    rows = [
        {**scalar_fields(glob, c, a), "file": str(path)}
        for a, c in zip(found.rows, found.captures, strict=True)
    ]
    keys = sorted(set().union(*rows)) if rows else ["file"]
    return {
        k: np.repeat(np.asarray([r.get(k, "") for r in rows], dtype=object), counts) for k in keys
    }
