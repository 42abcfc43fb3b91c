"""The engine interface of ``server.federate`` and engine selection for ``fedsb run``.

An engine moves states between the server loop and the clients: the embedded ``LocalEngine``
(``engine_local``) or Flower's ``GridEngine`` (``flower.engine``, used by the Simulation Engine
and by deployments). ``run_federated`` picks one; it imports server.py and both engines lazily,
because the Flower apps import server.py, and Flower is heavy (server.py, rounds.py and
calibrate.py import ``Engine`` for typing only, so there is no import cycle). ``run_at_sites``
simulates a deployment whose data stay at the sites (``SiteEvaluator``: the evaluation runs on
the nodes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

from ..errors import ConfigError
from ..reporter import Reporter, SilentReporter
from ..training.pretrain import DrawHistory
from .config import RunConfig
from .faults import ClientResult
from .methods import method
from .progress import State
from .site_eval import SiteAnswers
from .task import build_task, settled

if TYPE_CHECKING:
    from .server import RunResult


@runtime_checkable
class Engine(Protocol):
    """What ``federate`` and ``calibrate.fit_global_temperature`` ask of an engine."""

    def init_round(self, ids: list[int], stage: str, sent: State) -> list[State]:
        """LoRA-SB round 0: each listed client's reply to ``stage`` (``round0``), in order."""
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


@runtime_checkable
class SiteEvaluator(Protocol):
    """What a run with its data at the sites also asks of its engine: evaluation on the nodes.

    Each answer is a node's sums (``site_eval``), never logits; ``flower.sites.SiteEngine``.
    """

    def evaluate(self, ids: list[int], global_state: State, splits: tuple[str, ...]) -> SiteAnswers:
        """Each listed node's sums of its ``splits`` ("val", "test") under ``global_state``."""
        ...

    def final_scores(self, ids: list[int], global_state: State, temperature: float) -> SiteAnswers:
        """Each listed node's test-split sums at ``temperature`` (``site_scores.score_sums``)."""
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
    cfg, checkpoint = settled(cfg, cache_dir, reporter, on_history)
    task = build_task(cfg, cache_dir, reporter, checkpoint=checkpoint)
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


def run_at_sites(
    cfg: RunConfig | None,
    out: str | Path,
    data_paths: Sequence[str],
    test_paths: Sequence[str] = (),
    cache_dir: Path | None = None,
    reporter: Reporter | None = None,
    resume: bool = False,
    on_round: Callable[[dict], None] | None = None,
) -> RunResult:
    """A run with its data at the sites, on Flower's Simulation Engine (``engine = "flower"``).

    Site i reads only ``data_paths[i]`` (absolute; several joined by ","), as a SuperNode
    started with ``--node-config "data-path=..."``; the server reads none of them. With
    ``test_paths`` the server evaluates on its own global test set, else on the sites' sums.
    A resumed run keeps its test set (``sites.json``).
    """
    from .flower.simulation import run_site_simulation
    from .server import prepare
    from .sites import check_site_config, load_sites, parse_paths

    reporter = reporter or SilentReporter()
    for value in data_paths:
        parse_paths(value)  # absolute paths, before anything is written
    tests = parse_paths(",".join(test_paths), "test-data") if test_paths else ()
    if cfg is not None and not resume:
        check_site_config(cfg)
        cfg = replace(cfg, engine="flower")
    cfg, run = prepare(Path(out), cfg, resume)
    if resume:
        saved = load_sites(run.path)
        if saved is None:
            raise ConfigError(f"{run.path}: not a run with its data at the sites (no sites.json)")
        tests = saved
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    return run_site_simulation(
        cfg, run, list(data_paths), tests, cache_dir, reporter, resume, on_round
    )
