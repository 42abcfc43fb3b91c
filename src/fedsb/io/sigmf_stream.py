"""A SigMF recording opened for streaming: metadata checked, samples read a chunk at a time.

:mod:`.sigmf_read` materialises labelled spans; ``fedsb classify`` must walk recordings of
gigabytes, so this reads ``(start, count)`` with ``np.fromfile`` at an offset and never maps or
loads the whole data file (an address-space cap of a few hundred MB is enough for any size).
Pairs (``.sigmf-meta`` + ``.sigmf-data``) and uncompressed ``.sigmf`` archives (their data
member is read in place, after :func:`.sigmf_archive.check_archive`) are supported; compressed
archives cannot be read at an offset and non-conforming datasets (``core:dataset``,
``core:header_bytes``, ``core:trailing_bytes``) are refused. Integer datatypes are scaled to
+-1 as sigmf-python's autoscale does; channel 0 of a multi-channel recording is used.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .budget import check_budget
from .sigmf_archive import SCAN_ERRORS, check_archive, is_archive
from .sigmf_checks import SHORT, check_meta

log = logging.getLogger(__name__)

_TYPE = re.compile(r"(c|r)(f32|f64|i32|i16|u32|u16|i8|u8)(_le|_be)?")
_NON_CONFORMING = ("core:dataset", "core:trailing_bytes", "core:metadata_only")


@dataclass
class Recording:
    """One recording's checked metadata and where its samples are."""

    path: Path  # as given
    meta_path: Path
    data_path: Path  # the .sigmf-data file, or the archive holding it
    offset: int  # byte offset of sample 0 in data_path
    datatype: str
    channels: int
    total: int  # samples per channel
    sample_rate: float
    glob: dict[str, Any]
    captures: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def archive(self) -> bool:
        """Whether the samples sit inside a ``.sigmf`` archive."""
        return self.data_path == self.meta_path

    @property
    def stem(self) -> str:
        """The recording's name without its SigMF suffix."""
        name = self.meta_path.name
        return name[: -len(".sigmf-meta")] if not self.archive else name[: -len(".sigmf")]

    @property
    def frame(self) -> int:
        """Bytes per sample of all channels."""
        return _frame(self.datatype) * self.channels

    def read(self, start: int, count: int) -> np.ndarray:
        """Samples [start, start + count) of channel 0 as complex64 (NaN/Inf refused)."""
        if start < 0 or count < 0 or start + count > self.total:
            raise DataError(
                self.data_path, f"samples {start}..{start + count} are outside 0..{self.total}"
            )
        check_budget(self.data_path, count * 8, "one read", verb="would need")
        kind, width, order = _parts(self.datatype)
        dtype = np.dtype(f"{'>' if order == '_be' else '<'}{width[0]}{int(width[1:]) // 8}")
        values = (2 if kind == "c" else 1) * self.channels
        try:
            raw = np.fromfile(
                self.data_path, dtype, count * values, offset=self.offset + start * self.frame
            )
        except (OSError, ValueError) as exc:
            raise DataError(self.data_path, f"cannot read samples: {exc}") from None
        if raw.size != count * values:
            raise DataError(self.data_path, f"data ends before sample {start + count}")
        return _to_complex(raw.reshape(count, self.channels, -1)[:, 0], width, start, self)

    def chunks(self, size: int, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Consecutive reads of at most ``size`` samples from ``start`` to ``stop``."""
        stop = self.total if stop is None else stop
        for pos in range(start, stop, size):
            yield self.read(pos, min(size, stop - pos))


def _parts(datatype: str) -> tuple[str, str, str]:
    match = _TYPE.fullmatch(datatype)
    assert match is not None  # check_meta accepted it
    kind, width, order = match.groups()
    return kind, width, order or "_le"


def _frame(datatype: str) -> int:
    kind, width, _ = _parts(datatype)
    return (2 if kind == "c" else 1) * int(width[1:]) // 8


def _to_complex(x: np.ndarray, width: str, start: int, rec: Recording) -> np.ndarray:
    """(n, 1 or 2) raw values -> complex64, integers scaled to +-1; NaN/Inf is an error."""
    x = x.astype(np.float32)
    if width[0] in "iu":
        bits = int(width[1:])
        if width[0] == "u":
            x -= 2.0 ** (bits - 1)
        x *= 2.0 ** -(bits - 1)
    out = (x[:, 0] + 1j * x[:, 1] if x.shape[1] == 2 else x[:, 0].astype(np.complex64)).astype(
        np.complex64, copy=False
    )
    if not np.isfinite(out.view(np.float32)).all():
        bad = int(np.flatnonzero(~np.isfinite(out.real) | ~np.isfinite(out.imag))[0])
        raise DataError(rec.data_path, f"sample {start + bad} is NaN or Inf")
    return out


def _json(text: bytes, path: Path) -> Any:
    try:
        return json.loads(text.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            path, f"invalid JSON in metadata ({exc.msg} at line {exc.lineno})"
        ) from None
    except RecursionError:
        raise DataError(path, "metadata nests too deeply to read") from None
    except ValueError as exc:  # not UTF-8; an integer of 5,000 digits
        raise DataError(path, f"cannot read metadata: {' '.join(str(exc).split())}") from None


def _pair(path: Path) -> tuple[Any, Path, Path, int, int]:
    """(metadata, meta path, data path, offset, data bytes) of a .sigmf-meta/-data pair."""
    meta_path, data_path = path.with_suffix(".sigmf-meta"), path.with_suffix(".sigmf-data")
    if not meta_path.is_file():
        raise DataError(path, f"no metadata file {meta_path.name} next to this data file")
    if not data_path.is_file():
        raise DataError(meta_path, f"no data file: expected {data_path.name} next to it")
    check_budget(meta_path, meta_path.stat().st_size, "the metadata file", verb="is")
    return (
        _json(meta_path.read_bytes(), meta_path),
        meta_path,
        data_path,
        0,
        data_path.stat().st_size,
    )


def _archive(path: Path) -> tuple[Any, Path, Path, int, int]:
    """The same for an uncompressed .sigmf archive (its members vetted first)."""
    if not path.name.lower().endswith(".sigmf"):
        raise DataError(
            path,
            "a compressed archive cannot be read in chunks; unpack it (tar xf) and pass "
            "its .sigmf-meta",
        )
    try:
        check_archive(path)
        with tarfile.open(path, "r:") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            meta = next(m for m in members if m.name.lower().endswith(".sigmf-meta"))
            data = [m for m in members if m.name.lower().endswith(".sigmf-data")]
            handle = tar.extractfile(meta)
            text = handle.read() if handle is not None else b""
    except SCAN_ERRORS as exc:
        raise DataError(path, f"cannot read SigMF archive: {' '.join(str(exc).split())}") from None
    if len(data) != 1:
        raise DataError(path, f"an archive with {len(data)} data members; expected exactly one")
    return _json(text, path), path, path, data[0].offset_data, data[0].size


def _non_conforming(glob: dict, captures: list, path: Path) -> None:
    found = [k for k in _NON_CONFORMING if glob.get(k)]
    found += ["core:header_bytes"] if any(c.get("core:header_bytes") for c in captures) else []
    if found:
        raise DataError(
            path,
            f"a non-conforming dataset ({', '.join(found)}); classify reads plain pairs and "
            ".sigmf archives",
        )


def _total(nbytes: int, frame: int, data_path: Path, datatype: str) -> int:
    if nbytes <= 0:
        raise DataError(data_path, "empty recording: the data file holds 0 samples")
    if nbytes % frame:
        raise DataError(
            data_path,
            f"truncated data file: {nbytes} bytes is not a whole number "
            f"of {datatype} samples ({frame} bytes each)",
        )
    return nbytes // frame


def _check_annotations(annotations: list[dict], total: int, path: Path) -> None:
    for i, ann in enumerate(annotations):
        end = ann["core:sample_start"] + ann.get("core:sample_count", 0)
        if end > total or ann["core:sample_start"] >= total:
            label = SHORT.repr(ann.get("core:label", ""))
            raise DataError(
                path,
                f"annotation {i} ({label}) ends at sample {end} but the data holds only "
                f"{total} samples (truncated data?)",
            )


def open_recording(path: str | Path) -> Recording:
    """A checked recording; a one-line DataError for anything unusable (see module doc)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    if is_archive(path):
        meta, meta_path, data_path, offset, nbytes = _archive(path)
    elif path.name.lower().endswith((".sigmf-meta", ".sigmf-data")):
        meta, meta_path, data_path, offset, nbytes = _pair(path)
    else:
        raise DataError(path, "not a SigMF recording (expected .sigmf-meta, .sigmf-data or .sigmf)")
    glob = check_meta(meta, meta_path)
    captures = meta.get("captures", [])
    if not isinstance(captures, list) or not all(isinstance(c, dict) for c in captures):
        raise DataError(meta_path, "'captures' must be a list of objects")
    _non_conforming(glob, captures, meta_path)
    channels = int(glob.get("core:num_channels", 1))
    datatype = glob["core:datatype"]
    total = _total(nbytes, _frame(datatype) * channels, data_path, datatype)
    annotations = meta.get("annotations", [])
    _check_annotations(annotations, total, meta_path)
    if channels > 1:
        log.warning("%s: %d channels; using channel 0 only", path, channels)
    return Recording(
        path, meta_path, data_path, offset, datatype, channels, total,
        float(glob.get("core:sample_rate", 1.0)), glob, captures, annotations,
    )  # fmt: skip
