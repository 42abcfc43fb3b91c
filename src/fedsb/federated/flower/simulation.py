"""``engine = "flower"``: the Flower Simulation Engine (Ray) in this process.

``flwr.simulation.run_simulation`` is deprecated in favour of ``flwr run`` but is the only
programmatic entry: it runs the ServerApp in a thread of this process (so it can use the task
already built and hand back the ``RunResult``) and the ClientApps in Ray actors, each with the
resources of ``[flower]`` (``num_cpus = 1``: two clients train at once on two cores; ``num_gpus``
a share of one GPU, refused without CUDA, where Ray would wait for ever). Each client is one
SuperNode with ``partition-id`` = client id. Flower's environment is made quiet and local for
the call. ``run_site_simulation`` simulates a deployment whose data stay at the sites (each node
reads only its own data-path, the server none).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from ...errors import ConfigError, FedsbError
from ...reporter import Reporter
from ...runs import RunDir
from ..config import FlowerConfig, RunConfig
from ..server import FederatedError, RunResult
from ..task import Task

#: Set for the run unless already set: no telemetry, no update check, never let Flower
#: install app dependencies (uv would fetch a CUDA torch), and Ray's future default for
#: ``num_gpus=0`` actors (which also silences its FutureWarning about it).
FLOWER_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
}
_RESTORED = ("PYTHONPATH",)  # Ray's backend rewrites it in os.environ


@contextlib.contextmanager
def flower_env() -> Iterator[None]:
    """FLOWER_ENV plus a temporary FLWR_HOME when none is set; the environment is restored."""
    saved = {k: os.environ.get(k) for k in (*FLOWER_ENV, "FLWR_HOME", *_RESTORED)}
    home = None
    for key, value in FLOWER_ENV.items():
        os.environ.setdefault(key, value)
    if not os.environ.get("FLWR_HOME"):
        home = tempfile.mkdtemp(prefix="fedsb-flwr-")
        os.environ["FLWR_HOME"] = home
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if home:
            shutil.rmtree(home, ignore_errors=True)


def backend_config(resources: FlowerConfig) -> dict:
    """The Simulation Engine's backend config: ``[flower]``'s resources per ClientApp."""
    if resources.num_gpus > 0 and not torch.cuda.is_available():
        raise ConfigError(
            f"flower.num_gpus: {resources.num_gpus:g} but torch {torch.__version__} sees no CUDA "
            "device; set it to 0"
        )
    return {
        "client_resources": {
            "num_cpus": resources.num_cpus,
            "num_gpus": float(resources.num_gpus),
        }
    }


def _simulate(server_main, client_app, n_nodes: int, resources: FlowerConfig) -> None:
    """Run ``server_main(grid, context)`` against ``n_nodes`` simulated ClientApps."""
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    backend = backend_config(resources)  # before Ray starts
    server_app = ServerApp()
    server_app.main()(server_main)
    try:
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=n_nodes,
            backend_config=backend,
        )
    except FedsbError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - Flower/Ray failures, one line
        raise FederatedError(
            f"Flower simulation failed: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from exc


def _result(outcome: dict[str, RunResult]) -> RunResult:
    if "result" not in outcome:
        raise FederatedError("Flower simulation ended without a result (see its log above)")
    return outcome["result"]


def run_simulation_engine(
    task: Task,
    cfg: RunConfig,
    run: RunDir,
    cache_dir: Path | None,
    reporter: Reporter,
    resume: bool = False,
    on_round: Callable[[dict], None] | None = None,
) -> RunResult:
    """``server.federate`` over Flower's simulated SuperNodes; the same ``RunResult``."""
    outcome: dict[str, RunResult] = {}
    with flower_env():
        from .client_app import app as client_app
        from .server_app import serve

        def _main(grid, context) -> None:
            outcome["result"] = serve(
                grid, task, cfg, run, cache_dir, reporter, resume, on_round, connect_timeout=60.0
            )

        _simulate(_main, client_app, len(task.units), cfg.flower)
    return _result(outcome)


def run_site_simulation(
    cfg: RunConfig,
    run: RunDir,
    data_paths: Sequence[str],
    test_paths: tuple[str, ...],
    cache_dir: Path | None,
    reporter: Reporter,
    resume: bool = False,
    on_round: Callable[[dict], None] | None = None,
) -> RunResult:
    """A deployment with its data at the sites, simulated: node i reads only ``data_paths[i]``.

    The server runs ``sites.serve_sites`` in this process, exactly as the ServerApp of a
    deployment with ``data-at-sites = true``; ``data_paths[i]`` may list several paths (",").
    """
    outcome: dict[str, RunResult] = {}
    with flower_env():
        from .client_app import site_app
        from .sites import serve_sites

        def _main(grid, context) -> None:
            outcome["result"] = serve_sites(
                grid, cfg, run, cache_dir, reporter, test_paths, resume, on_round, 60.0
            )

        _simulate(_main, site_app(data_paths), len(data_paths), cfg.flower)
    return _result(outcome)
