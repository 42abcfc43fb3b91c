"""Classification and calibration metrics on predicted probabilities, in plain numpy.

Everything takes ``probs`` (N, K), rows summing to 1, and integer ``labels`` (N,). Conventions
follow the libraries users compare against, and the tests check against them:

* top-label ECE / MCE: ``bins`` equal-width bins [k/M, (k+1)/M) over the top-label confidence,
  plus one bin of its own for confidence exactly 1.0 (as torchmetrics'
  ``MulticlassCalibrationError``); ECE = Σ_b (n_b / N)·|acc_b − conf_b| and
  MCE = max_b |acc_b − conf_b| over non-empty bins (Guo et al., 2017, arXiv 1706.04599);
* classwise ECE: the mean over classes of the ECE of p_k against 1[y = k] (Kull et al., 2019,
  arXiv 1910.12656), same bins;
* Brier: mean over samples of Σ_k (p_k − 1[y = k])², in [0, 2] (scikit-learn's multiclass
  ``brier_score_loss``);
* NLL: mean of −log p_y with p_y clipped at float64 eps (scikit-learn's ``log_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ECE_BINS = 15
EPS = np.finfo(np.float64).eps


def _checked(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"probs must be (N, K) and labels (N,), got {p.shape} and {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must be in [0, {p.shape[1]}), got {y.min()}..{y.max()}")
    return p, y


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / T, computed stably in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def accuracy(probs, labels) -> float:
    """Top-1 accuracy of ``probs`` (N, K) against ``labels`` (N,); NaN when empty."""
    p, y = _checked(probs, labels)
    return float((p.argmax(1) == y).mean()) if y.size else float("nan")


def confusion_matrix(labels, predicted, n_classes: int) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class."""
    y = np.asarray(labels, dtype=np.int64)
    k = np.asarray(predicted, dtype=np.int64)
    return np.bincount(y * n_classes + k, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def precision_recall(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 from a confusion matrix.

    Precision is NaN for a class never predicted, recall for a class absent from the labels.
    """
    c = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / c.sum(0)
        recall = tp / c.sum(1)
        f1 = 2 * tp / (c.sum(0) + c.sum(1))  # = 2PR/(P+R), and 0 when tp = 0
    return precision, recall, f1


def pr_curve(scores, positive) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at every distinct score threshold, highest threshold first.

    Ties share one point, as in scikit-learn's ``precision_recall_curve`` (without its final
    (recall 0, precision 1) point).
    """
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    order = np.argsort(-s, kind="stable")
    s, pos = s[order], pos[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each distinct score
    tp = np.cumsum(pos)[last]
    predicted = last + 1
    total = pos.sum()
    recall = tp / total if total else np.full(tp.shape, np.nan)
    return tp / predicted, recall


def average_precision(scores, positive) -> float:
    """AP = Σ_n (R_n − R_{n−1})·P_n (scikit-learn's definition, no interpolation)."""
    precision, recall = pr_curve(scores, positive)
    if not np.asarray(positive, dtype=bool).any():
        return float("nan")
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class Reliability:
    """Per-bin confidence, accuracy and count of a reliability diagram (bins with n = 0 kept)."""

    lower: np.ndarray  # bin lower edges; the last bin is confidence exactly 1.0
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: count-weighted mean |accuracy - confidence| of the bins."""
        n = self.count.sum()
        return float(np.sum(self.count * np.abs(self.accuracy - self.confidence)) / n) if n else 0.0

    @property
    def mce(self) -> float:
        """Maximum calibration error: the largest |accuracy - confidence| of a non-empty bin."""
        seen = self.count > 0
        return float(np.abs(self.accuracy - self.confidence)[seen].max()) if seen.any() else 0.0


def reliability(confidence, correct, bins: int = ECE_BINS) -> Reliability:
    """Bin (confidence, correct) pairs into ``bins`` equal-width bins plus the bin {1.0}."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges, conf, side="right") - 1  # [e_k, e_k+1); 1.0 -> bin M
    index = np.clip(index, 0, bins)
    count = np.bincount(index, minlength=bins + 1).astype(np.float64)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(index, conf, minlength=bins + 1) / count
        mean_acc = np.bincount(index, hit, minlength=bins + 1) / count
    return Reliability(edges, np.nan_to_num(mean_conf), np.nan_to_num(mean_acc), count)


def top_label(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """(confidence of the predicted class, 1.0 where it is the true class)."""
    p, y = _checked(probs, labels)
    return p.max(1), (p.argmax(1) == y).astype(np.float64)


def ece(probs, labels, bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error of ``probs`` against ``labels``."""
    return reliability(*top_label(probs, labels), bins).ece


def mce(probs, labels, bins: int = ECE_BINS) -> float:
    """Top-label maximum calibration error of ``probs`` against ``labels``."""
    return reliability(*top_label(probs, labels), bins).mce


def classwise_ece(probs, labels, bins: int = ECE_BINS) -> float:
    """Mean over classes of the one-vs-rest ECE of each class's probability column."""
    p, y = _checked(probs, labels)
    per_class = [reliability(p[:, k], y == k, bins).ece for k in range(p.shape[1])]
    return float(np.mean(per_class))


def brier(probs, labels) -> float:
    """Multi-class Brier score: mean squared distance to the one-hot labels; NaN when empty."""
    p, y = _checked(probs, labels)
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1))) if y.size else float("nan")


def nll(probs, labels) -> float:
    """Mean negative log-probability of the true class (clipped at ``EPS``); NaN when empty."""
    p, y = _checked(probs, labels)
    if not y.size:
        return float("nan")
    return float(-np.mean(np.log(np.clip(p[np.arange(y.size), y], EPS, 1.0))))


def calibration_summary(probs, labels, bins: int = ECE_BINS) -> dict[str, float]:
    """ECE, MCE, classwise ECE, Brier and NLL in one dict (the keys reports and JSON use)."""
    return {
        "ece": ece(probs, labels, bins),
        "mce": mce(probs, labels, bins),
        "classwise_ece": classwise_ece(probs, labels, bins),
        "brier": brier(probs, labels),
        "nll": nll(probs, labels),
    }
