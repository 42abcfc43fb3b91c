"""Recordings with known bursts for the detector and ``fedsb classify`` tests.

Clean, unit-power generator records (no noise) are scaled to ``snr_db`` over a complex white
noise floor of power ``noise`` and placed at random, non-overlapping positions: the truth is
exact by construction.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from fedsb.signals import generate
from fedsb.signals.config import GeneratorConfig


def noise(n: int, power: float, rng: np.random.Generator) -> np.ndarray:
    """Complex white Gaussian noise of mean power ``power``."""
    scale = np.sqrt(power / 2)
    return (scale * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)


def burst_recording(
    classes: tuple[str, ...],
    per_class: int,
    length: int,
    snr_db: float | tuple[float, float] = 15.0,
    gaps: tuple[int, int] = (600, 3000),
    seed: int = 0,
    power: float = 1e-3,
    generator: GeneratorConfig | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(samples, truth [{start, count, label, snr_db}]) of ``per_class`` bursts per class.

    ``generator``: the generator settings (default: GeneratorConfig()); length and noise are
    replaced.
    """
    cfg = replace(generator or GeneratorConfig(), length=length, noise_enabled=False)
    records = generate(cfg, list(classes), per_class, seed)
    rng = np.random.default_rng(seed)
    lo, hi = (snr_db, snr_db) if isinstance(snr_db, int | float) else snr_db
    pieces, truth, pos = [], [], 0
    for i in range(len(records)):
        gap = int(rng.integers(gaps[0], gaps[1] + 1))
        snr = float(rng.uniform(lo, hi))
        pieces.append(noise(gap, power, rng))
        burst = records.iq[i] * np.sqrt(power * 10 ** (snr / 10)) + noise(length, power, rng)
        pieces.append(burst.astype(np.complex64))
        pos += gap
        truth.append(
            {"start": pos, "count": length, "label": records.label_names[i], "snr_db": snr}
        )
        pos += length
    pieces.append(noise(int(gaps[1]), power, rng))
    return np.concatenate(pieces), truth


def write_pair(
    stem: Path, iq: np.ndarray, annotations: list[dict[str, Any]] | None = None, **fields: Any
) -> Path:
    """A cf32_le .sigmf-meta/.sigmf-data pair; returns the metadata path."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{stem}.sigmf-data").write_bytes(np.asarray(iq, np.complex64).tobytes())
    glob = {"core:datatype": "cf32_le", "core:version": "1.0.0", "core:sample_rate": 1e6}
    meta = {
        "global": {**glob, **fields},
        "captures": [{"core:sample_start": 0, "core:frequency": 1e8}],
        "annotations": annotations or [],
    }
    path = Path(f"{stem}.sigmf-meta")
    path.write_text(json.dumps(meta))
    return path


def matched(truth: list[dict], found: list[tuple[int, int]], share: float = 0.5) -> list[bool]:
    """Per true burst: some detection overlaps it by ``share`` of both lengths."""
    out = []
    for t in truth:
        ts, te = t["start"], t["start"] + t["count"]
        out.append(any(min(te, s + n) - max(ts, s) >= share * max(t["count"], n) for s, n in found))
    return out
