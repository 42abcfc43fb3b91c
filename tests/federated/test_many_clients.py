"""A federation of 1,000 clients: a run builds the training splits of the drawn clients only."""

from __future__ import annotations

import torch

from fedsb.data import client_sets
from fedsb.data.imageset import ImageSet, MappedImageSet
from fedsb.federated.engine_local import LocalEngine
from fedsb.federated.rounds import round_sample, sample_clients
from fedsb.federated.task import build_task, initial_state
from fedsb.reporter import SilentReporter

from .conftest import read_rows

MANY = (
    "partition.clients=1000",
    "partition.records_per_client=12",
    "partition.min_records=3",
    "partition.val_per_class=1",
    "partition.test_per_class=1",
    "server.fraction=0.01",
    "method='head-only'",  # no round 0: every split built is one a round drew
    "rounds=2",
)


def _counting_splits(monkeypatch) -> list[tuple[int, str]]:
    """Replace the generator of the clients' splits by seeded noise; returns the calls made."""
    calls: list[tuple[int, str]] = []

    def fake_split(plan, cfg, data, split, cache_dir, progress=None, write=True):
        calls.append((plan.client, split))
        n = plan.size if split == "train" else 3
        g = torch.Generator().manual_seed(plan.client * 3 + len(split))
        images = torch.randint(0, 256, (n, 2, 16, 16), generator=g, dtype=torch.uint8)
        labels = torch.arange(n) % 3
        snr = torch.linspace(0.0, 20.0, n)
        if progress:
            progress(n)
        return ImageSet(images, labels, snr, ("bpsk", "qpsk", "gfsk"))

    monkeypatch.setattr(client_sets, "build_split", fake_split)
    return calls


def test_a_thousand_client_task_holds_its_test_set_on_disk(workspace, monkeypatch):
    calls = _counting_splits(monkeypatch)
    task = build_task(workspace.config(*MANY), None, SilentReporter())
    assert task.n_clients == 1000 and not [c for c, split in calls if split == "train"]
    assert isinstance(task.test, MappedImageSet) and isinstance(task.val, MappedImageSet)
    assert len(task.test) == len(task.val) == 3000
    assert task.test.store is task.val.store is task.clients[999].test.store


def test_a_round_of_a_thousand_clients_builds_only_the_drawn_ones(workspace, monkeypatch):
    calls = _counting_splits(monkeypatch)
    cfg = workspace.config(*MANY)
    task = build_task(cfg, None, SilentReporter())
    engine = LocalEngine(task, cfg)
    drawn: set[int] = set()
    try:
        for server_round in (1, 2):
            ids = sample_clients(cfg, server_round, task.n_clients)
            results = engine.train(server_round, ids, initial_state(task))
            assert len(ids) == 10 and [r.error for r in results] == [None] * 10
            sizes = [r.metrics["num-examples"] for r in results]
            assert sizes == [task.partition[i]["records"] for i in ids]
            drawn |= set(ids)  # a client drawn again is not built again: its split is kept
            assert sorted(c for c, split in calls if split == "train") == sorted(drawn)
    finally:
        engine.close()
    assert len([1 for _, split in calls if split != "train"]) == 2000  # each split once


def test_round_rows_can_score_a_fixed_sample_and_the_final_row_scores_all(workspace, tmp_path):
    full, sampled = tmp_path / "full", tmp_path / "sampled"
    workspace.run(full)
    workspace.run(sampled, "server.eval_records=10")
    rows, ref = read_rows(sampled), read_rows(full)
    rounds = [r for r in rows if r["stage"] == "round"]
    for r in rounds:  # accuracy on 10 records: a multiple of 0.1
        assert abs(r["test_acc"] * 10 - round(r["test_acc"] * 10)) < 1e-9, r["test_acc"]
        assert abs(r["val_acc"] * 10 - round(r["val_acc"] * 10)) < 1e-9, r["val_acc"]
    assert rows[0]["test_acc"] == ref[0]["test_acc"]  # round 0 and the final row: every record
    assert rows[-1]["test_acc"] == ref[-1]["test_acc"] and rows[-1]["stage"] == "final"
    assert any(a["test_acc"] != b["test_acc"] for a, b in zip(rounds, ref[1:-1]))
    data = ImageSet(
        torch.zeros(50, 1, 2, 2), torch.arange(50) % 3, torch.zeros(50), ("a", "b", "c")
    )
    a, b = round_sample(data, 10, 1), round_sample(data, 10, 1)
    assert len(a) == 10 and torch.equal(a.labels, b.labels)  # seeded: the same every round
    assert round_sample(data, 0, 1) is data and round_sample(data, 80, 1) is data
