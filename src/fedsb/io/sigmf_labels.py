"""Write what ``fedsb classify`` found: a new SigMF recording, plus the same rows as CSV and JSON.

The user's files are never written. Next to a new ``<stem>.fedsb.sigmf-meta`` in the output
folder goes ``<stem>.fedsb.sigmf-data``: a symbolic link to the user's data file (``link``) or
a copy (``copy``, streamed; always for a ``.sigmf`` archive, whose data member cannot be
linked). The metadata keeps the user's global object and captures and replaces the
annotations with one per classified burst. Every file is written to a temporary name and
renamed into place; an output that would be one of the inputs is refused before anything is
written.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError
from sigmf.validate import validate as sigmf_validate

from ..errors import ConfigError, DataError
from .cache import atomic_file, discard, temp_path
from .sigmf_read import EXTENSION, one_line
from .sigmf_stream import Recording

#: How the new metadata reaches the samples.
DATA_MODES = ("auto", "link", "copy")
_COPY_CHUNK = 1 << 24  # bytes per copied chunk
CSV_COLUMNS = (
    "start", "count", "freq_lower_edge", "freq_upper_edge", "label", "probability",
    "top1", "p1", "top2", "p2", "top3", "p3", "energy", "windows", "snr_db_est", "source",
    "given_label",
)  # fmt: skip


@dataclass(frozen=True)
class Labelled:
    """One classified burst or annotation."""

    start: int
    count: int
    label: str  # a class name, or "unknown"
    probability: float  # calibrated probability of the best class
    top: tuple[tuple[str, float], ...]  # best classes first, with their probabilities
    energy: float  # T * logsumexp(logits / T), mean over the windows (higher: more familiar)
    windows: int
    source: str  # "detected" or "annotation <i>"
    freq: tuple[float, float] | None = None  # lower and upper edge in Hz, where estimated
    snr_db: float = math.nan  # estimated from the noise floor, where known
    given: str | None = None  # the annotation's own core:label


def output_paths(rec: Recording, out: Path) -> dict[str, Path]:
    """The files written for ``rec`` in ``out``: meta, data, csv, json."""
    base = out / f"{rec.stem}.fedsb"
    return {k: Path(f"{base}.{s}") for k, s in _SUFFIXES.items()}


_SUFFIXES = {"meta": "sigmf-meta", "data": "sigmf-data", "csv": "csv", "json": "json"}


def check_outputs(recordings: Sequence[Recording], out: Path, mode: str) -> str:
    """The data mode to use; a one-line error (before anything is written) if any output clashes.

    Clashes: two recordings with one stem, an output that is an input file, ``link`` for an
    archive, an ``out`` that is a file.
    """
    if mode not in DATA_MODES:
        raise ConfigError(f"data: {mode!r} is not one of {', '.join(DATA_MODES)}")
    if mode == "link" and any(r.archive for r in recordings):
        first = next(r for r in recordings if r.archive)
        raise ConfigError(f"data: {first.path} is an archive; its samples cannot be linked (copy)")
    if out.exists() and not out.is_dir():
        raise DataError(out, "not a directory (--out takes a folder)")
    inputs = [p for r in recordings for p in (r.meta_path, r.data_path)]
    seen: dict[str, Path] = {}
    for rec in recordings:
        if rec.stem in seen:
            raise DataError(rec.path, f"has the same name as {seen[rec.stem]}; their outputs clash")
        seen[rec.stem] = rec.path
        for path in output_paths(rec, out).values():
            if any(_same(path, p) for p in inputs):
                raise DataError(path, "is one of the inputs; fedsb never overwrites them")
    return mode


def _same(output: Path, source: Path) -> bool:
    """Whether writing ``output`` would replace ``source`` (a link of ours is only replaced)."""
    if os.path.abspath(output) == os.path.abspath(source):
        return True
    try:
        return not output.is_symlink() and output.exists() and os.path.samefile(output, source)
    except OSError:
        return False


def _json_value(value: Any) -> Any:
    """NaN and infinities as None (JSON has none), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _row(item: Labelled) -> dict[str, Any]:
    """The CSV/JSON row of one burst."""
    row: dict[str, Any] = {
        "start": item.start,
        "count": item.count,
        "freq_lower_edge": item.freq[0] if item.freq else None,
        "freq_upper_edge": item.freq[1] if item.freq else None,
        "label": item.label,
        "probability": item.probability,
    }
    for i in range(3):
        name, p = item.top[i] if i < len(item.top) else ("", math.nan)
        row[f"top{i + 1}"], row[f"p{i + 1}"] = name, p
    row.update(energy=item.energy, windows=item.windows, snr_db_est=item.snr_db)
    row.update(source=item.source, given_label=item.given or "")
    return _json_value(row)


def annotation(item: Labelled) -> dict[str, Any]:
    """The SigMF annotation of one burst (``fedsb:`` fields for what SigMF has no key for)."""
    ann: dict[str, Any] = {
        "core:sample_start": item.start,
        "core:sample_count": item.count,
        "core:label": item.label,
        "fedsb:probability": item.probability,
        "fedsb:top3": [{"label": n, "probability": p} for n, p in item.top[:3]],
        "fedsb:energy": item.energy,
        "fedsb:windows": item.windows,
        "fedsb:source": item.source,
    }
    if item.freq is not None:
        ann["core:freq_lower_edge"], ann["core:freq_upper_edge"] = item.freq
    if math.isfinite(item.snr_db):
        ann["fedsb:snr_db_est"] = item.snr_db
    if item.given is not None:
        ann["fedsb:given_label"] = item.given
    return _json_value(ann)


def _metadata(rec: Recording, items: Sequence[Labelled], info: dict[str, Any]) -> dict:
    glob = {k: v for k, v in rec.glob.items() if k != "core:extensions"}
    extensions = [
        e for e in rec.glob.get("core:extensions", []) if e.get("name") != EXTENSION["name"]
    ]
    glob["core:extensions"] = [*extensions, dict(EXTENSION)]
    glob.setdefault("core:version", "1.0.0")
    glob["fedsb:classified"] = _json_value(info)
    captures = rec.captures or [{"core:sample_start": 0}]
    return {"global": glob, "captures": captures, "annotations": [annotation(i) for i in items]}


def _validate(meta: dict, path: Path) -> None:
    """sigmf-python's schema on the global object, captures and the first annotations."""
    head = {**meta, "annotations": meta["annotations"][:3]}
    try:
        sigmf_validate(head)
    except (ValidationError, ValueError, KeyError) as exc:
        raise DataError(path, f"cannot write valid SigMF: {one_line(exc)}") from None


def _data(rec: Recording, target: Path, mode: str) -> None:
    """``target`` as a link to the user's data, or a streamed copy of its sample bytes."""
    tmp = temp_path(target, ".sigmf-data")
    try:
        if mode == "link":
            tmp.unlink()
            os.symlink(rec.data_path.resolve(), tmp)
        else:
            with open(rec.data_path, "rb") as src, open(tmp, "wb") as dst:
                src.seek(rec.offset)
                left = rec.total * rec.frame
                while left:
                    chunk = src.read(min(left, _COPY_CHUNK))
                    if not chunk:
                        raise DataError(rec.data_path, "data ended while it was copied")
                    dst.write(chunk)
                    left -= len(chunk)
        os.replace(tmp, target)
    except OSError as exc:
        raise DataError(target, f"cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp.is_symlink() or tmp.exists():
            discard(tmp)


def _csv_text(items: Sequence[Labelled]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow({k: "" if v is None else v for k, v in _row(item).items()})
    return buffer.getvalue()


def write_labelled(
    rec: Recording, items: Sequence[Labelled], out: Path, mode: str, info: dict[str, Any]
) -> dict[str, Path]:
    """Write the outputs of one recording (see module doc); returns their paths.

    ``mode`` is a checked :data:`DATA_MODES` entry ("auto": link, or copy for an archive);
    ``info`` goes into the metadata's ``fedsb:classified`` and the JSON.
    """
    paths = output_paths(rec, out)
    mode = ("copy" if rec.archive else "link") if mode == "auto" else mode
    meta = _metadata(rec, items, {**info, "data": mode, "source": str(rec.path)})
    _validate(meta, paths["meta"])
    _data(rec, paths["data"], mode)
    result = {"recording": str(rec.path), "sample_rate": rec.sample_rate, "samples": rec.total}
    result.update(_json_value({**info, "data": mode}))
    result["bursts"] = [_row(i) for i in items]
    texts = {
        "csv": _csv_text(items),
        "json": json.dumps(result, indent=1, allow_nan=False) + "\n",
        "meta": json.dumps(meta, indent=1, allow_nan=False) + "\n",
    }
    for key in ("csv", "json", "meta"):  # the metadata last: it is the recording's entry point
        with atomic_file(paths[key]) as handle:
            handle.write(texts[key].encode("utf-8"))
    return paths
