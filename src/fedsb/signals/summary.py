"""Counts per class and SNR bin: what ``fedsb data generate`` and ``inspect`` print."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .recordset import RecordSet

MAX_GRID_VALUES = 16  # up to this many distinct SNRs get one column each (RadioML-style grids)


@dataclass(frozen=True)
class ClassSnrTable:
    """Record counts, rows = classes, columns = SNR bins (then 'clean' and 'n/a' if present)."""

    class_names: tuple[str, ...]
    bin_labels: tuple[str, ...]
    counts: np.ndarray  # (K, B) int64


def snr_bins(snr_db: np.ndarray, width: float = 5.0) -> tuple[np.ndarray, list[str]]:
    """Bin edges and labels: one bin per value on a small grid, else bins of ``width`` dB."""
    finite = snr_db[np.isfinite(snr_db)]
    if finite.size == 0:
        return np.zeros(0), []
    values = np.unique(finite)
    if len(values) <= MAX_GRID_VALUES:
        half = np.diff(values).min() / 2 if len(values) > 1 else 0.5
        return np.append(values - half, values[-1] + half), [f"{v:g}" for v in values]
    lo = np.floor(values[0] / width) * width
    hi = max(np.ceil(values[-1] / width) * width, lo + width)
    edges = np.arange(lo, hi + width / 2, width)
    return edges, [f"[{a:g},{b:g})" for a, b in zip(edges[:-1], edges[1:])]


@dataclass(frozen=True)
class SnrAccuracy:
    """Accuracy per SNR bin (``snr_bins``): training's Evaluation and the report's scores."""

    edges: np.ndarray  # (B + 1,)
    labels: tuple[str, ...]
    counts: tuple[int, ...]
    accuracy: tuple[float, ...]  # NaN for an empty bin


def accuracy_by_snr(correct: np.ndarray, snr_db: np.ndarray, width: float = 5.0) -> SnrAccuracy:
    """Mean of ``correct`` (one per record) per SNR bin; noise-free or unknown SNRs are in none.

    A record on an inner edge belongs to the upper bin, one on the last edge to the last bin.
    """
    snr = np.asarray(snr_db, dtype=np.float64)
    edges, labels = snr_bins(snr, width)
    index = np.clip(np.searchsorted(edges, snr, side="right") - 1, 0, max(len(labels) - 1, 0))
    inside = [np.isfinite(snr) & (index == j) for j in range(len(labels))]
    return SnrAccuracy(
        edges,
        tuple(labels),
        tuple(int(m.sum()) for m in inside),
        tuple(float(correct[m].mean()) if m.any() else float("nan") for m in inside),
    )


def class_snr_table(records: RecordSet, width: float = 5.0) -> ClassSnrTable:
    """Count records per (class, SNR bin).

    Noise-free records ('clean') and unknown SNR ('n/a') get their own columns.
    """
    snr = records.snr_db
    edges, labels = snr_bins(snr, width)
    finite = np.isfinite(snr)
    columns = []
    if len(edges):
        idx = np.clip(np.searchsorted(edges, snr[finite], side="right") - 1, 0, len(labels) - 1)
        columns = [np.flatnonzero(finite)[idx == j] for j in range(len(labels))]
    for mask, label in ((np.isposinf(snr), "clean"), (np.isnan(snr), "n/a")):
        if mask.any():
            columns.append(np.flatnonzero(mask))
            labels.append(label)
    k = len(records.class_names)
    counts = np.zeros((k, len(columns)), np.int64)
    for j, rows in enumerate(columns):  # a loop over bins, not records
        counts[:, j] = np.bincount(records.labels[rows], minlength=k)
    return ClassSnrTable(records.class_names, tuple(labels), counts)
