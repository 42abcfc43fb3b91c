"""Everything a report says about one set of predictions, as one JSON-ready dict.

``score(predictions, temperature)`` gives accuracy overall, at SNR >= 10 dB, per SNR bin and per
class; the confusion matrix; per-class precision, recall, F1 and average precision (one vs rest on
the calibrated probabilities); ECE, MCE, classwise ECE, Brier and NLL before (T = 1) and after
temperature scaling. The temperature is fitted elsewhere, on validation data, never on these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io.cache import atomic_file, read_npz_members
from ..signals.summary import accuracy_by_snr
from . import metrics as m

HIGH_SNR_DB = 10.0


@dataclass(frozen=True)
class Predictions:
    """Logits of one model on one labelled set, with each record's SNR (NaN if unknown)."""

    logits: np.ndarray  # (N, K)
    labels: np.ndarray  # (N,)
    snr_db: np.ndarray  # (N,)
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        n, k = np.shape(self.logits)
        if np.shape(self.labels) != (n,) or np.shape(self.snr_db) != (n,):
            raise ValueError(
                f"logits {np.shape(self.logits)}, labels {np.shape(self.labels)} and "
                f"snr_db {np.shape(self.snr_db)} disagree"
            )
        if k != len(self.class_names):
            raise ValueError(f"{k} logit columns for {len(self.class_names)} class names")

    def probs(self, temperature: float = 1.0) -> np.ndarray:
        """Softmax of the logits at ``temperature``."""
        return m.softmax(self.logits, temperature)

    def subset(self, mask: np.ndarray) -> Predictions:
        """The predictions where ``mask`` is true."""
        return Predictions(
            self.logits[mask], self.labels[mask], self.snr_db[mask], self.class_names
        )


def per_snr(correct: np.ndarray, snr_db: np.ndarray, width: float = 5.0) -> list[dict]:
    """Accuracy per SNR bin (a bin per value on a grid such as RadioML's, else ``width`` dB)."""
    bins = accuracy_by_snr(correct, snr_db, width)
    return [
        {
            "snr": name,
            "low_db": float(bins.edges[j]),
            "high_db": float(bins.edges[j + 1]),
            "count": n,
            "accuracy": acc if n else None,
        }
        for j, (name, n, acc) in enumerate(zip(bins.labels, bins.counts, bins.accuracy))
    ]


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def score(pred: Predictions, temperature: float = 1.0) -> dict:
    """The full evaluation of ``pred`` (see the module doc); NaN-free (``None`` = undefined)."""
    k = len(pred.class_names)
    raw, scaled = pred.probs(1.0), pred.probs(temperature)
    predicted = scaled.argmax(1)  # T > 0 does not change the argmax
    correct = (predicted == pred.labels).astype(np.float64)
    confusion = m.confusion_matrix(pred.labels, predicted, k)
    precision, recall, f1 = m.precision_recall(confusion)
    per_class = {}
    for c, name in enumerate(pred.class_names):
        positive = pred.labels == c
        per_class[name] = {
            "support": int(positive.sum()),
            "accuracy": _finite_or_none(recall[c]),  # per-class accuracy is its recall
            "precision": _finite_or_none(precision[c]),
            "f1": _finite_or_none(f1[c]),
            "average_precision": _finite_or_none(m.average_precision(scaled[:, c], positive)),
        }
    aps = [v["average_precision"] for v in per_class.values() if v["average_precision"] is not None]
    high = pred.snr_db >= HIGH_SNR_DB
    return {
        "count": int(len(pred.labels)),
        "accuracy": _mean_or_none(correct),
        "accuracy_snr_ge_10": _mean_or_none(correct[high]),
        "mean_average_precision": float(np.mean(aps)) if aps else None,
        "per_snr": per_snr(correct, pred.snr_db),
        "per_class": per_class,
        "class_names": list(pred.class_names),
        "confusion": confusion.tolist(),
        "temperature": float(temperature),
        "calibration_before": m.calibration_summary(raw, pred.labels),
        "calibration_after": m.calibration_summary(scaled, pred.labels),
    }


_ARRAYS = ("logits", "labels", "snr_db", "class_names")


def save_predictions(pred: Predictions, path) -> None:
    """Write ``pred`` as an npz (atomically: a temporary file, then a rename)."""
    with atomic_file(Path(path)) as handle:
        np.savez_compressed(
            handle,
            logits=pred.logits.astype(np.float32),
            labels=pred.labels.astype(np.int64),
            snr_db=pred.snr_db.astype(np.float32),
            class_names=np.array(pred.class_names),
        )


def _checked(z: dict[str, np.ndarray], path: Path) -> Predictions:
    """Predictions of the arrays, or a DataError saying which one is wrong."""
    logits, labels, snr, names = (z[k] for k in _ARRAYS)
    if logits.ndim != 2 or logits.dtype.kind not in "fiu" or not logits.size:
        raise DataError(path, f"logits must be records x classes numbers, got {logits.shape}")
    if not np.isfinite(logits).all():
        raise DataError(path, "logits hold NaN or Inf")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(path, f"labels must be integers, one per record, got {labels.dtype}")
    if names.ndim != 1 or names.dtype.kind != "U":
        raise DataError(path, f"class_names must be a list of strings, got {names.dtype}")
    if snr.ndim != 1 or snr.dtype.kind not in "fiu":
        raise DataError(path, f"snr_db must be numbers, one per record, got {snr.dtype}")
    if labels.size and not 0 <= labels.min() <= labels.max() < len(names):
        raise DataError(path, f"labels must lie in 0..{len(names) - 1} (one per class name)")
    try:
        return Predictions(
            logits.astype(np.float64),
            labels.astype(np.int64),
            snr.astype(np.float64),
            tuple(str(c) for c in names),
        )
    except ValueError as exc:
        raise DataError(path, str(exc)) from None


def load_predictions(path) -> Predictions:
    """The predictions a run saved; a hostile or broken file is a one-line DataError."""
    path = Path(path)
    arrays = read_npz_members(path, required=_ARRAYS, kind="predictions file")
    return _checked(arrays, path)
