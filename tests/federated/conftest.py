"""Shared fixtures of the federated tests: one tiny pretrained backbone and small run configs.

The backbone (ResNet widths 16/32 on 16x16 two-channel images of three classes) is pretrained
once per session into a temporary directory, with its own data cache, in about 3 s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fedsb.config import apply_overrides
from fedsb.federated.config import RunConfig
from fedsb.federated.engine_local import LocalEngine
from fedsb.federated.engines import run_federated
from fedsb.federated.round0 import init_basis
from fedsb.federated.server import RunResult
from fedsb.federated.task import Task, build_task, initial_state
from fedsb.reporter import SilentReporter
from fedsb.training.config import PretrainConfig
from fedsb.training.pretrain import pretrain

from ..overrides import FRONTEND_OFF

TINY_IMAGES = [
    "data.classes='bpsk,qpsk,gfsk'",
    "data.generator.length=256",
    "data.images.size=16",
    "data.images.channels='spectrogram,constellation_comp'",
    *FRONTEND_OFF,  # the tiny backbone's records as they are
]
PRETRAIN = apply_overrides(
    PretrainConfig(),
    [
        *TINY_IMAGES,
        "data.per_class=150",
        "data.generator.snr_db=[0.0, 20.0]",
        "val_per_class=8",
        "test_per_class=30",
        "train.epochs=4",
        "train.batch_size=32",
        "train.threads=1",
        "model.widths=[16, 32]",
        "model.blocks=[1, 1]",
    ],
)
#: A run of ~1 s: 3 clients x 60 records, 2 rounds, rank 4, one torch thread.
SMALL = [
    "partition.clients=3",
    "partition.records_per_client=60",
    "partition.val_per_class=2",
    "partition.test_per_class=8",
    "rounds=2",
    "adapter.rank=4",
    "adapter.init_samples=32",
    "client.batch_size=16",
    "threads=1",
    # fp32: the exact reference, so tests can check Fed-SB's averaging, bytes and engines to the
    # last bit; the int8 default has its own tests (test_payload*.py, test_round0.py)
    "client.payload='fp32'",
]


@dataclass(frozen=True)
class Workspace:
    """The session's pretrained backbone and data cache."""

    pre: Path
    cache: Path

    def config(self, *overrides: str, base: tuple[str, ...] = tuple(SMALL)) -> RunConfig:
        """A RunConfig on the tiny images and backbone: ``base`` then ``overrides``."""
        return apply_overrides(
            RunConfig(), [*TINY_IMAGES, f"pretrained='{self.pre}'", *base, *overrides]
        )

    def run(self, out: Path, *overrides: str, **kw: Any) -> RunResult:
        return run_federated(self.config(*overrides, **kw), out, cache_dir=self.cache)


def read_rows(run: Path) -> list[dict[str, Any]]:
    """The rows of ``run/metrics.jsonl``."""
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]


def fedsb_task(ws: Workspace, *overrides: str) -> tuple[Task, RunConfig, dict[str, Any]]:
    """A fedsb task with B and A fixed by a federated round 0, its config and global state."""
    cfg = ws.config(*overrides)
    task = build_task(cfg, ws.cache, SilentReporter())
    engine = LocalEngine(task, cfg)
    init_basis(task, cfg, ws.cache, engine.init_round)
    engine.close()
    return task, cfg, initial_state(task)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("federated")
    pretrain(PRETRAIN, root / "pre", cache_dir=root / "cache")
    return Workspace(root / "pre", root / "cache")
