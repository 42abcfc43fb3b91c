"""The Flower ServerApp: the whole round loop is ``server.federate`` over a ``GridEngine``.

So a Flower run and an embedded run share sampling, checks, aggregation, evaluation,
checkpoints and metrics. ``serve`` is used by the simulation (with the task it already built);
``app`` is the ServerApp of ``flwr run`` (deployment), configured by ``[tool.flwr.app.config]``
of ``flower/pyproject.toml`` or ``--run-config``:

* ``run-dir``: the run directory (absolute: the ServerApp runs in the SuperLink's directory)
* ``config``: a RunConfig TOML ("" = defaults); ``overrides``: ``key=value`` items joined by ";"
* ``cache-dir``: data and backbone cache ("" = none); ``resume``: continue ``run-dir``
* ``connect-timeout``: seconds to wait for every partition-id's SuperNode
* ``data-at-sites``: each SuperNode reads its own ``data-path`` and the server none
  (``flower.sites.serve_sites``); ``test-data``: then, the server's own global test set
  (absolute paths joined by ","; "" = the evaluation is federated)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from logging import ERROR, INFO
from pathlib import Path

import torch
from flwr.app import Context
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from ...config import load_config
from ...errors import ConfigError, FedsbError
from ...reporter import Reporter
from ...runs import RunDir
from ..config import RunConfig
from ..methods import method
from ..server import RunResult, federate, prepare
from ..sites import check_site_config, load_sites, parse_paths
from ..task import Task, build_task, settled
from .engine import GridEngine
from .sites import serve_sites


def serve(
    grid: Grid,
    task: Task,
    cfg: RunConfig,
    run: RunDir,
    cache_dir: Path | None,
    reporter: Reporter,
    resume: bool = False,
    on_round: Callable[[dict], None] | None = None,
    connect_timeout: float = 120.0,
) -> RunResult:
    """``federate`` with the Flower nodes of ``grid`` as the engine."""
    engine = GridEngine(grid, task, cfg, cache_dir, connect_timeout)
    try:
        return federate(task, cfg, run, engine, cache_dir, reporter, resume, on_round)
    finally:
        engine.close()


class LogReporter:
    """Reporter for the ServerApp process: lines in the Flower log (``flwr run --stream``)."""

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """Log the start and the end of a step; progress within it is not logged."""
        log(INFO, "fedsb: %s (%d steps)", description, total)
        yield lambda n: None
        log(INFO, "fedsb: %s done", description)

    def info(self, message: str) -> None:
        """Log ``message`` as one fedsb line."""
        log(INFO, "fedsb: %s", message)


def _round_line(row: dict) -> None:
    log(
        INFO,
        "fedsb: round %d: test_acc %.4f, accepted %s, dropped %s",
        row["round"],
        row.get("test_acc", float("nan")),
        row["accepted"],
        row["dropped"] or "none",
    )


def open_run(run_config: dict) -> tuple[RunConfig, RunDir, Path | None, bool]:
    """(config, run dir, cache dir, resume) from the ServerApp's run config (see the top)."""
    if not str(run_config.get("run-dir", "")):
        raise FedsbError("run config: run-dir is required (--run-config \"run-dir='/abs/dir'\")")
    run_path = Path(str(run_config["run-dir"]))
    resume = bool(run_config.get("resume", False))
    cache = str(run_config.get("cache-dir", ""))
    cache_dir = Path(cache) if cache else None
    cfg = None
    if not resume:
        overrides = [o.strip() for o in str(run_config.get("overrides", "")).split(";")]
        cfg = load_config(
            RunConfig, str(run_config.get("config", "")) or None, [o for o in overrides if o]
        )
        cfg = replace(cfg, engine="flower")
    cfg, run = prepare(run_path, cfg, resume)
    if method(cfg.method).pooled:
        raise ConfigError(
            f"method {cfg.method!r} trains on the union of every client's data, which a "
            "deployment never gathers; run it with `fedsb run --method centralized`"
        )
    return cfg, run, cache_dir, resume


def site_options(run_config: dict, cfg: RunConfig, run: RunDir, resume: bool):
    """The server's test paths of a run with its data at the sites; None for another run.

    A resumed run keeps what its ``sites.json`` says; ``data-at-sites`` must be a boolean and
    ``test-data`` needs it.
    """
    flag = run_config.get("data-at-sites", False)
    if not isinstance(flag, bool):
        raise ConfigError(f"run config: data-at-sites: expected true or false, got {flag!r}")
    text = str(run_config.get("test-data", "")).strip()
    test = parse_paths(text, "run config: test-data") if text else ()
    if resume:
        saved = load_sites(run.path)
        if saved is None and flag:
            raise ConfigError(f"run config: data-at-sites: {run.path} is not a run at the sites")
        if saved is not None and text and test != saved:
            raise ConfigError(
                f"run config: test-data: {run.path} was started with {list(saved)}; leave "
                "test-data out to resume it"
            )
        return saved
    if text and not flag:
        raise ConfigError("run config: test-data: a server test set needs data-at-sites = true")
    if not flag:
        return None
    check_site_config(cfg)
    return test


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """``flwr run`` entry: one federated run into ``run-dir``; errors are logged as one line."""
    try:
        run_config = dict(context.run_config)
        cfg, run, cache_dir, resume = open_run(run_config)
        test_paths = site_options(run_config, cfg, run, resume)
        torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
        reporter = LogReporter()
        timeout = float(run_config.get("connect-timeout", 120.0))
        if test_paths is not None:
            result = serve_sites(
                grid, cfg, run, cache_dir, reporter, test_paths, resume, _round_line, timeout
            )
        else:
            cfg, checkpoint = settled(cfg, cache_dir, reporter)
            task = build_task(cfg, cache_dir, reporter, checkpoint=checkpoint)
            result = serve(grid, task, cfg, run, cache_dir, reporter, resume, _round_line, timeout)
    except FedsbError as exc:
        log(ERROR, "fedsb: %s", exc)
        raise
    log(
        INFO,
        "fedsb: done: test_acc %.4f, %.0f bytes in total, results in %s",
        result.test.accuracy,
        result.total_bytes,
        result.run,
    )
