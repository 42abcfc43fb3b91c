"""Report figures: each writes a PNG and a PDF from plain data; the Pareto front is right."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from fedsb.evaluation.scoring import Predictions, score
from fedsb.report import figures as f

NAMES = ("bpsk", "qpsk", "8psk", "gfsk")


@pytest.fixture(scope="module")
def pred() -> Predictions:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    snr = rng.choice([-10.0, 0.0, 10.0, 20.0], 400)
    logits = rng.normal(size=(400, 4)) * 3
    logits[np.arange(400), labels] += 2 + 0.2 * snr
    return Predictions(logits, labels, snr, NAMES)


def _rows(acc0: float, step: float, per_round: float) -> list[dict]:
    rows = [{"stage": "init", "round": 0, "test_acc": acc0, "cumulative_bytes": 1000.0}]
    for r in range(1, 6):
        acc, sent = acc0 + step * r, 1000.0 + per_round * r
        rows.append({"stage": "round", "round": r, "test_acc": acc, "cumulative_bytes": sent})
    return rows


def _check(png, out_dir):
    assert png.exists() and png.with_suffix(".pdf").exists()
    assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    width, height = Image.open(png).size
    assert width > 300 and height > 200
    assert not list(out_dir.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_every_figure_writes_png_and_pdf(tmp_path, pred):
    scored = score(pred, 1.5)
    partition = [
        {
            "client": i,
            "counts": [10 * i, 5, 0, 30],
            "snr_db": [-10 + 5 * i, 5 + 5 * i],
            "profile": p,
        }
        for i, p in enumerate(["cfo", "multipath", "flat"])
    ]
    cells = [
        {"method": "fedsb", "rank": 16, "total_bytes": 1e6, "accuracy": 0.8},
        {"method": "fedit", "rank": 16, "total_bytes": 2e7, "accuracy": 0.78},
        {"method": "fedit", "rank": 64, "total_bytes": 8e7, "accuracy": 0.82},
    ]
    runs = {"fedsb": _rows(0.5, 0.05, 1e4), "fedit": _rows(0.5, 0.04, 3e5)}
    agreeing = {
        m: [
            {**r, "update_agreement": 0.3 + 0.05 * r["round"], "accepted": [0, 1, 2, 3]}
            for r in rows
        ]
        for m, rows in runs.items()
    }
    made = [
        f.reliability_figure(pred, 1.5, tmp_path / "reliability.png"),
        f.pr_figure(pred, 1.5, tmp_path / "pr.png"),
        f.confusion_figure(scored, tmp_path / "confusion.png", title="fedsb"),
        f.snr_figure({"fedsb": scored, "fedit": score(pred)}, tmp_path / "snr.png"),
        f.rounds_figure(runs, tmp_path / "rounds.png"),
        f.agreement_figure(agreeing, tmp_path / "agreement.png"),
        f.pareto_figure(cells, tmp_path / "pareto.png"),
        f.partition_figure(partition, NAMES, tmp_path / "partition.png"),
    ]
    for png in made:
        _check(png, tmp_path)


def test_a_diverged_cell_does_not_set_the_pareto_axis(tmp_path):
    assert f.accuracy_floor([57.9, 47.4, 14.3]) == 47.4  # the wide sweep's diverged fedavg
    assert f.accuracy_floor([57.9, 47.4, 38.0]) == -np.inf  # within 20 points: all shown
    assert f.accuracy_floor([]) == -np.inf and f.accuracy_floor([10.0], span=0) == -np.inf
    cells = [
        {"method": "fedsb", "rank": 16, "total_bytes": 3e7, "accuracy": 0.555},
        {"method": "fedsb", "rank": 4, "total_bytes": 1.4e7, "accuracy": 0.474},
        {"method": "fedavg", "rank": 0, "total_bytes": 3e9, "accuracy": 0.143},
    ]
    _check(f.pareto_figure(cells, tmp_path / "pareto.png"), tmp_path)


def _dominated(i: int, pts) -> bool:
    x, y = pts[i]
    return any((x2 <= x and y2 >= y) and (x2, y2) != (x, y) for x2, y2 in pts)


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(50):
        pts = [(float(x), float(y)) for x, y in rng.integers(0, 6, (12, 2))]
        front = f.pareto_front(pts)
        undominated = {pts[i] for i in range(len(pts)) if not _dominated(i, pts)}
        assert {pts[i] for i in front} == undominated  # every undominated point, once
        assert len(front) == len(undominated)
    assert f.pareto_front([]) == []


def test_each_method_keeps_its_style():
    for a, b in itertools.combinations(f.STYLE, 2):
        assert f.style(a) != f.style(b)
    assert f.style("something-new")["marker"] == "x"
