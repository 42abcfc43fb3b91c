"""Engine selection for ``fedsb run``: the embedded engine or Flower's Simulation Engine.

Not in server.py: the Flower apps import server.py (the rounds, ``federate``), so server.py
must not import them back. Both engines are imported lazily (Flower is heavy).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from ..reporter import Reporter, SilentReporter
from .config import RunConfig
from .server import RunResult, federate, prepare
from .task import build_task


def run_federated(
    cfg: RunConfig | None,
    out: str | Path,
    cache_dir: Path | None = None,
    reporter: Reporter | None = None,
    resume: bool = False,
    on_round: Callable[[dict], None] | None = None,
) -> RunResult:
    """Run (or resume) a federated run into ``out``; returns the final global evaluation.

    ``cfg`` is ignored when resuming (the run directory's config is used).
    """
    reporter = reporter or SilentReporter()
    cfg, run = prepare(Path(out), cfg, resume)
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    task = build_task(cfg, cache_dir, reporter)
    if cfg.engine == "flower":
        from .flower.simulation import run_simulation_engine

        return run_simulation_engine(task, cfg, run, cache_dir, reporter, resume, on_round)
    from .engine_local import LocalEngine

    engine = LocalEngine(task, cfg)
    try:
        return federate(task, cfg, run, engine, cache_dir, reporter, resume, on_round)
    finally:
        engine.close()
