"""The Flower engine (Simulation Engine, Ray) against the embedded engine.

A simulation costs ~15-20 s (mostly Ray and actor start-up), so the file runs exactly one,
shared by every assert through a module-scoped fixture: 3 clients x 2 rounds where client 1
raises in every training round. All three clients answer LoRA-SB's round 0, a sketch (two
messages each: ``init_source = "sketch"``; the full-gradient round 0 goes through the same
``round0_reply`` in the deployment tests); clients 0 and 2 are aggregated. Same seed and
config on the embedded engine must give the same global state (R and head), the same metrics
rows (test_acc, bytes), the same federated temperature (``evaluation.json``) and the same
one-line drop reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedsb.models.checkpoint import load_checkpoint
from fedsb.runs import ADAPTER_FILE, STATE_FILE

from .conftest import Workspace, read_rows
from .engine_compare import assert_same_tensors, close, flower_env

pytest.importorskip("flwr.simulation")
pytest.importorskip("ray")

RAISE = ("attack.kind='raise'", "attack.clients=[1]")


def _pair(ws: Workspace, root: Path, *overrides: str) -> tuple[Path, Path]:
    """(local run dir, flower run dir) of the same config."""
    local, flower = root / "local", root / "flower"
    ws.run(local, *overrides)
    mp = flower_env(root)
    try:
        ws.run(flower, *overrides, "engine='flower'")
    finally:
        mp.undo()
    return local, flower


@pytest.fixture(scope="module")
def runs(workspace, tmp_path_factory) -> tuple[Path, Path]:
    return _pair(workspace, tmp_path_factory.mktemp("flower"), *RAISE, "init_source='sketch'")


def _assert_same_state(local: Path, flower: Path) -> None:
    for name in (ADAPTER_FILE, STATE_FILE):
        a, meta_a = load_checkpoint(local / name)
        b, meta_b = load_checkpoint(flower / name)
        assert_same_tensors(a, b, name)
        close(meta_a, meta_b, name)


def test_flower_matches_local_engine(runs):
    local, flower = runs
    state, _ = load_checkpoint(flower / STATE_FILE)
    assert any(k.startswith("global.") and "lora_R" in k for k in state), "no LoRA-SB R"
    assert any(k.startswith("global.") and "head" in k for k in state), "no head"
    _assert_same_state(local, flower)


def test_flower_metrics_match_local_engine(runs):
    local, flower = runs
    rows_l, rows_f = read_rows(local), read_rows(flower)
    assert [r["stage"] for r in rows_f] == ["init", "round", "round", "final"]
    close(rows_l, rows_f, "metrics")
    init = rows_f[0]
    per_client = init["bytes_up_per_client"] + init["bytes_down_per_client"]
    assert per_client > 0 and init["cumulative_bytes"] == 3 * per_client  # round 0: all three
    for row in rows_f[1:3]:
        assert row["clients"] == [0, 1, 2]
        sent = 3 * row["bytes_down_per_client"] + 2 * row["bytes_up_per_client"]
        assert row["round_bytes"] == sent > 0  # the crashed client uploads nothing
        assert 0 < row["test_acc"] <= 1


def test_flower_calibration_matches_local_engine(runs):
    local, flower = runs
    ev_l, ev_f = (json.loads((d / "evaluation.json").read_text()) for d in (local, flower))
    assert ev_f["calibration"]["steps"] >= 2  # several Newton steps, i.e. several messages
    close(ev_l, ev_f, "evaluation")


def test_flower_drops_a_raising_client_and_goes_on(runs):
    _, flower = runs
    rows = read_rows(flower)
    assert [r["stage"] for r in rows] == ["init", "round", "round", "final"]
    for row in rows[1:3]:
        assert row["accepted"] == [0, 2]
        assert list(row["dropped"]) == ["1"]
        reason = row["dropped"]["1"]
        assert "\n" not in reason and "crashed (simulated)" in reason, reason
    assert rows[-1]["test_acc"] == pytest.approx(rows[2]["test_acc"])
