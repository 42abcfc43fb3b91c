"""Fixtures that build small RecordSets and write tiny files in the exact external formats."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from fedsb.errors import DataError
from fedsb.io.labels import RML2016_NAMES, RML2018_NAMES
from fedsb.signals.recordset import RecordSet


def random_records(
    n: int = 12,
    length: int = 32,
    classes: tuple[str, ...] = ("bpsk", "qpsk", "16qam"),
    seed: int = 0,
    sample_rate: float = 1e6,
) -> RecordSet:
    """A RecordSet with every kind of meta column the writers must carry."""
    rng = np.random.default_rng(seed)
    iq = rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length))
    snr = rng.uniform(-20, 30, n)
    snr[::5] = np.nan
    mod_index = rng.random(n).astype(np.float32)
    mod_index[1] = np.inf
    meta = {
        "snr_db": snr,
        "sps": rng.integers(2, 9, n),
        "mod_index": mod_index,
        "flag": rng.random(n) > 0.5,
    }
    labels = rng.integers(0, len(classes), n).astype(np.int64)
    return RecordSet(iq.astype(np.complex64), labels, classes, meta, sample_rate, {"seed": seed})


def assert_same(a: RecordSet, b: RecordSet) -> None:
    """Exact equality of everything a reader must round-trip (NaN equal to NaN)."""
    assert a.iq.dtype == b.iq.dtype == np.complex64
    assert np.array_equal(a.iq, b.iq)
    assert a.labels.dtype == b.labels.dtype == np.int64
    assert np.array_equal(a.labels, b.labels)
    assert a.class_names == b.class_names
    assert set(a.meta) == set(b.meta)
    for key in a.meta:
        assert a.meta[key].dtype == b.meta[key].dtype, key
        assert np.array_equal(a.meta[key], b.meta[key], equal_nan=a.meta[key].dtype.kind == "f")
    assert a.sample_rate == b.sample_rate


def raises_data_error(path: Path | str, problem: str) -> Any:
    """pytest.raises for a DataError whose message is ONE line: "<path>: ...<problem>..."."""
    pattern = r"\A" + re.escape(str(path)) + r": [^\n]*" + problem + r"[^\n]*\Z"
    return pytest.raises(DataError, match=pattern)


@pytest.fixture
def make_records() -> Callable[..., RecordSet]:
    return random_records


@pytest.fixture
def same() -> Callable[[RecordSet, RecordSet], None]:
    return assert_same


@pytest.fixture
def data_error() -> Callable[[Path | str, str], Any]:
    """``with data_error(path, "problem") as excinfo:`` asserts path and problem in one line."""
    return raises_data_error


@pytest.fixture
def write_raw_sigmf(tmp_path: Path) -> Callable[..., Path]:
    """Write a hand-made recording: raw data bytes plus metadata (for datatype/error cases)."""

    def write(
        data: bytes | np.ndarray,
        annotations: list[dict[str, Any]] | None = None,
        name: str = "rec",
        directory: Path | None = None,
        meta_text: str | None = None,
        **global_fields: Any,
    ) -> Path:
        directory = directory or tmp_path
        directory.mkdir(parents=True, exist_ok=True)
        raw = data.tobytes() if isinstance(data, np.ndarray) else data
        (directory / f"{name}.sigmf-data").write_bytes(raw)
        glob = {"core:datatype": "cf32_le", "core:version": "1.2.6", **global_fields}
        glob = {k: v for k, v in glob.items() if v is not None}
        meta = {
            "global": glob,
            "captures": [{"core:sample_start": 0}],
            "annotations": annotations if annotations is not None else [],
        }
        meta_path = directory / f"{name}.sigmf-meta"
        meta_path.write_text(meta_text if meta_text is not None else json.dumps(meta))
        return meta_path

    return write


@pytest.fixture
def rml2016_file(tmp_path: Path) -> Callable[..., Path]:
    """A RML2016.10a-style pickle: protocol 2, dict[(mod, snr)] -> float32 [n, 2, 128]."""

    def write(
        mods: tuple[str, ...] = RML2016_NAMES,
        snrs: tuple[int, ...] = (-20, 0, 18),
        n: int = 3,
        length: int = 128,
        name: str = "RML2016.10a_dict.pkl",
    ) -> Path:
        rng = np.random.default_rng(1)
        data = {
            (m, s): rng.standard_normal((n, 2, length)).astype(np.float32)
            for m in mods
            for s in snrs
        }
        path = tmp_path / name
        with open(path, "wb") as handle:
            pickle.dump(data, handle, protocol=2)
        return path

    return write


@pytest.fixture
def rml2018_file(tmp_path: Path) -> Callable[..., Path]:
    """A GOLD_XYZ_OSC-style HDF5: X [N, L, 2] float32, Y one-hot [N, 24], Z [N, 1] SNR."""

    def write(n: int = 48, length: int = 64, name: str = "GOLD_XYZ_OSC.0001_1024.hdf5") -> Path:
        rng = np.random.default_rng(2)
        cols = np.arange(n) % len(RML2018_NAMES)
        y = np.zeros((n, len(RML2018_NAMES)), dtype=np.int64)
        y[np.arange(n), cols] = 1
        path = tmp_path / name
        with h5py.File(path, "w") as handle:
            handle["X"] = rng.standard_normal((n, length, 2)).astype(np.float32)
            handle["Y"] = y
            handle["Z"] = (np.arange(n) % 26 * 2 - 20).reshape(n, 1).astype(np.int64)
        return path

    return write


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``budget("64M")`` sets FEDSB_INPUT_BUDGET for this test only."""
    return lambda value: monkeypatch.setenv("FEDSB_INPUT_BUDGET", value)


#: Address space a reader may add after the imports, in the memory-capped child (1.5 GB).
HEADROOM = 1536 * 2**20
_CAPPED = """
import resource, sys
import fedsb.io, fedsb.io.load, h5py, sigmf  # numpy, numba and BLAS reserve their share first
from fedsb.errors import FedsbError
size = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (size + {headroom}, size + {headroom}))
try:
    {call}
    print("LOADED")
except FedsbError as exc:
    print("ERROR", exc)
"""


@pytest.fixture
def capped_python(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``call`` (one line of Python) in a child whose address space is capped at what the
    imports need plus HEADROOM, so a reader that allocates what a bomb claims dies there (as a
    MemoryError) instead of swapping this machine; the pytest process is never limited."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc to measure the child's address space")

    def run(call: str, headroom: int = HEADROOM, **env: str) -> subprocess.CompletedProcess:
        code = _CAPPED.format(headroom=headroom, call=call)
        return subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, **env},
            timeout=120,
        )

    return run
