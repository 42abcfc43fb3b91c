"""The embedded engine: clients run in this process, one after another, or in worker processes.

Workers are forked after the task is built, so each inherits the model and the client data
(copy-on-write: they get them as the pool's initializer arguments, which a fork does not
pickle) and receives only (round, client, global state) per job; it returns the client's
serialized state. Sequential and pooled runs give identical numbers: every client's randomness
comes from ``client_seed(seed, round, client)``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import torch

from ..models.adapters import load_adapter_state
from ..training.loop import predict
from .aggregate import deserialize, serialize
from .calibrate import client_calibration_stats, val_units
from .client import client_init_step, client_step
from .config import RunConfig
from .faults import ClientResult
from .task import Task

State = dict[str, torch.Tensor]

_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"


class _WorkerState:
    """What a pool worker process holds: the task and config handed to it at start-up.

    With fork, they are inherited rather than pickled. Set once in each worker by
    ``_worker_init``; the parent process never sets it.
    """

    task: Task
    cfg: RunConfig


_WORKER = _WorkerState()


def init_samples(cfg: RunConfig, n_clients: int) -> int:
    """Round-0 samples per client: ``adapter.init_samples`` split over the clients."""
    return max(1, -(-cfg.adapter.init_samples // n_clients))


def run_client(task: Task, cfg: RunConfig, server_round: int, client: int, global_blob: bytes):
    """``client_step`` on serialized states: returns (blob, metrics)."""
    global_state = deserialize(global_blob)
    data = task.units[client]
    sent, metrics = client_step(task.model, data, cfg, server_round, client, global_state)
    return serialize(sent), metrics


def attempt(task: Task, cfg: RunConfig, server_round: int, client: int, blob: bytes):
    """``run_client`` timed, with any exception turned into an error text: (outcome, error, s)."""
    start = time.perf_counter()
    try:
        outcome, error = run_client(task, cfg, server_round, client, blob), None
    except Exception as exc:  # noqa: BLE001 - any client failure is reported, not raised
        outcome, error = None, f"{type(exc).__name__}: {exc}"
    return outcome, error, time.perf_counter() - start


def _worker_init(threads: int, task: Task, cfg: RunConfig) -> None:
    torch.set_num_threads(threads)
    _WORKER.task, _WORKER.cfg = task, cfg


def _worker_job(job: tuple[int, int, bytes]):
    return attempt(_WORKER.task, _WORKER.cfg, *job)


class LocalEngine:
    """The embedded ``engines.Engine``, run here or in forked workers.

    It makes the client updates for the server loop (``train``), LoRA-SB's round 0 and the
    temperature-scaling steps.
    """

    def __init__(self, task: Task, cfg: RunConfig):
        self.task, self.cfg = task, cfg
        self.pool: ProcessPoolExecutor | None = None
        self._val_logits: tuple[dict, list[torch.Tensor]] | None = None  # (state, per unit)
        workers = min(cfg.workers, len(task.units))
        if workers > 1:
            threads = max(1, (cfg.threads or os.cpu_count() or 1) // workers)
            ctx = multiprocessing.get_context(_START_METHOD)
            init_args = (threads, task, cfg)
            self.pool = ProcessPoolExecutor(workers, ctx, _worker_init, init_args)

    def init_gradients(self, ids: list[int]) -> list[State]:
        """LoRA-SB round 0: each listed unit's summed weight gradients, computed here."""
        samples = init_samples(self.cfg, len(ids))
        return [
            client_init_step(self.task.model, self.task.units[i], self.cfg, i, samples) for i in ids
        ]

    def train(self, server_round: int, ids: list[int], global_state: State) -> list[ClientResult]:
        """One round of the listed units from ``global_state``, here or in the worker pool."""
        blob = serialize(global_state)
        if self.pool is None:
            answers = [attempt(self.task, self.cfg, server_round, c, blob) for c in ids]
        else:
            answers = list(self.pool.map(_worker_job, [(server_round, c, blob) for c in ids]))
        return [self._result(c, *answer) for c, answer in zip(ids, answers)]

    def calibration_stats(self, ids: list[int], global_state: State, beta: float) -> list[dict]:
        """One temperature-scaling step of every listed unit, on its own validation split.

        Its logits under ``global_state`` are computed once, then reused for every β.
        """
        units = val_units(self.task)
        if self._val_logits is None or self._val_logits[0] is not global_state:
            load_adapter_state(self.task.model, global_state)
            self._val_logits = (global_state, [predict(self.task.model, u) for u in units])
        return [client_calibration_stats(self._val_logits[1][i], units[i], beta) for i in ids]

    def _result(self, client: int, outcome, error: str | None, seconds: float) -> ClientResult:
        """A client slower than ``server.timeout`` is left out, as a real server would not wait."""
        timeout = self.cfg.server.timeout
        if error is None and timeout > 0 and seconds > timeout:
            error = f"timed out ({seconds:.1f} s > {timeout:g} s)"
        if error is not None:
            return ClientResult(client, None, {"seconds": seconds}, error)
        sent, metrics = outcome
        return ClientResult(client, deserialize(sent), metrics, None, bytes_up=len(sent))

    def close(self) -> None:
        """Shut the worker pool down, cancelling pending jobs (idempotent)."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
