"""The two entry points the CLI uses: load any supported source, save to .npz or SigMF.

Every loaded set is checked here (non-empty, finite samples) so that a bad file fails at load
time with its name, not as a NaN loss or a shape error deep inside training.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..signals.recordset import RecordSet
from .cache import load_npz, save_npz
from .radioml import read_rml2016, read_rml2018
from .sigmf_archive import is_archive
from .sigmf_read import read_sigmf
from .sigmf_write import write_sigmf

log = logging.getLogger(__name__)

#: Record length cut from SigMF spans when the caller gives none (RML2018 uses 1024 too).
DEFAULT_SIGMF_LENGTH = 1024
#: Records checked for NaN/Inf at a time (bounds the temporary boolean array).
_CHECK_CHUNK = 4096

FORMATS: dict[str, tuple[str, ...]] = {
    "npz": (".npz",),
    "sigmf": (".sigmf-meta", ".sigmf-data", ".sigmf", ".sigmf.gz", ".sigmf.xz", ".sigmf.zip"),
    "rml2016": (".pkl", ".pickle", ".dat"),
    "rml2018": (".h5", ".hdf5"),
}


def source_format(path: Path) -> str:
    """Which reader handles ``path``: by extension, or "sigmf" for a directory."""
    if path.is_dir():
        return "sigmf"
    name = path.name.lower()
    for fmt, suffixes in FORMATS.items():
        if name.endswith(suffixes):
            return fmt
    known = ", ".join(s for suffixes in FORMATS.values() for s in suffixes)
    raise DataError(path, f"unknown file type; expected one of {known} or a SigMF directory")


def nonfinite_records(iq: np.ndarray) -> int:
    """How many records (rows of ``iq``) hold a NaN or Inf sample, a chunk of rows at a time."""
    bad = 0
    for start in range(0, len(iq), _CHECK_CHUNK):
        block = iq[start : start + _CHECK_CHUNK]
        finite = np.isfinite(block.real) & np.isfinite(block.imag)
        bad += int(np.count_nonzero(~finite.all(axis=1)))
    return bad


def check_records(records: RecordSet, path: str | Path) -> RecordSet:
    """Reject sets a model cannot use: no records, zero-length records, NaN/Inf samples."""
    if len(records) == 0:
        raise DataError(path, "no records (empty recording or selection)")
    if records.length == 0:
        raise DataError(path, "records have 0 samples")
    bad = nonfinite_records(records.iq)
    if bad:
        raise DataError(path, f"{bad} of {len(records)} records contain NaN or Inf samples")
    return records


def load_records(
    path: str | Path, length: int | None = None, skip_unknown: bool = False
) -> RecordSet:
    """Load a RecordSet from .npz, SigMF (file, archive or directory), RML2016 or RML2018.

    ``length`` is the record length cut from SigMF spans (default 1024). The other formats
    have a fixed record length: giving a different ``length`` for them is an error rather
    than a silent crop. ``skip_unknown`` drops records whose label has no canonical class.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    fmt = source_format(path)
    if fmt == "sigmf":
        records = read_sigmf(
            path, DEFAULT_SIGMF_LENGTH if length is None else length, skip_unknown=skip_unknown
        )
    elif fmt == "npz":
        records = load_npz(path)
    elif fmt == "rml2016":
        records = read_rml2016(path, skip_unknown=skip_unknown)
    else:
        records = read_rml2018(path)
    check_records(records, path)
    if length is not None and records.length != length:
        raise DataError(path, f"records are {records.length} samples long, not {length}")
    log.info(
        "%s: %d records of %d samples, %d classes",
        path,
        len(records),
        records.length,
        len(records.class_names),
    )
    return records


def save_records(records: RecordSet, path: str | Path, format: str | None = None) -> Path:
    """Save to .npz (exact cache) or SigMF (``.sigmf-meta`` pair or ``.sigmf`` archive).

    ``format`` ("npz" or "sigmf") defaults to the one the extension names; a format that
    contradicts the extension is refused. Returns the path written (the ``.sigmf-meta`` file
    for a pair). Writes are atomic.
    """
    path = Path(path)
    if format not in (None, "npz", "sigmf"):
        raise DataError(path, f"unknown output format {format!r}; choose npz or sigmf")
    name = path.name.lower()
    implied = "npz" if name.endswith(".npz") else None
    if name.endswith((".sigmf-meta", ".sigmf-data")) or is_archive(path):
        implied = "sigmf"
    if format is None and implied is None:
        raise DataError(path, "cannot tell the output format: use .npz, .sigmf-meta or .sigmf")
    if format is not None and implied is not None and format != implied:
        raise DataError(path, f"the extension means {implied} but format {format!r} was asked")
    format = format or implied
    if format == "npz":
        return save_npz(records, path)
    return write_sigmf(records, path)
