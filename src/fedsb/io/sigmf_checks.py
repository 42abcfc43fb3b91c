"""Checks on SigMF metadata that sigmf-python leaves to warnings or to chance.

``fedsb:meta_dtypes`` says which numpy dtype each ``fedsb:*`` annotation field had when it
was written; a reader must not trust it blindly (an object dtype, a string dtype, or a value
that wraps around in int8 would give wrong or unsafe arrays). Overlapping labelled spans are
fine when they name the same class and contradictory when they do not.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import DataError

#: Short reprs for values in messages (a hostile value can be huge or deeply nested).
SHORT = reprlib.Repr()
SHORT.maxstring = SHORT.maxother = 60
_DATATYPE = re.compile(r"(c|r)(f32|f64|i32|i16|u32|u16|i8|u8)(_le|_be)?")
#: The SNR field of the SigMF "capture_details" extension (on annotations and captures).
SNR_DETAIL = "capture_details:SNRdB"
_SNR_COMMENT = re.compile(r"snr(?:_db)?\s*[=:]\s*([-+]?(?:inf|nan|[0-9.]+(?:e[-+]?\d+)?))", re.I)


def bad_count(value: Any) -> bool:
    """Whether ``value`` is not a valid count (a non-negative int that is not a bool)."""
    return isinstance(value, bool) or not isinstance(value, int) or value < 0


def check_meta(meta: Any, path: Path) -> dict[str, Any]:
    """The checks sigmf-python leaves to warnings or to chance; returns the global object."""
    glob = meta.get("global") if isinstance(meta, dict) else None
    if not isinstance(glob, dict):
        raise DataError(path, "metadata has no 'global' object")
    datatype = glob.get("core:datatype")
    if datatype is None:
        raise DataError(path, "missing 'core:datatype' in the global object")
    if not isinstance(datatype, str) or not _DATATYPE.fullmatch(datatype):
        raise DataError(path, f"unknown core:datatype {datatype!r} (expected e.g. cf32_le)")
    if bad_count(glob.get("core:num_channels", 1)) or glob.get("core:num_channels") == 0:
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
        if bad_count(ann.get("core:sample_start")) or bad_count(ann.get("core:sample_count", 0)):
            raise DataError(path, f"annotation {i} has an invalid core:sample_start or _count")
    return glob


def number(value: Any) -> float | int | bool | None:
    """A JSON value as a number ("inf"/"nan" strings included), or None."""
    if isinstance(value, bool | int | float):
        return value
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def snr_of(ann: dict[str, Any], capture: dict[str, Any] | None = None, key: str = "") -> float:
    """SNR in dB of one span, from the most specific place that gives one; else NaN.

    In order: ``key`` (a caller-chosen field, on the annotation then its capture segment),
    fedsb:snr_db, the annotation's capture_details:SNRdB, "snr_db=<x>" in core:comment, the
    capture segment's capture_details:SNRdB. A value at ``key`` that is not a number raises
    ValueError (the user named that field, so a typo in it must not pass as "no SNR").
    """
    capture = capture or {}
    for where in (ann, capture) if key else ():
        if key in where:
            value = number(where[key])
            if value is None or isinstance(value, bool):
                raise ValueError(f"{key} is {SHORT.repr(where[key])}, not a number")
            return float(value)
    for value in (ann.get("fedsb:snr_db"), ann.get(SNR_DETAIL)):
        value = number(value)
        if value is not None and not isinstance(value, bool):
            return float(value)
    match = _SNR_COMMENT.search(str(ann.get("core:comment", "")))
    if match:
        return float(match.group(1))
    value = number(capture.get(SNR_DETAIL))
    return float(value) if value is not None and not isinstance(value, bool) else math.nan


def scalar_fields(*objects: dict[str, Any]) -> dict[str, str]:
    """Every field with a scalar value (text, number, bool) as text; later objects win."""
    out: dict[str, str] = {}
    for obj in objects:
        for key, value in obj.items():
            if isinstance(value, str):
                out[key] = value
            elif isinstance(value, bool | int | float):
                out[key] = json.dumps(value)
    return out


def meta_dtypes(glob: dict[str, Any], path: Path) -> dict[str, np.dtype]:
    """``fedsb:meta_dtypes`` as real dtypes; only plain numbers (bool, int, uint, float)."""
    raw = glob.get("fedsb:meta_dtypes", {})
    if not isinstance(raw, dict):
        raise DataError(path, "fedsb:meta_dtypes must be an object mapping meta keys to dtypes")
    dtypes = {}
    for key, name in raw.items():
        dtype = None
        if isinstance(name, str) and len(name) <= 32:
            try:
                dtype = np.dtype(name)
            except (TypeError, ValueError):
                dtype = None
        if dtype is None or dtype.kind not in "biuf" or dtype.fields or dtype.subdtype:
            raise DataError(
                path,
                f"fedsb:meta_dtypes gives {key!r} the dtype {SHORT.repr(name)}; expected a "
                "numeric dtype name such as 'float64', 'int64' or 'bool'",
            )
        dtypes[key] = dtype
    return dtypes


def _base(values: Sequence[Any]) -> np.ndarray:
    """bool, int64 or float64 (NaN where a value is missing), as JSON numbers suggest."""
    if any(v is None for v in values):
        return np.asarray([math.nan if v is None else float(v) for v in values], np.float64)
    if all(isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=bool)
    if not any(isinstance(v, float) for v in values):
        try:
            return np.asarray(values, dtype=np.int64)
        except OverflowError:
            pass  # beyond int64: kept as floats
    return np.asarray([float(v) for v in values], dtype=np.float64)


def meta_column(key: str, values: Sequence[Any], dtype: np.dtype | None, path: Path) -> np.ndarray:
    """One meta column, in its declared dtype when it has one and every value fits it.

    A column with missing values stays float (NaN marks them) unless a float dtype is
    declared. Integer and bool dtypes take only values they hold exactly; float dtypes may
    round but not overflow to infinity.
    """
    try:
        base = _base(values)
    except OverflowError:
        raise DataError(path, f"fedsb:{key} has a value too large for a float") from None
    if dtype is None or (dtype.kind != "f" and any(v is None for v in values)):
        return base
    with np.errstate(invalid="ignore", over="ignore"):
        cast = base.astype(dtype)
        if dtype.kind == "f":
            ok = ~(np.isinf(cast) & np.isfinite(base))
        else:
            ok = cast.astype(base.dtype) == base
    if not ok.all():
        bad = base[np.flatnonzero(~ok)[0]].item()
        raise DataError(
            path,
            f"fedsb:{key} value {bad!r} does not fit its declared dtype {dtype.name} "
            "(fedsb:meta_dtypes)",
        )
    return cast


def union_meta(metas: Sequence[dict[str, np.ndarray]], sizes: Sequence[int]) -> dict:
    """Meta columns of several parts joined end to end.

    A key all parts have in one dtype keeps it; a key missing somewhere or with differing
    dtypes becomes float64, NaN where it is missing.
    """
    meta: dict[str, np.ndarray] = {}
    for key in sorted(set().union(*metas)):
        present = [m[key] for m in metas if key in m]
        if len(present) == len(metas) and len({c.dtype for c in present}) == 1:
            meta[key] = np.concatenate(present)
        else:
            meta[key] = np.concatenate(
                [
                    m[key].astype(np.float64) if key in m else np.full(n, np.nan)
                    for m, n in zip(metas, sizes, strict=True)
                ]
            )
    return meta


class Span(NamedTuple):
    """One labelled annotation: samples [start, end), its index, class and label as written."""

    start: int
    end: int
    index: int
    name: str
    label: Any


def check_overlaps(spans: list[Span], path: Path) -> None:
    """DataError naming the first two overlapping spans of different classes.

    One sweep in start order, remembering only the furthest-reaching span so far. A new span
    that overlaps an earlier one of another class also overlaps the furthest-reaching one;
    if that one shares the new span's class, it overlaps the other earlier span too, and
    that pair was already refused.
    """
    reach: Span | None = None
    for span in sorted(s for s in spans if s.end > s.start):
        if reach is not None and reach.end > span.start and reach.name != span.name:
            _conflict(reach, span, path)
        if reach is None or span.end > reach.end:
            reach = span


def _conflict(a: Span, b: Span, path: Path) -> None:
    first, second = sorted((a, b), key=lambda s: s.index)
    raise DataError(
        path,
        f"annotations {first.index} ({SHORT.repr(first.label)}) and {second.index} "
        f"({SHORT.repr(second.label)}) overlap at samples {max(a.start, b.start)}-"
        f"{min(a.end, b.end)} with different labels; fedsb refuses contradictory windows",
    )
