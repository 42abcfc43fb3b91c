"""The engine interface of ``server.federate`` and engine selection for ``fedsb run``.

An engine moves states between the server loop and the clients: the embedded ``LocalEngine``
(``engine_local``) or Flower's ``GridEngine`` (``flower.engine``, used by the Simulation Engine
and by deployments). ``run_federated`` picks one; it imports server.py and both engines lazily,
because the Flower apps import server.py, and Flower is heavy (server.py, rounds.py and
calibrate.py import ``Engine`` for typing only, so there is no import cycle).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

from ..reporter import Reporter, SilentReporter
from ..training.pretrain import DrawHistory
from .config import RunConfig
from .faults import ClientResult
from .methods import method
from .progress import State
from .task import build_task

if TYPE_CHECKING:
    from .server import RunResult


@runtime_checkable
class Engine(Protocol):
    """What ``federate`` and ``calibrate.fit_global_temperature`` ask of an engine."""

    def init_gradients(self, ids: list[int]) -> list[State]:
        """LoRA-SB round 0: each listed client's summed weight gradients, in ``ids`` order."""
        ...

    def train(
        self,
        server_round: int,
        ids: list[int],
        global_state: State,
        personal: Mapping[int, State] | None = None,
    ) -> list[ClientResult]:
        """One round of the listed clients from ``global_state``: one answer each, in order.

        ``personal``: client id -> what that client kept from its last round (fedsa's B); each
        answer's ``personal`` is what it keeps now.
        """
        ...

    def calibration_stats(
        self,
        ids: list[int],
        global_state: State,
        beta: float,
        personal: Mapping[int, State] | None = None,
    ) -> list[dict]:
        """One temperature-scaling step: the clients' sums at ``beta`` (see ``calibrate``).

        With ``personal``, each client scores its own model (the global state + its tensors).
        """
        ...

    def close(self) -> None:
        """Release workers (idempotent)."""
        ...


def run_federated(
    cfg: RunConfig | None,
    out: str | Path,
    cache_dir: Path | None = None,
    reporter: Reporter | None = None,
    resume: bool = False,
    on_round: Callable[[dict], None] | None = None,
    on_history: DrawHistory | None = None,
) -> RunResult:
    """Run (or resume) a federated run into ``out``; returns the final global evaluation.

    ``cfg`` is ignored when resuming (the run directory's config is used). ``on_history``
    draws the training curve of a backbone that has to be pretrained first.
    """
    from .server import federate, prepare

    reporter = reporter or SilentReporter()
    cfg, run = prepare(Path(out), cfg, resume)
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    task = build_task(cfg, cache_dir, reporter, on_history=on_history)
    if method(cfg.method).pooled:  # the reference: no federation, so no engine
        from .pooled import run_pooled

        return run_pooled(task, cfg, run, cache_dir, reporter, resume, on_round)
    if cfg.engine == "flower":
        from .flower.simulation import run_simulation_engine

        return run_simulation_engine(task, cfg, run, cache_dir, reporter, resume, on_round)
    from .engine_local import LocalEngine

    engine = LocalEngine(task, cfg)
    try:
        return federate(task, cfg, run, engine, cache_dir, reporter, resume, on_round)
    finally:
        engine.close()
