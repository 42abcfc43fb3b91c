"""The final scores of a run whose data stay at the sites, from the sites' sums.

``score_sums`` is a site's answer to the final evaluation (its test split, the final global
model, at T = 1 and at the fitted temperature); ``pool_score`` adds the answers up into the
dict ``evaluation.scoring.score`` gives for pooled predictions, and ``client_row`` scores one
site's answer for ``evaluation.json``'s per-client list. The reliability bins are kept in the
dict (``reliability_before``/``_after``) so the report can draw the reliability diagram without
predictions. numpy only (see ``site_eval``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..evaluation.metrics import ECE_BINS, EPS, confusion_matrix, precision_recall, softmax
from .site_eval import (
    Sums,
    bin_sums,
    pool_snr,
    reliability_of,
    snr_sums,
    split_sums,
)

EVAL, SCORE = "eval.", "score."  # the row's test scores | evaluation.json's
BEFORE, AFTER = "before.", "after."


def _flat(values) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def calibration_sums(probs: np.ndarray, labels: np.ndarray, prefix: str) -> Sums:
    """Reliability bins (top label and each class), summed Brier and NLL of ``probs``."""
    k = probs.shape[1]
    top = bin_sums(probs.max(1), probs.argmax(1) == labels)
    classwise = [bin_sums(probs[:, c], labels == c) for c in range(k)]
    onehot = np.eye(k)[labels]
    p_true = probs[np.arange(labels.size), labels]
    return {
        f"{prefix}top": _flat(top),
        f"{prefix}classwise": _flat(classwise),
        f"{prefix}brier": float(np.sum((probs - onehot) ** 2)),
        f"{prefix}nll": float(-np.sum(np.log(np.clip(p_true, EPS, 1.0)))),
    }


def score_sums(logits, labels, snr_db, temperature: float) -> Sums:
    """A site's answer to the final evaluation of its test split at ``temperature``.

    ``eval.*``: ``site_eval.split_sums`` (top-1 of the logits, as training's Evaluation);
    ``score.*``: counts, confusion, per-SNR hits and calibration sums as ``score`` computes
    them (the calibrated argmax, T = 1 and T = ``temperature``).
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    k = z.shape[1]
    raw, scaled = softmax(z, 1.0), softmax(z, temperature)
    predicted = scaled.argmax(1)
    hit = predicted == y
    out = split_sums(z, y, snr_db, EVAL)
    out[f"{SCORE}count"], out[f"{SCORE}correct"] = float(y.size), float(hit.sum())
    out[f"{SCORE}confusion"] = _flat(confusion_matrix(y, predicted, k))
    out.update(snr_sums(hit, snr_db, SCORE))
    out.update(calibration_sums(raw, y, SCORE + BEFORE))
    out.update(calibration_sums(scaled, y, SCORE + AFTER))
    return out


def _none_if_nan(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _sum(parts: Sequence[Mapping], key: str, shape: tuple[int, ...] = ()) -> np.ndarray:
    return np.sum([np.asarray(p[key], dtype=np.float64).reshape(shape) for p in parts], axis=0)


def pool_calibration(parts: Sequence[Mapping], prefix: str, k: int) -> dict:
    """ECE, MCE, classwise ECE, Brier and NLL (``calibration_summary``) of the summed bins."""
    n = float(_sum(parts, f"{SCORE}count"))
    top = reliability_of(_sum(parts, f"{prefix}top", (3, ECE_BINS + 1)))
    classes = _sum(parts, f"{prefix}classwise", (k, 3, ECE_BINS + 1))
    return {
        "ece": top.ece,
        "mce": top.mce,
        "classwise_ece": float(np.mean([reliability_of(c).ece for c in classes])),
        "brier": float(_sum(parts, f"{prefix}brier")) / n if n else float("nan"),
        "nll": float(_sum(parts, f"{prefix}nll")) / n if n else float("nan"),
    }


def _reliability_dict(parts: Sequence[Mapping], prefix: str) -> dict:
    rel = reliability_of(_sum(parts, f"{prefix}top", (3, ECE_BINS + 1)))
    return {
        "lower": _flat(rel.lower),
        "confidence": _flat(rel.confidence),
        "accuracy": _flat(rel.accuracy),
        "count": [int(c) for c in rel.count],
    }


def _per_snr(parts: Sequence[Mapping]) -> list[dict]:
    bins = pool_snr(parts, SCORE)
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


def _per_class(confusion: np.ndarray, class_names: Sequence[str]) -> dict:
    precision, recall, f1 = precision_recall(confusion)
    return {
        name: {
            "support": int(confusion[c].sum()),
            "accuracy": _none_if_nan(recall[c]),
            "precision": _none_if_nan(precision[c]),
            "f1": _none_if_nan(f1[c]),
            "average_precision": None,  # needs every score: not computed from sums
        }
        for c, name in enumerate(class_names)
    }


def pool_score(parts: Sequence[Mapping], class_names: Sequence[str], temperature: float) -> dict:
    """``evaluation.scoring.score`` of the union of the sites' test splits, from their sums."""
    k = len(class_names)
    n = float(_sum(parts, f"{SCORE}count"))
    confusion = _sum(parts, f"{SCORE}confusion", (k, k)).astype(np.int64)
    high = float(_sum(parts, f"{SCORE}snr_high_count"))
    before = pool_calibration(parts, SCORE + BEFORE, k)
    after = pool_calibration(parts, SCORE + AFTER, k)
    return {
        "count": int(n),
        "accuracy": float(_sum(parts, f"{SCORE}correct")) / n if n else None,
        "accuracy_snr_ge_10": float(_sum(parts, f"{SCORE}snr_high_correct")) / high
        if high
        else None,
        "mean_average_precision": None,
        "per_snr": _per_snr(parts),
        "per_class": _per_class(confusion, class_names),
        "class_names": list(class_names),
        "confusion": confusion.tolist(),
        "temperature": float(temperature),
        "calibration_before": {key: _none_if_nan(v) for key, v in before.items()},
        "calibration_after": {key: _none_if_nan(v) for key, v in after.items()},
        "reliability_before": _reliability_dict(parts, SCORE + BEFORE),
        "reliability_after": _reliability_dict(parts, SCORE + AFTER),
    }


def client_row(client: int, part: Mapping, k: int) -> dict:
    """One site's line of ``evaluation.json``'s ``clients``: its test split's scores."""
    n = float(part[f"{EVAL}count"])
    row = {"client": client, "count": int(n)}
    row["accuracy"] = float(part[f"{EVAL}correct"]) / n if n else None
    before = pool_calibration([part], SCORE + BEFORE, k)
    after = pool_calibration([part], SCORE + AFTER, k)
    for key in ("ece", "brier", "nll"):
        row[f"{key}_before"] = _none_if_nan(before[key])
        row[f"{key}_after"] = _none_if_nan(after[key])
    return row
