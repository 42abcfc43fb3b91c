"""Streaming SigMF reads: every datatype as sigmf-python reads it, archives, and refusals."""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from sigmf import sigmffile

from fedsb.io.sigmf_stream import open_recording

TYPES = ["cf32_le", "cf64_be", "ci16_le", "ci8", "cu8", "cu16_be", "ri16_le", "rf32_le", "ru8"]


def _write(
    tmp_path: Path, datatype: str, channels: int = 1, n: int = 50, name: str = "", **glob
) -> Path:
    """A pair with random samples of ``datatype``; returns the metadata path."""
    kind, num, bits, order = re.fullmatch(r"(c|r)(f|i|u)(\d+)(_be|_le)?", datatype).groups()
    dtype = np.dtype(f"{'>' if order == '_be' else '<'}{num}{int(bits) // 8}")
    rng = np.random.default_rng(0)
    values = n * channels * (2 if kind == "c" else 1)
    if num == "f":
        raw = rng.standard_normal(values).astype(dtype)
    else:
        lim = np.iinfo(dtype)
        raw = rng.integers(lim.min, lim.max, values, endpoint=True).astype(dtype)
    stem = tmp_path / (name or f"rec_{datatype}_{channels}")
    Path(f"{stem}.sigmf-data").write_bytes(raw.tobytes())
    meta = {
        "global": {
            "core:datatype": datatype,
            "core:version": "1.0.0",
            "core:num_channels": channels,
            **glob,
        },
        "captures": [{"core:sample_start": 0}],
        "annotations": [],
    }
    Path(f"{stem}.sigmf-meta").write_text(json.dumps(meta))
    return Path(f"{stem}.sigmf-meta")


@pytest.mark.parametrize("datatype", TYPES)
@pytest.mark.parametrize("channels", [1, 2])
def test_reads_equal_sigmf_python_channel_0(tmp_path, datatype, channels):
    path = _write(tmp_path, datatype, channels)
    rec = open_recording(path)
    want = sigmffile.fromfile(str(path)).read_samples()
    want = (want[:, 0] if want.ndim == 2 else want).astype(np.complex64)
    assert rec.total == 50
    np.testing.assert_allclose(rec.read(0, 50), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rec.read(7, 11), want[7:18], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(np.concatenate(list(rec.chunks(8))), rec.read(0, 50))


def test_an_uncompressed_archive_is_read_in_place(tmp_path):
    path = _write(tmp_path, "cf32_le", name="x")
    sf = sigmffile.fromfile(str(path))
    archive = Path(sf.archive(str(tmp_path / "x.sigmf")))
    rec = open_recording(archive)
    assert rec.archive and rec.stem == "x" and rec.offset > 0
    np.testing.assert_array_equal(rec.read(3, 20), open_recording(path).read(3, 20))


def _gz_archive(tmp_path: Path) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("r/r.sigmf-meta", b"{}"), ("r/r.sigmf-data", bytes(16))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "r.sigmf.gz"
    path.write_bytes(gzip.compress(buffer.getvalue()))
    return path


def _edit(path: Path, **changes) -> Path:
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        part, _, field = key.partition("__")
        if part in ("annotations", "captures"):
            meta[part] = value
        else:
            meta[part][field] = value
    path.write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", r"file not found"),
        ("not-sigmf", r"not a SigMF recording \(expected .sigmf-meta, .sigmf-data or .sigmf\)"),
        ("gz", r"a compressed archive cannot be read in chunks; unpack it \(tar xf\)"),
        ("no-data", r"no data file: expected rec_cf32_le_1\.sigmf-data next to it"),
        ("truncated", r"truncated data file: 401 bytes is not a whole number of cf32_le samples"),
        ("empty", r"empty recording: the data file holds 0 samples"),
        ("beyond", r"annotation 0 \('bpsk'\) ends at sample 60 but the data holds only 50"),
        ("dataset", r"a non-conforming dataset \(core:dataset\)"),
        ("header", r"a non-conforming dataset \(core:header_bytes\)"),
        ("datatype", r"unknown core:datatype 'cf12' \(expected e\.g\. cf32_le\)"),
    ],
)
def test_bad_recordings_are_one_line_errors(tmp_path, data_error, case, message):
    path = _write(tmp_path, "cf32_le")
    data = path.with_suffix(".sigmf-data")
    where = path
    if case == "missing":
        path = where = tmp_path / "nope.sigmf-meta"
    elif case == "not-sigmf":
        path = where = data.with_suffix(".bin")
        path.write_bytes(b"")
    elif case == "gz":
        path = where = _gz_archive(tmp_path)
    elif case == "no-data":
        data.unlink()
    elif case in ("truncated", "empty"):
        data.write_bytes(bytes(401 if case == "truncated" else 0))
        where = data
    elif case == "beyond":
        _edit(
            path,
            annotations=[{"core:sample_start": 10, "core:sample_count": 50, "core:label": "bpsk"}],
        )
    elif case == "dataset":
        _edit(path, **{"global__core:dataset": "other.bin"})
    elif case == "header":
        _edit(path, captures=[{"core:sample_start": 0, "core:header_bytes": 16}])
    elif case == "datatype":
        _edit(path, **{"global__core:datatype": "cf12"})
    with data_error(where, message):
        open_recording(path)


def test_nan_samples_and_reads_outside_are_refused(tmp_path, data_error):
    path = _write(tmp_path, "cf32_le")
    data = path.with_suffix(".sigmf-data")
    raw = np.fromfile(data, np.complex64)
    raw[33] = np.nan
    raw.tofile(data)
    rec = open_recording(path)
    with data_error(data, r"sample 33 is NaN or Inf"):
        rec.read(30, 10)
    with data_error(data, r"samples 45\.\.55 are outside 0\.\.50"):
        rec.read(45, 10)
