"""``engine = "flower"``: the Flower Simulation Engine (Ray) in this process.

``flwr.simulation.run_simulation`` is deprecated in favour of ``flwr run`` but is the only
programmatic entry: it runs the ServerApp in a thread of this process (so it can use the task
already built and hand back the ``RunResult``) and the ClientApps in Ray actors, one per CPU
(``num_cpus=1``: two clients train at once on two cores). Each client is one SuperNode with
``partition-id`` = client id. Flower's environment is made quiet and local for the call.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ...errors import FedsbError
from ...reporter import Reporter
from ...runs import RunDir
from ..config import RunConfig
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
    with flower_env():
        from flwr.serverapp import ServerApp
        from flwr.simulation import run_simulation

        from .client_app import app as client_app
        from .server_app import serve

        outcome: dict[str, RunResult] = {}
        server_app = ServerApp()

        @server_app.main()
        def _main(grid, context) -> None:
            outcome["result"] = serve(
                grid, task, cfg, run, cache_dir, reporter, resume, on_round, connect_timeout=60.0
            )

        try:
            run_simulation(
                server_app=server_app,
                client_app=client_app,
                num_supernodes=len(task.units),
                backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
            )
        except FedsbError:
            raise
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - Flower/Ray failures, one line
            raise FederatedError(
                f"Flower simulation failed: {type(exc).__name__}: {exc}".splitlines()[0]
            ) from exc
    if "result" not in outcome:
        raise FederatedError("Flower simulation ended without a result (see its log above)")
    return outcome["result"]
