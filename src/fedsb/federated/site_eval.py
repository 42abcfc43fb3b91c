"""Federated evaluation: what a site sends about its own split (sums, never logits), pooled.

A site scores the global model on its own validation or test split and sends counts and sums:
correct predictions, the summed loss, per-SNR counts and, for the final scores, the confusion
matrix and the reliability bins (top-label and per class) before and after temperature
scaling. The server adds them up, so every weighted metric equals the pooled evaluation of the
union of the sites' splits: accuracy, per-SNR-bin accuracy and the confusion matrix exactly
(they are counts), loss, ECE, MCE, classwise ECE, Brier and NLL up to float rounding of the
sums. Average precision needs every score and is left out (None).

SNR bins (``signals.summary.snr_bins``) depend on the union's SNRs: one bin per value when it
holds at most 16 distinct values, else 5-dB bins between its extremes. So a site sends its
distinct values with their counts (when it has at most 16), its counts per 5-dB bin aligned at
multiples of 5 dB, and its extremes; the server chooses the pooled bins from those. numpy only:
a deployment's ClientApp answers from kept logits without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..evaluation.metrics import ECE_BINS, Reliability
from ..signals.summary import MAX_GRID_VALUES, SnrAccuracy, snr_bins

if TYPE_CHECKING:
    from ..training.loop import Evaluation

Sums = dict[str, float | list[float]]  # one site's answer (a Flower MetricRecord's content)
SNR_WIDTH = 5.0  # the bin width of training's Evaluation and of the report's per-SNR scores
HIGH_SNR_DB = 10.0


@dataclass(frozen=True)
class SiteAnswers:
    """The sites' answers to one evaluation: sums by client, bytes moved, who did not answer."""

    sums: dict[int, Sums]
    bytes: float  # the global state down to each node that needed it, the sums up
    dropped: dict[str, str] = field(default_factory=dict)  # client -> why it gave no sums

    def row(self) -> dict:
        """Metrics-row keys: which clients were evaluated, the bytes, who was left out."""
        return {
            "evaluated": sorted(self.sums),
            "evaluation_bytes": self.bytes,
            "evaluation_dropped": self.dropped,
        }


def _floats(values) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def aligned_bin(snr: np.ndarray) -> np.ndarray:
    """The k of the bin [5k, 5k + 5) of each finite SNR, by the comparisons binning uses."""
    k = np.floor(snr / SNR_WIDTH)
    k -= SNR_WIDTH * k > snr  # a quotient rounded up across an edge
    k += SNR_WIDTH * (k + 1) <= snr
    return k


def snr_sums(hit: np.ndarray, snr: np.ndarray, prefix: str = "") -> Sums:
    """Per-SNR counts and hits of one site (see the module doc), at or above 10 dB too."""
    snr = np.asarray(snr, dtype=np.float64)
    hit = np.asarray(hit, dtype=np.float64)
    finite = np.isfinite(snr)
    v, h = snr[finite], hit[finite]
    values, inverse = np.unique(v, return_inverse=True)
    grid = values.size <= MAX_GRID_VALUES
    starts, where = np.unique(aligned_bin(v), return_inverse=True)
    high = snr >= HIGH_SNR_DB
    out = {
        "high_count": float(high.sum()),
        "high_correct": float(hit[high].sum()),
        "min": float(v.min()) if v.size else float("nan"),
        "max": float(v.max()) if v.size else float("nan"),
        "many": 0.0 if grid else 1.0,
        "values": _floats(values) if grid else [],
        "value_count": _floats(np.bincount(inverse.ravel(), minlength=values.size)) if grid else [],
        "value_correct": _floats(np.bincount(inverse.ravel(), h, values.size)) if grid else [],
        "bin": _floats(starts),
        "bin_count": _floats(np.bincount(where.ravel(), minlength=starts.size)),
        "bin_correct": _floats(np.bincount(where.ravel(), h, starts.size)),
    }
    return {f"{prefix}snr_{k}": value for k, value in out.items()}


def _log_softmax_true(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(1))
    return z[np.arange(len(labels)), labels] - lse


def split_sums(logits, labels, snr_db, prefix: str = "") -> Sums:
    """A site's sums of one split: records, correct (top-1 of the logits), summed loss, SNRs."""
    labels = np.asarray(labels, dtype=np.int64)
    hit = (np.asarray(logits).argmax(1) == labels) if labels.size else np.zeros(0, bool)
    loss = -_log_softmax_true(logits, labels).sum() if labels.size else 0.0
    out: Sums = {
        f"{prefix}count": float(labels.size),
        f"{prefix}correct": float(hit.sum()),
        f"{prefix}loss": float(loss),
    }
    return {**out, **snr_sums(hit, snr_db, prefix)}


def _get(part: Mapping, key: str) -> np.ndarray:
    return np.asarray(part[key], dtype=np.float64)


def _grid_bins(parts: Sequence[Mapping], p: str, values: np.ndarray) -> SnrAccuracy:
    edges, labels = snr_bins(values, SNR_WIDTH)
    count, correct = np.zeros(values.size), np.zeros(values.size)
    for part in parts:
        at = np.searchsorted(values, _get(part, f"{p}snr_values"))
        np.add.at(count, at, _get(part, f"{p}snr_value_count"))
        np.add.at(correct, at, _get(part, f"{p}snr_value_correct"))
    return _snr_accuracy(edges, labels, count, correct)


def _width_bins(parts: Sequence[Mapping], p: str) -> SnrAccuracy:
    low = min(float(part[f"{p}snr_min"]) for part in parts)
    high = max(float(part[f"{p}snr_max"]) for part in parts)
    # more than MAX_GRID_VALUES distinct values with the union's extremes: the same edges
    edges, labels = snr_bins(np.linspace(low, high, MAX_GRID_VALUES + 1), SNR_WIDTH)
    count, correct = np.zeros(len(labels)), np.zeros(len(labels))
    for part in parts:
        starts = SNR_WIDTH * _get(part, f"{p}snr_bin")
        at = np.clip(np.searchsorted(edges, starts, side="right") - 1, 0, len(labels) - 1)
        np.add.at(count, at, _get(part, f"{p}snr_bin_count"))
        np.add.at(correct, at, _get(part, f"{p}snr_bin_correct"))
    return _snr_accuracy(edges, labels, count, correct)


def _snr_accuracy(edges, labels, count: np.ndarray, correct: np.ndarray) -> SnrAccuracy:
    accuracy = tuple(float(c / n) if n else float("nan") for c, n in zip(correct, count))
    return SnrAccuracy(np.asarray(edges), tuple(labels), tuple(int(n) for n in count), accuracy)


def pool_snr(parts: Sequence[Mapping], prefix: str = "") -> SnrAccuracy:
    """The per-SNR-bin accuracy of the union of the sites' records (``accuracy_by_snr``'s)."""
    seen = [p for p in parts if len(p[f"{prefix}snr_bin"])]
    if not seen:
        return SnrAccuracy(np.zeros(0), (), (), ())
    if not any(p[f"{prefix}snr_many"] for p in seen):
        values = np.unique(np.concatenate([_get(p, f"{prefix}snr_values") for p in seen]))
        if values.size <= MAX_GRID_VALUES:
            return _grid_bins(seen, prefix, values)
    return _width_bins(seen, prefix)


def _total(parts: Sequence[Mapping], key: str) -> float:
    return float(sum(float(p[key]) for p in parts))


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def pool_evaluation(parts: Sequence[Mapping], prefix: str = "") -> Evaluation:
    """The pooled ``training.loop.Evaluation`` of the sites' ``split_sums`` (metrics-row keys)."""
    from ..training.loop import Evaluation

    n = _total(parts, f"{prefix}count")
    bins = pool_snr(parts, prefix)
    return Evaluation(
        loss=_ratio(_total(parts, f"{prefix}loss"), n),
        accuracy=_ratio(_total(parts, f"{prefix}correct"), n),
        accuracy_high_snr=_ratio(
            _total(parts, f"{prefix}snr_high_correct"), _total(parts, f"{prefix}snr_high_count")
        ),
        snr_labels=bins.labels,
        snr_accuracy=bins.accuracy,
        snr_counts=bins.counts,
    )


def bin_sums(confidence, correct, bins: int = ECE_BINS) -> np.ndarray:
    """(3, bins + 1): count, summed confidence, summed hits per bin of ``metrics.reliability``."""
    conf = np.asarray(confidence, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins)
    return np.stack(
        [
            np.bincount(index, minlength=bins + 1).astype(np.float64),
            np.bincount(index, conf, minlength=bins + 1),
            np.bincount(index, np.asarray(correct, dtype=np.float64), minlength=bins + 1),
        ]
    )


def reliability_of(sums: np.ndarray) -> Reliability:
    """The ``metrics.Reliability`` of summed ``bin_sums``."""
    count, conf, hit = np.asarray(sums, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf, mean_hit = conf / count, hit / count
    lower = np.linspace(0.0, 1.0, count.size)
    return Reliability(lower, np.nan_to_num(mean_conf), np.nan_to_num(mean_hit), count)
