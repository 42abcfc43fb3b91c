"""A run asks for a subset of the backbone's classes: the head keeps those rows, and the proxy
round 0 draws only those classes, so every label indexes the model's outputs."""

from __future__ import annotations

import torch

from fedsb.federated.task import build_task, proxy_batches
from fedsb.models.checkpoint import load_checkpoint
from fedsb.reporter import SilentReporter
from fedsb.runs import MODEL_FILE

from .conftest import read_rows

SUBSET = "data.classes='gfsk,bpsk'"  # the tiny backbone knows bpsk, qpsk, gfsk


def test_a_subset_run_keeps_those_head_rows_and_records_the_backbones_classes(workspace, tmp_path):
    out = tmp_path / "run"
    workspace.run(out, SUBSET)
    state, meta = load_checkpoint(out / MODEL_FILE)
    assert meta["class_names"] == ["gfsk", "bpsk"]
    assert meta["backbone_classes"] == ["bpsk", "qpsk", "gfsk"]
    assert state["head.weight"].shape[0] == 2
    assert 0 <= read_rows(out)[-1]["test_acc"] <= 1


def test_the_proxy_draws_only_the_runs_classes(workspace, tmp_path):
    cfg = workspace.config(SUBSET, "init_source='proxy'")
    task = build_task(cfg, workspace.cache, SilentReporter())
    classes = tuple(task.meta["class_names"])
    batches = list(proxy_batches(cfg, task.checkpoint, workspace.cache, 16, classes))
    labels = torch.cat([b[1] for b in batches])
    assert set(labels.tolist()) == {0, 1}  # gfsk and bpsk, in the run's order
    with torch.no_grad():
        assert task.model(batches[0][0]).shape[1] == 2
    workspace.run(tmp_path / "proxy", SUBSET, "init_source='proxy'")  # end to end
