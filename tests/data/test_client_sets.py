"""Lazy client data: training splits built when read, validation and test splits memory-mapped."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
import torch

from fedsb.config import apply_overrides
from fedsb.data import client_sets
from fedsb.data.client_sets import TrainSets, lazy_client_data
from fedsb.data.imageset import ImageSet, LazyImageSet, MappedImageSet, join_sets
from fedsb.data.partition import build_client_data, plan_partition
from fedsb.federated.config import RunConfig

from ..federated.conftest import TINY_IMAGES

SPLITS = ("train", "val", "test")


def _config(clients: int, *more: str) -> RunConfig:
    return apply_overrides(
        RunConfig(),
        [
            *TINY_IMAGES,
            f"partition.clients={clients}",
            "partition.records_per_client=12",
            "partition.min_records=3",
            "partition.val_per_class=2",
            "partition.test_per_class=3",
            *more,
        ],
    )


def _same(a: ImageSet, b: ImageSet) -> bool:
    """Bit for bit: images, labels, SNRs (and their dtypes), classes, and what batch() gives."""
    index = torch.arange(len(a)).flip(0)
    return (
        torch.equal(a.images, b.images)
        and a.labels.dtype == b.labels.dtype
        and torch.equal(a.labels, b.labels)
        and a.snr_db.dtype == b.snr_db.dtype
        and torch.equal(a.snr_db, b.snr_db)
        and a.class_names == b.class_names
        and all(torch.equal(x, y) for x, y in zip(a.batch(index), b.batch(index)))
    )


@pytest.fixture(scope="module")
def eager():
    """Four tiny clients built the eager way (``build_client_data``), with their config."""
    torch.set_num_threads(1)
    cfg = _config(4)
    plans = plan_partition(cfg.partition, cfg.data)
    return cfg, plans, [build_client_data(p, cfg.partition, cfg.data, None) for p in plans]


@pytest.mark.parametrize("cached", [False, True])
def test_lazy_clients_are_the_eager_ones_bit_for_bit_in_any_order(eager, tmp_path, cached):
    cfg, plans, built = eager
    cache = tmp_path if cached else None
    for _ in range(2 if cached else 1):  # with a cache: built into it, then read back from it
        lazy = lazy_client_data(plans, cfg.partition, cfg.data, cache)
        assert all(isinstance(c.train, LazyImageSet) for c in lazy)
        assert all(isinstance(c.test, MappedImageSet) for c in lazy)
        for i in (2, 0, 3, 1):  # not the plan order
            for split in ("test", "train", "val"):
                assert _same(getattr(lazy[i], split), getattr(built[i], split)), (i, split)
    union = join_sets([c.test for c in lazy])
    assert isinstance(union, MappedImageSet)  # the global test set stays on disk
    assert _same(union, join_sets([c.test for c in built]))


def test_only_the_training_splits_read_are_built(eager):
    cfg, plans, built = eager
    lazy = lazy_client_data(plans, cfg.partition, cfg.data, None)
    trains = lazy[0].train.source
    assert [len(c.train) for c in lazy] == [p.size for p in plans]  # sizes need no build
    assert lazy[0].train.class_names == built[0].train.class_names
    assert trains.builds == 0
    assert _same(lazy[3].train, built[3].train) and _same(lazy[1].train, built[1].train)
    assert trains.builds == 2 and set(trains.held) == {1, 3}
    lazy[3].train.batch(torch.tensor([0, 2]))  # a kept split is not built again
    assert trains.builds == 2


def test_splits_dropped_past_the_budget_are_built_again_the_same(eager):
    cfg, plans, built = eager
    trains = TrainSets(plans, cfg.partition, cfg.data, None, held_bytes=0)  # keeps the last one
    for i in (0, 1, 0):
        assert _same(trains.view(i), built[i].train)
    assert trains.builds == 3 and list(trains.held) == [0]
    copy = pickle.loads(pickle.dumps(trains.view(2)))  # a spawned worker gets no kept splits
    assert not copy.source.held and _same(copy, built[2].train)


def test_a_source_giving_other_records_is_refused():
    class Wrong:
        def get(self, key):
            return ImageSet(torch.zeros(2, 1, 1, 1, dtype=torch.uint8), torch.zeros(2).long(),
                            torch.zeros(2), ("a",))  # fmt: skip

    lazy = LazyImageSet(3, ("a",), Wrong(), 7)
    assert len(lazy) == 3
    with pytest.raises(ValueError, match=r"gave 2 records of \('a',\), expected 3 of \('a',\)"):
        lazy.batch(torch.tensor([0]))


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_a_damaged_store_entry_is_rebuilt(eager, tmp_path, caplog, suffix):
    cfg, plans, built = eager
    lazy_client_data(plans, cfg.partition, cfg.data, tmp_path)
    path = next(tmp_path.glob(f"images-clients-*{suffix}"))  # the index, or the images
    path.write_bytes(path.read_bytes()[:-100])  # a torn write
    with caplog.at_level(logging.WARNING):
        again = lazy_client_data(plans, cfg.partition, cfg.data, tmp_path)
    index = path.with_suffix(".npz")
    assert any(
        r.getMessage().startswith(f"{index}: damaged client data cache (") for r in caplog.records
    )
    assert all(_same(a.test, b.test) and _same(a.val, b.val) for a, b in zip(again, built))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        lazy_client_data(plans, cfg.partition, cfg.data, tmp_path)
    assert not caplog.records  # the entry was written again whole


def test_a_thousand_clients_build_only_the_clients_read(monkeypatch):
    """1,000 clients: listing them builds no training split; reading 10 builds those 10."""
    calls: list[tuple[int, str]] = []

    def fake_split(plan, cfg, data, split, cache_dir, progress=None, write=True):
        calls.append((plan.client, split))
        n = plan.size if split == "train" else 3 * (2 if split == "val" else 3)
        g = torch.Generator().manual_seed(plan.client * 3 + len(split))
        images = torch.randint(0, 256, (n, 2, 16, 16), generator=g, dtype=torch.uint8)
        labels = torch.arange(n) % 3
        return ImageSet(images, labels, torch.zeros(n), ("bpsk", "qpsk", "gfsk"))

    monkeypatch.setattr(client_sets, "build_split", fake_split)
    cfg = _config(1000)
    plans = plan_partition(cfg.partition, cfg.data)
    clients = lazy_client_data(plans, cfg.partition, cfg.data, None)
    assert len(clients) == 1000 and all(split != "train" for _, split in calls)
    assert len(calls) == 2000  # every validation and test split, once
    assert sum(len(c.train) for c in clients) == sum(p.size for p in plans)
    drawn = sorted(np.random.default_rng(0).choice(1000, 10, replace=False).tolist())
    for i in drawn:
        clients[i].train.batch(torch.tensor([0]))
    assert sorted(c for c, split in calls if split == "train") == drawn
    assert clients[0].train.source.builds == 10
