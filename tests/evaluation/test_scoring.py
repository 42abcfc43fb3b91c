"""score(): per-SNR and per-class numbers match direct counts; T only recalibrates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedsb.evaluation import metrics as m
from fedsb.evaluation.scoring import Predictions, score

NAMES = ("bpsk", "qpsk", "8psk")


def _predictions(n: int = 600, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    snr = rng.choice([-10.0, 0.0, 10.0, 18.0], n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += 1.0 + 0.3 * snr  # easier at high SNR
    return Predictions(logits * 3, labels, snr, NAMES)


def test_numbers_agree_with_direct_counts():
    pred = _predictions()
    out = score(pred)
    hit = pred.logits.argmax(1) == pred.labels
    assert out["accuracy"] == pytest.approx(hit.mean())
    assert out["accuracy_snr_ge_10"] == pytest.approx(hit[pred.snr_db >= 10].mean())
    assert [r["snr"] for r in out["per_snr"]] == ["-10", "0", "10", "18"]
    for row in out["per_snr"]:
        inside = pred.snr_db == float(row["snr"])
        assert row["count"] == inside.sum()
        assert row["accuracy"] == pytest.approx(hit[inside].mean())
    accs = [r["accuracy"] for r in out["per_snr"]]
    assert accs == sorted(accs)  # harder at low SNR, by construction
    for c, name in enumerate(NAMES):
        mine = pred.labels == c
        assert out["per_class"][name]["support"] == mine.sum()
        assert out["per_class"][name]["accuracy"] == pytest.approx(hit[mine].mean())
    assert np.sum(out["confusion"]) == len(pred.labels)
    json.dumps(out, allow_nan=False)  # report-ready: no NaN, no numpy types


def test_temperature_changes_calibration_not_accuracy():
    pred = _predictions(seed=1)
    cold, hot = score(pred, 1.0), score(pred, 3.0)
    assert cold["accuracy"] == hot["accuracy"] and cold["confusion"] == hot["confusion"]
    assert hot["calibration_before"] == cold["calibration_after"]
    assert hot["calibration_after"]["nll"] == pytest.approx(m.nll(pred.probs(3.0), pred.labels))
    assert hot["temperature"] == 3.0


def test_absent_class_and_unknown_snr_are_none_not_nan():
    pred = _predictions(50)
    pred = Predictions(pred.logits, np.minimum(pred.labels, 1), np.full(50, np.nan), NAMES)
    out = score(pred)
    assert out["per_class"]["8psk"]["support"] == 0
    assert out["per_class"]["8psk"]["accuracy"] is None
    assert out["per_class"]["8psk"]["average_precision"] is None
    assert out["per_snr"] == [] and out["accuracy_snr_ge_10"] is None
    json.dumps(out, allow_nan=False)


def test_mismatched_shapes_are_named():
    with pytest.raises(ValueError, match="disagree"):
        Predictions(np.zeros((3, 3)), np.zeros(2, int), np.zeros(3), NAMES)
    with pytest.raises(ValueError, match="3 logit columns for 2 class names"):
        Predictions(np.zeros((3, 3)), np.zeros(3, int), np.zeros(3), NAMES[:2])


def test_predictions_round_trip_through_npz(tmp_path):
    from fedsb.evaluation.scoring import load_predictions, save_predictions

    pred = _predictions(30)
    save_predictions(pred, tmp_path / "p.npz")
    back = load_predictions(tmp_path / "p.npz")
    np.testing.assert_allclose(back.logits, pred.logits, rtol=1e-6)
    np.testing.assert_array_equal(back.labels, pred.labels)
    assert back.class_names == NAMES and list(tmp_path.iterdir()) == [tmp_path / "p.npz"]
