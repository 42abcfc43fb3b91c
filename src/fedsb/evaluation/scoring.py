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

from ..io.cache import atomic_file
from ..signals.summary import snr_bins
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
        return m.softmax(self.logits, temperature)

    def subset(self, mask: np.ndarray) -> Predictions:
        return Predictions(
            self.logits[mask], self.labels[mask], self.snr_db[mask], self.class_names
        )


def per_snr(correct: np.ndarray, snr_db: np.ndarray, width: float = 5.0) -> list[dict]:
    """Accuracy per SNR bin (a bin per value on a grid such as RadioML's, else ``width`` dB)."""
    snr = np.asarray(snr_db, dtype=np.float64)
    edges, names = snr_bins(snr, width)
    rows = []
    finite = np.isfinite(snr)
    index = np.clip(np.searchsorted(edges, snr, side="right") - 1, 0, max(len(names) - 1, 0))
    for j, name in enumerate(names):
        inside = finite & (index == j)
        n = int(inside.sum())
        rows.append(
            {
                "snr": name,
                "low_db": float(edges[j]),
                "high_db": float(edges[j + 1]),
                "count": n,
                "accuracy": float(correct[inside].mean()) if n else None,
            }
        )
    return rows


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


PREDICTIONS_FILE = "predictions.npz"  # test-set logits of a run, for figures and re-scoring
EVALUATION_FILE = "evaluation.json"  # score() of the test set and the calibration fit


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


def load_predictions(path) -> Predictions:
    with np.load(path, allow_pickle=False) as z:
        return Predictions(
            z["logits"].astype(np.float64),
            z["labels"],
            z["snr_db"].astype(np.float64),
            tuple(str(c) for c in z["class_names"]),
        )
