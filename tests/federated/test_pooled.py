"""The pooled reference (``centralized``): the fine-tuning loop on the union, the federation's
budget, no bytes, and rows shaped like a federated run's."""

from __future__ import annotations

import pytest
import torch

from fedsb.data.imageset import join_sets
from fedsb.errors import ConfigError
from fedsb.federated.engines import run_federated
from fedsb.federated.flower.server_app import open_run
from fedsb.federated.task import build_task, load_basis
from fedsb.models.adapters import adapter_state, load_adapter_state, trainable_parameters
from fedsb.models.checkpoint import load_checkpoint
from fedsb.reporter import SilentReporter
from fedsb.runs import ADAPTER_FILE
from fedsb.training.config import TrainConfig
from fedsb.training.loop import fit

from .conftest import read_rows

POOLED = ("method='centralized'", "client.local_epochs=2", "client.weight_decay=0.01")


def _by_hand_params(model, head_lr: float, lr: float):
    """One group at ``lr``, or the plain head's tensors in a second group at ``head_lr``."""
    if not head_lr:
        return trainable_parameters(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    head = [p for n, p in named if n.startswith("head.") and "lora_" not in n]
    rest = [p for n, p in named if not (n.startswith("head.") and "lora_" not in n)]
    assert head and rest
    return [{"params": rest, "lr": lr}, {"params": head, "lr": head_lr}]


@pytest.mark.parametrize("head_lr", [0.0, 0.05])
def test_pooled_run_is_the_fine_tuning_loop_on_the_union(workspace, tmp_path, monkeypatch, head_lr):
    """The same adapter as ``fit`` run by hand on the union of the client training splits with
    rounds x local_epochs epochs and the clients' settings, from the state the run started at;
    ``client.head_lr`` sets the plain head's rate there as in the clients."""
    import fedsb.federated.pooled as pooled

    start = {}

    def spy(model, *args, **kw):
        start.update({k: v.clone() for k, v in adapter_state(model).items()})
        return fit(model, *args, **kw)

    monkeypatch.setattr(pooled, "fit", spy)
    run = tmp_path / "central"
    settings = (*POOLED, f"client.head_lr={head_lr}")
    result = workspace.run(run, *settings)
    cfg = workspace.config(*settings)
    task = build_task(cfg, workspace.cache, SilentReporter())
    load_basis(task.model, run)
    load_adapter_state(task.model, start)
    union = join_sets([c.train for c in task.clients])
    by_hand = TrainConfig(
        epochs=4, batch_size=16, lr=cfg.client.lr, weight_decay=0.01, seed=cfg.seed, threads=1
    )
    fit(task.model, _by_hand_params(task.model, head_lr, cfg.client.lr), union, task.val, by_hand)
    mine, saved = adapter_state(task.model), load_checkpoint(run / ADAPTER_FILE)[0]
    assert mine.keys() == saved.keys()
    assert all(torch.equal(mine[k], saved[k]) for k in mine)
    assert not all(torch.equal(mine[k], start[k]) for k in mine)  # it trained
    assert len(union) == 3 * 60 and result.total_bytes == 0.0


def test_pooled_rows_line_up_with_rounds_and_send_nothing(workspace, tmp_path):
    run = tmp_path / "central"
    workspace.run(run, *POOLED)
    rows = read_rows(run)
    assert [(r["round"], r["stage"]) for r in rows] == [
        (0, "init"),
        (1, "round"),
        (2, "round"),
        (2, "final"),
    ]
    for row in rows:
        for key in ("bytes_up_per_client", "bytes_down_per_client", "cumulative_bytes"):
            assert row.get(key, 0) == 0
    assert rows[-1]["total_bytes"] == 0 and rows[-1]["calibration_bytes_per_client"] == 0
    assert 0 <= rows[-1]["test_acc"] <= 1 and rows[-1]["temperature"] > 0


def test_pooled_resume_trains_again_to_the_same_state(workspace, tmp_path):
    run = tmp_path / "central"
    workspace.run(run, *POOLED)
    first = load_checkpoint(run / ADAPTER_FILE)[0]
    run_federated(None, run, cache_dir=workspace.cache, resume=True)
    again = load_checkpoint(run / ADAPTER_FILE)[0]
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert [r["stage"] for r in read_rows(run)].count("final") == 1


def test_a_deployment_refuses_the_pooled_reference(tmp_path):
    try:
        open_run({"run-dir": str(tmp_path / "r"), "overrides": "method='centralized'"})
    except ConfigError as exc:
        assert "union of every client's data" in str(exc) and "fedsb run" in str(exc)
    else:
        raise AssertionError("a deployment ran the pooled reference")
