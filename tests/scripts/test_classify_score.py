"""scripts/classify_score.py: the scoring rules of docs/classify.md on hand-made detections."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("classify_score", ROOT / "scripts/classify_score.py")
score_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(score_mod)

CLASSES = ["bpsk", "16qam", "64qam"]


def _det(start, count, label, top1=None):
    return {"start": start, "count": count, "label": label, "top1": top1 or label}


def test_a_burst_is_found_when_a_detection_covers_half_of_the_longer():
    truth = [{"start": 1000, "count": 1000, "label": "BPSK", "snr_db": 12.0}]
    assert score_mod.match(truth, [_det(1500, 1000, "bpsk")])[0] is not None  # 500 of 1000
    assert score_mod.match(truth, [_det(1501, 1000, "bpsk")])[0] is None  # 499
    assert score_mod.match(truth, [_det(0, 2002, "bpsk")])[0] is None  # 1000 of 2002
    best = score_mod.match(truth, [_det(900, 300, "x"), _det(1200, 900, "bpsk")])[0]
    assert best["start"] == 1200  # the one overlapping most


def test_figures_count_misses_and_unknowns_as_wrong_and_split_seen_from_unseen():
    truth = [
        {"start": 0, "count": 1000, "label": "BPSK", "snr_db": 15.0},  # right
        {"start": 2000, "count": 1000, "label": "QAM16", "snr_db": 11.0},  # unknown
        {"start": 4000, "count": 1000, "label": "QAM64", "snr_db": 10.0},  # missed
        {"start": 6000, "count": 1000, "label": "QAM16", "snr_db": -7.0},  # wrong, weak
        {"start": 8000, "count": 1000, "label": "OOK", "snr_db": 12.0},  # unseen: unknown
        {"start": 10000, "count": 1000, "label": "16PSK", "snr_db": 3.0},  # unseen: a class
    ]
    found = [
        _det(0, 1000, "bpsk"),
        _det(2000, 1000, "unknown", "16qam"),
        _det(6000, 1000, "64qam"),
        _det(8000, 1000, "unknown", "pam4"),
        _det(10000, 1000, "bpsk"),
        _det(20000, 500, "bpsk"),  # in a gap: false
    ]
    f = score_mod.score(truth, found, CLASSES)
    assert f["found"] == pytest.approx(5 / 6) and f["false_detections"] == 1
    assert f["found[-99,-5)"] == 1.0 and f["found[10,99)"] == pytest.approx(3 / 4)
    assert f["labels_right_ge10"] == pytest.approx(1 / 3) and f["n_ge10"] == 3
    assert f["top1_right_ge10"] == pytest.approx(2 / 3)
    assert f["seen_unknown"] == pytest.approx(1 / 3) and f["seen_unknown_ge10"] == 0.5
    assert f["seen_right_called_unknown"] == 0.5  # bpsk kept, 16qam called unknown
    assert f["unseen_unknown"] == 0.5 and f["unseen_unknown_ge10"] == 1.0
    assert f["errors_ge10"] == {"16qam->unknown": 1, "64qam->None": 1}


def test_the_table_lists_seen_and_unseen_recordings(tmp_path):
    truth = [{"start": 0, "count": 1000, "label": "BPSK", "snr_db": 15.0}]
    f = score_mod.score(truth, [_det(0, 1000, "bpsk")], CLASSES)
    g = score_mod.score([{**truth[0], "label": "OOK"}], [_det(0, 1000, "unknown")], CLASSES)
    text = score_mod.table([("seen", f), ("unseen", g)])
    row = "| seen | 100.0 % | – | – | 100.0 % | 0 | 100.0 % (n = 1) | 100.0 % | 0.0 % (0.0 %) |"
    assert row in text
    assert "| unseen | 100.0 % | 100.0 % | 100.0 % |" in text
    path = tmp_path / "f.json"
    path.write_text(json.dumps(f))
    assert score_mod.main(["table", f"seen={path}"]) == 0
