"""Fixtures for CLI tests: small RecordSets and hand-made SigMF recordings (as tests/io has)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedsb.signals.recordset import RecordSet


def small_records(n: int = 6, length: int = 32, classes: tuple[str, ...] = ("bpsk", "qpsk")):
    """A tiny RecordSet with an SNR column (enough for `data inspect`)."""
    rng = np.random.default_rng(0)
    iq = (rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length))).astype(
        np.complex64
    )
    labels = (np.arange(n) % len(classes)).astype(np.int64)
    meta = {"snr_db": rng.uniform(-10, 20, n)}
    return RecordSet(iq, labels, classes, meta, 1.0, {"seed": 0})


@pytest.fixture
def write_raw_sigmf(tmp_path: Path) -> Callable[..., Path]:
    """Write a recording: raw cf32 samples plus metadata with the given annotations."""

    def write(
        data: np.ndarray,
        annotations: list[dict[str, Any]],
        name: str = "rec",
        **global_fields: Any,
    ) -> Path:
        (tmp_path / f"{name}.sigmf-data").write_bytes(data.astype(np.complex64).tobytes())
        glob = {"core:datatype": "cf32_le", "core:version": "1.2.6", **global_fields}
        meta = {"global": glob, "captures": [{"core:sample_start": 0}], "annotations": annotations}
        meta_path = tmp_path / f"{name}.sigmf-meta"
        meta_path.write_text(json.dumps(meta))
        return meta_path

    return write
