"""A run killed (SIGKILL) after its round-2 checkpoint and resumed ends exactly where an
uninterrupted run with the same config ends: same per-round metrics, same final adapter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fedsb.config import load_config, save_config
from fedsb.errors import DataError
from fedsb.federated.config import RunConfig
from fedsb.federated.server import ADAPTER_FILE, STATE_FILE, run_federated
from fedsb.training.runs import load_checkpoint

from .conftest import read_rows

ROUNDS = 5
KILL_AFTER = 2  # SIGKILL once this round is checkpointed
START_DEADLINE = 180.0  # seconds for the child to import, build its task and reach KILL_AFTER
#: 3 clients x 120 records: a round takes long enough (~0.3 s) for the kill to land before the end
OVERRIDES = (f"rounds={ROUNDS}", "partition.records_per_client=120")


def _checkpointed_round(run: Path) -> int:
    """The round of ``run``'s state file, -1 while there is none (it is replaced atomically)."""
    try:
        return int(load_checkpoint(run / STATE_FILE)[1]["round"])
    except DataError:
        return -1


def _comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[0]


def _assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def reference(workspace, tmp_path_factory) -> Path:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("resume") / "reference"
    workspace.run(out, *OVERRIDES)
    return out


@pytest.fixture(scope="module")
def killed(workspace, tmp_path_factory) -> tuple[Path, int]:
    """The same run as a `fedsb run` process, SIGKILLed once round 2 is checkpointed; returns
    the run directory and the round of its last checkpoint."""
    root = tmp_path_factory.mktemp("resume")
    config, out, log = root / "run.toml", root / "killed", root / "child.log"
    save_config(workspace.config(*OVERRIDES), config)
    argv = [sys.executable, "-m", "fedsb", "run", "--config", str(config), "--out", str(out)]
    argv += ["--cache", str(workspace.cache)]
    with open(log, "wb") as sink:
        child = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=os.environ)
        try:
            deadline = time.monotonic() + START_DEADLINE
            while _checkpointed_round(out) < KILL_AFTER:
                if child.poll() is not None:
                    pytest.fail(f"the run ended (exit {child.returncode}) before round "
                                f"{KILL_AFTER}:\n{log.read_text()[-3000:]}")  # fmt: skip
                if time.monotonic() > deadline:
                    pytest.fail(f"round {KILL_AFTER} not checkpointed in {START_DEADLINE:g} s")
                time.sleep(0.02)
            child.kill()  # SIGKILL: no clean-up of any kind
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=30)
    assert child.returncode == -9
    done = _checkpointed_round(out)
    assert KILL_AFTER <= done < ROUNDS, "the kill came too late to interrupt the run"
    return out, done


def test_the_killed_run_is_a_partial_run(killed):
    out, done = killed
    assert not (out / ADAPTER_FILE).exists()
    rows = read_rows(out)
    assert rows[0]["stage"] == "init" and all(r["stage"] != "final" for r in rows)
    # every checkpointed round has its row (rows are written just before the checkpoint)
    assert [r["round"] for r in rows if r["stage"] == "round"][:done] == list(range(1, done + 1))


def test_the_child_ran_the_reference_config(killed, reference):
    out, _ = killed
    child = load_config(RunConfig, out / "config.toml")
    assert child == load_config(RunConfig, reference / "config.toml")
    assert child.rounds == ROUNDS


def test_resumed_run_equals_the_uninterrupted_run(workspace, killed, reference):
    out, done = killed
    # a kill between a round's row and its checkpoint leaves a row of an unfinished round:
    # simulate that; resuming must drop it and train that round again
    with open(out / "metrics.jsonl", "a") as handle:
        row = {"round": done + 1, "stage": "round", "test_acc": -1.0}
        handle.write(json.dumps(row) + "\n")
    result = run_federated(None, out, cache_dir=workspace.cache, resume=True)
    assert result.rounds == ROUNDS
    got, want = read_rows(out), read_rows(reference)
    assert [r["stage"] for r in got] == ["init"] + ["round"] * ROUNDS + ["final"]
    assert [r["round"] for r in got] == [r["round"] for r in want]
    assert _comparable(got) == _comparable(want)
    _assert_same_tensors(_tensors(out / ADAPTER_FILE), _tensors(reference / ADAPTER_FILE))
    _assert_same_tensors(_tensors(out / STATE_FILE), _tensors(reference / STATE_FILE))
    assert result.test.accuracy == want[-1]["test_acc"]
    assert result.total_bytes == want[-1]["total_bytes"]
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []
