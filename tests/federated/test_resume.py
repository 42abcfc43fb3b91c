"""A run killed (SIGKILL) after its round-2 checkpoint and resumed ends exactly where an
uninterrupted run with the same config ends: same per-round metrics, same final adapter. So does
a run whose last row was torn by the kill, one killed before its first checkpoint (restarted),
and one resumed from another directory than its config's; a corrupt row stops resume."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from fedsb.config import load_config, save_config
from fedsb.errors import DataError
from fedsb.federated.config import RunConfig
from fedsb.federated.engines import run_federated
from fedsb.federated.server import FederatedError
from fedsb.models.checkpoint import load_checkpoint
from fedsb.runs import ADAPTER_FILE, STATE_FILE

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


@pytest.fixture(scope="module")
def pristine(killed, tmp_path_factory) -> Path:
    """A copy of the killed run, taken before a test resumes the run in place."""
    copy = tmp_path_factory.mktemp("resume") / "pristine"
    shutil.copytree(killed[0], copy)
    return copy


def test_resumed_run_equals_the_uninterrupted_run(workspace, killed, pristine, reference):
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


def _copy(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def _checksums(root: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.iterdir() if p.is_file()
    }


def _assert_equals_reference(out: Path, reference: Path, result) -> None:
    got, want = read_rows(out), read_rows(reference)  # strict: every line parses
    assert [r["stage"] for r in got] == ["init"] + ["round"] * ROUNDS + ["final"]
    assert _comparable(got) == _comparable(want)
    _assert_same_tensors(_tensors(out / ADAPTER_FILE), _tensors(reference / ADAPTER_FILE))
    _assert_same_tensors(_tensors(out / STATE_FILE), _tensors(reference / STATE_FILE))
    assert result.test.accuracy == want[-1]["test_acc"]


def test_a_row_torn_by_the_kill_is_dropped_on_resume(
    workspace, pristine, reference, tmp_path, caplog
):
    out = _copy(pristine, tmp_path)
    with open(out / "metrics.jsonl", "ab") as handle:  # killed halfway through writing a row
        handle.write(b'{"accepted": [0, 1], "round": 3, "stage": "rou')
    with caplog.at_level(logging.WARNING):
        result = run_federated(None, out, cache_dir=workspace.cache, resume=True)
    assert re.search(r"metrics\.jsonl: dropped line \d+, a row torn mid-write", caplog.text)
    _assert_equals_reference(out, reference, result)


@pytest.mark.parametrize(
    ("line", "problem"),
    [(b'{"round": 1, "sta\n', "line 2 is not JSON"), (b"[1, 2]\n", r"line 2 is not a JSON object")],
)
def test_a_corrupt_row_stops_resume_and_changes_nothing(
    workspace, pristine, tmp_path, line, problem
):
    out = _copy(pristine, tmp_path)
    lines = (out / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    (out / "metrics.jsonl").write_bytes(b"".join([lines[0], line, *lines[1:]]))
    before = _checksums(out)
    metrics = re.escape(str(out / "metrics.jsonl"))
    with pytest.raises(DataError, match=f"^{metrics}: {problem}"):
        run_federated(None, out, cache_dir=workspace.cache, resume=True)
    assert _checksums(out) == before


def test_a_run_killed_before_its_first_checkpoint_starts_again_on_resume(
    workspace, pristine, reference, tmp_path
):
    """Killed between its init row and its first state file: a new run into the directory is
    refused (the message says --resume), and --resume runs it again from its config.toml."""
    out = _copy(pristine, tmp_path)
    (out / STATE_FILE).unlink()
    init = (out / "metrics.jsonl").read_bytes().splitlines(keepends=True)[0]
    (out / "metrics.jsonl").write_bytes(init)
    before = _checksums(out)
    with pytest.raises(FederatedError, match=r"pass --resume \(it stopped before its first"):
        run_federated(workspace.config(*OVERRIDES), out, cache_dir=workspace.cache)
    assert _checksums(out) == before
    result = run_federated(None, out, cache_dir=workspace.cache, resume=True)
    _assert_equals_reference(out, reference, result)


class _Stop(Exception):
    """Stands in for a kill after a round's checkpoint."""


def test_resume_works_from_another_directory(workspace, reference, tmp_path, monkeypatch):
    """``pretrained`` relative to the config file: the run keeps the absolute path, so it
    resumes from any directory, with the numbers of the run that spelled it absolutely."""
    configs, elsewhere = tmp_path / "configs", tmp_path / "a" / "b" / "c"
    configs.mkdir()
    elsewhere.mkdir(parents=True)
    relative = os.path.relpath(workspace.pre, configs)
    save_config(replace(workspace.config(*OVERRIDES), pretrained=relative), configs / "run.toml")
    monkeypatch.chdir(elsewhere)
    assert not Path(relative).exists()  # resolved against the cwd it would miss
    cfg = load_config(RunConfig, configs / "run.toml")
    assert cfg.pretrained == str(workspace.pre.resolve())

    def stop(row: dict) -> None:
        if row["round"] == KILL_AFTER:
            raise _Stop

    out = tmp_path / "run"
    with pytest.raises(_Stop):
        run_federated(cfg, out, cache_dir=workspace.cache, on_round=stop)
    assert load_config(RunConfig, out / "config.toml").pretrained == cfg.pretrained
    monkeypatch.chdir(tmp_path)
    result = run_federated(None, out, cache_dir=workspace.cache, resume=True)
    _assert_equals_reference(out, reference, result)
