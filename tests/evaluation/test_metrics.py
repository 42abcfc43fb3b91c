"""Our metrics against torchmetrics and scikit-learn on random and adversarial inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
)
from sklearn.metrics import confusion_matrix as sk_confusion
from torchmetrics.functional.classification import multiclass_calibration_error
from torchmetrics.functional.classification.calibration_error import _ce_compute

from fedsb.evaluation import metrics as m

K = 5


def _random(n: int, seed: int, sharp: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = m.softmax(rng.normal(size=(n, K)) * sharp)
    labels = rng.integers(0, K, n)
    return probs, labels


def _adversarial() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, K, 40)
    onehot = np.eye(K)[labels]
    wrong = np.eye(K)[(labels + 1) % K]
    mixed = m.softmax(rng.normal(size=(40, K)) * 2)
    mixed[:10] = onehot[:10]  # confidence exactly 1.0 next to ordinary ones
    one_class = m.softmax(rng.normal(size=(30, K)))
    return {
        "all-correct, confidence 1": (onehot, labels),
        "all-wrong, confidence 1": (wrong, labels),
        "some confidence exactly 1": (mixed, labels),
        "one class only": (one_class, np.full(30, 2)),
        "uniform": (np.full((20, K), 1.0 / K), labels[:20]),
        "on the bin edges": (
            np.c_[np.full(30, 0.6), np.full(30, 0.4), np.zeros((30, K - 2))],
            labels[:30] % 2,
        ),
    }


CASES = {
    **{f"random {s}": _random(300, s) for s in range(3)},
    "random, sharp": _random(300, 9, sharp=30.0),
    **_adversarial(),
}


def _torchmetrics(probs, labels, norm: str) -> float:
    return float(
        multiclass_calibration_error(
            torch.tensor(probs), torch.tensor(labels), num_classes=K, n_bins=15, norm=norm
        )
    )


@pytest.mark.parametrize("case", list(CASES))
def test_ece_and_mce_match_torchmetrics(case):
    """torchmetrics bins and sums in float32 (its multiclass path casts), so both get the same
    float32 probabilities (0.999999999 becomes exactly 1.0) and agree to 1e-6."""
    probs, labels = CASES[case]
    probs = probs.astype(np.float32).astype(np.float64)
    assert m.ece(probs, labels) == pytest.approx(_torchmetrics(probs, labels, "l1"), abs=1e-6)
    assert m.mce(probs, labels) == pytest.approx(_torchmetrics(probs, labels, "max"), abs=1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_brier_and_nll_match_scikit_learn(case):
    probs, labels = CASES[case]
    classes = list(range(K))
    assert m.brier(probs, labels) == pytest.approx(
        brier_score_loss(labels, probs, labels=classes), abs=1e-12
    )
    assert m.nll(probs, labels) == pytest.approx(log_loss(labels, probs, labels=classes), rel=1e-12)


def test_known_values_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [1.0, 0.0]])
    labels = np.array([0, 1, 1, 0])
    # bins: 0.9 -> [0.8667, 0.9333), 0.8 -> [0.8, 0.8667), 0.7 -> [0.6667, 0.7333);
    # gaps: |1-0.9|, |0-0.8|, |1-0.7|, |1-1.0| (own bin) -> ECE = (0.1+0.8+0.3+0)/4
    assert m.ece(probs, labels) == pytest.approx(0.3)
    assert m.mce(probs, labels) == pytest.approx(0.8)
    assert m.brier(probs, labels) == pytest.approx((0.02 + 1.28 + 0.18 + 0.0) / 4)
    assert m.nll(probs, labels) == pytest.approx(-(np.log(0.9) + np.log(0.2) + np.log(0.7)) / 4)
    assert m.accuracy(probs, labels) == 0.75


def test_classwise_ece_is_the_mean_of_one_vs_rest_ece():
    probs, labels = CASES["random 1"]
    per_class = []
    for k in range(K):
        # torchmetrics' binary ECE bins p_k against 1[y = k] the same way
        conf = torch.tensor(probs[:, k])
        hit = torch.tensor(labels == k, dtype=torch.float64)
        per_class.append(float(_ce_compute(conf, hit, 15, norm="l1")))
    assert m.classwise_ece(probs, labels) == pytest.approx(np.mean(per_class), abs=1e-12)


def test_perfectly_calibrated_predictions_have_small_ece():
    rng = np.random.default_rng(3)
    probs = m.softmax(rng.normal(size=(20000, K)) * 2)
    # labels drawn from the predictions themselves: calibrated by construction
    labels = (rng.random((len(probs), 1)) > probs.cumsum(1)).sum(1)
    assert m.ece(probs, labels) < 0.02
    overconfident = m.softmax(np.log(probs) * 3)
    assert m.ece(overconfident, labels) > 0.1


def test_confusion_and_precision_recall_match_scikit_learn():
    probs, labels = CASES["random 2"]
    pred = probs.argmax(1)
    conf = m.confusion_matrix(labels, pred, K)
    np.testing.assert_array_equal(conf, sk_confusion(labels, pred, labels=list(range(K))))
    precision, recall, f1 = m.precision_recall(conf)
    want = precision_recall_fscore_support(labels, pred, labels=list(range(K)), zero_division=0)
    np.testing.assert_allclose(precision, want[0])
    np.testing.assert_allclose(recall, want[1])
    np.testing.assert_allclose(f1, want[2])


def test_precision_is_nan_for_a_class_never_predicted():
    conf = np.array([[3, 0], [2, 0]])
    precision, recall, f1 = m.precision_recall(conf)
    assert precision[0] == pytest.approx(0.6) and np.isnan(precision[1])
    assert recall[1] == 0.0 and f1[1] == 0.0
    assert np.isnan(m.precision_recall(np.array([[2, 0], [0, 0]]))[1][1])  # class 1 absent


@pytest.mark.parametrize("seed", [0, 1])
def test_pr_curve_and_average_precision_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(200), 2)  # rounded: many ties
    positive = rng.random(200) < 0.3 + 0.4 * scores
    precision, recall = m.pr_curve(scores, positive)
    sk_p, sk_r, _ = precision_recall_curve(positive, scores)
    # scikit-learn: increasing thresholds, with a final (recall 0, precision 1) point
    np.testing.assert_allclose(precision, sk_p[:-1][::-1])
    np.testing.assert_allclose(recall, sk_r[:-1][::-1])
    assert m.average_precision(scores, positive) == pytest.approx(
        average_precision_score(positive, scores), abs=1e-12
    )


def test_average_precision_without_positives_is_nan():
    assert np.isnan(m.average_precision([0.1, 0.9], [False, False]))


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"probs must be \(N, K\)"):
        m.ece(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        m.brier(np.full((2, 2), 0.5), np.array([0, 2]))


def test_reliability_bins_hold_every_prediction():
    probs, labels = CASES["some confidence exactly 1"]
    rel = m.reliability(*m.top_label(probs, labels))
    assert rel.count.sum() == len(labels) and rel.count[-1] >= 10
    assert len(rel.count) == 16
    for k in np.flatnonzero(rel.count):
        if k < 15:  # the mean confidence of a bin lies in the bin
            assert rel.lower[k] <= rel.confidence[k] < rel.lower[k + 1]
        else:
            assert rel.confidence[k] == 1.0 and rel.accuracy[k] == 1.0
