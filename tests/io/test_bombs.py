"""Resource bombs, each read in a child whose address space is capped (see ``capped_python``).

A reader that allocated what these files claim would die there with a MemoryError; each test
asserts the budget error instead, and that the child never ran out of memory.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np

from fedsb.io.safe_pickle import MAX_DEPTH

from ..cli.hostile import FACTORIES

SMALL = {"FEDSB_INPUT_BUDGET": "64M"}


def _refused(result, problem: str) -> None:
    """The child printed one budget error line and hit no MemoryError."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "MemoryError" not in output and "LOADED" not in output, output
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR "), output
    assert problem in lines[0], output


def _npz_bomb(path: Path) -> Path:
    """An npz whose iq member header claims 10^12 complex64 samples (8 TB) in 64 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        header, {"descr": "<c8", "fortran_order": False, "shape": (10**12,)}
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("iq.npy", header.getvalue() + bytes(64))
        archive.writestr("labels.npy", _npy(np.zeros(1, np.int64)))
    return path


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_npz_member_claiming_terabytes(tmp_path: Path, capped_python) -> None:
    path = _npz_bomb(tmp_path / "bomb.npz")
    call = f"fedsb.io.load.load_records({str(path)!r})"
    _refused(capped_python(call, **SMALL), "array 'iq' claims 8.0 TB (10^12 complex64 values)")
    # with the budget out of the way the header still cannot be backed by the member's bytes
    lifted = capped_python(call, FEDSB_INPUT_BUDGET="100T")
    _refused(lifted, "array 'iq' claims 8,000,000,000,000 bytes in ")
    # the cap is real: allocating what the header says dies in the child
    control = capped_python("__import__('numpy').ones(10**12, 'c8')", FEDSB_INPUT_BUDGET="100T")
    assert control.returncode != 0 and "MemoryError" in control.stderr, control.stderr


def _sigmf_gz_bomb(path: Path, gib: int) -> Path:
    """A .sigmf.gz of a few MB whose data member unpacks to ``gib`` GiB of zeros.

    Concatenated gzip members are one valid stream: one compressed MiB of zeros, repeated.
    """
    meta = {"global": {"core:datatype": "cf32_le", "core:version": "1.2.6"}, "annotations": []}
    meta["annotations"] = [{"core:sample_start": 0, "core:sample_count": 64, "core:label": "bpsk"}]
    text = json.dumps(meta).encode()
    head = tarfile.TarInfo("rec/rec.sigmf-meta")
    head.size = len(text)
    data = tarfile.TarInfo("rec/rec.sigmf-data")
    data.size = gib * 2**30
    prefix = head.tobuf() + text + bytes(-len(text) % 512) + data.tobuf()
    zeros = gzip.compress(bytes(2**20), compresslevel=9)
    with open(path, "wb") as out:
        out.write(gzip.compress(prefix))
        for _ in range(gib * 1024):
            out.write(zeros)
        out.write(gzip.compress(bytes(10240)))
    return path


def test_sigmf_gz_expanding_to_gigabytes(tmp_path: Path, capped_python) -> None:
    path = _sigmf_gz_bomb(tmp_path / "bomb.sigmf.gz", gib=5)
    assert path.stat().st_size < 8 * 2**20
    with tarfile.open(path, "r|gz") as archive:  # what it claims, read from its first headers
        assert [archive.next().size, archive.next().size][1] == 5 * 2**30
    start = time.monotonic()
    result = capped_python(f"fedsb.io.read_sigmf({str(path)!r}, 64)", **SMALL)
    _refused(result, "the archive's members unpack to 5.4 GB, over the 64.0 MB input budget")
    assert time.monotonic() - start < 20  # refused at the header, not after unpacking


def test_hdf5_declaring_ten_million_records(tmp_path: Path, capped_python) -> None:
    path = FACTORIES["bomb.h5"](tmp_path)  # the bad-input corpus's file: 10^7 declared records
    assert path.stat().st_size < 1_000_000
    result = capped_python(f"fedsb.io.load.load_records({str(path)!r})", **SMALL)
    _refused(result, "the selection claims 81.9 GB (10,240,000,000 complex64 samples)")


def test_pickles_that_crash_or_exhaust_stock_pickle(tmp_path: Path, capped_python) -> None:
    deep = tmp_path / "deep.pkl"  # stock pickle segfaults hashing this key (C recursion)
    deep.write_bytes(b"\x80\x02}K\x01" + b"\x85" * 1_000_000 + b"K\x02s.")
    result = capped_python(f"fedsb.io.read_rml2016({str(deep)!r})")
    _refused(result, f"refused to load: the pickle nests objects deeper than {MAX_DEPTH} levels")
    big = tmp_path / "big.pkl"  # BINBYTES8: stock pickle allocates the claimed 2^50 bytes
    big.write_bytes(b"\x80\x04\x8e" + (2**50).to_bytes(8, "little") + b"abc.")
    result = capped_python(f"fedsb.io.read_rml2016({str(big)!r})")
    _refused(result, "not a readable pickle (an item claims 1125899906842624 bytes")
