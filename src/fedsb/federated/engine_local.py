"""The embedded engine: clients run in this process, one after another, or in worker processes.

Workers are forked after the task is built, so each inherits the model and the client data
(copy-on-write: they get them as the pool's initializer arguments, which a fork does not
pickle) and receives only (round, client, global state, kept state) per job; it returns the
client's serialized state (and what it keeps: fedsa's B, held for it in the server's
checkpoint). Sequential and pooled runs give identical numbers: every client's randomness comes
from ``client_seed(seed, round, client)``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor

import torch

from .aggregate import deserialize, serialize
from .calibrate import client_calibration_stats, val_units
from .client import client_step
from .config import RunConfig
from .faults import ClientResult
from .methods import method
from .personal import client_logits
from .round0 import client_round0
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


def run_client(
    task: Task,
    cfg: RunConfig,
    server_round: int,
    client: int,
    global_blob: bytes,
    kept_blob: bytes | None = None,
):
    """``client_step`` on serialized states: returns (sent blob, metrics, kept blob or None)."""
    global_state = deserialize(global_blob)
    personal = deserialize(kept_blob) if kept_blob is not None else None
    data = task.units[client]
    sent, metrics, kept = client_step(
        task.model, data, cfg, server_round, client, global_state, personal
    )
    return serialize(sent), metrics, (serialize(kept) if kept else None)


def attempt(task: Task, cfg: RunConfig, server_round: int, client: int, blob: bytes, kept=None):
    """``run_client`` timed, with any exception turned into an error text: (outcome, error, s)."""
    start = time.perf_counter()
    try:
        outcome, error = run_client(task, cfg, server_round, client, blob, kept), None
    except Exception as exc:  # noqa: BLE001 - any client failure is reported, not raised
        outcome, error = None, f"{type(exc).__name__}: {exc}"
    return outcome, error, time.perf_counter() - start


def _worker_init(threads: int, task: Task, cfg: RunConfig) -> None:
    torch.set_num_threads(threads)
    _WORKER.task, _WORKER.cfg = task, cfg


def _worker_job(job: tuple[int, int, bytes, bytes | None]):
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

    def init_round(self, ids: list[int], stage: str, sent: State) -> list[State]:
        """LoRA-SB round 0: each listed unit's reply to ``stage`` (``round0``), computed here."""
        samples = init_samples(self.cfg, len(ids))
        model, units = self.task.model, self.task.units
        return [client_round0(model, units[i], self.cfg, i, samples, stage, sent) for i in ids]

    def train(
        self,
        server_round: int,
        ids: list[int],
        global_state: State,
        personal: Mapping[int, State] | None = None,
    ) -> list[ClientResult]:
        """One round of the listed units from ``global_state``, here or in the worker pool.

        ``personal``: what each client kept from its last round (fedsa's B, int8 residuals),
        handed back to it; a client without an entry (no residual yet) gets None.
        ``global_state`` is the broadcast as sent (``payload.broadcast``); its blob is the wire.
        """
        blob = serialize(global_state)
        kept = {c: serialize(personal[c]) for c in ids if c in (personal or {})}
        jobs = [(server_round, c, blob, kept.get(c)) for c in ids]
        if self.pool is None:
            answers = [attempt(self.task, self.cfg, *job) for job in jobs]
        else:
            answers = list(self.pool.map(_worker_job, jobs))
        return [self._result(c, *answer) for c, answer in zip(ids, answers)]

    def calibration_stats(
        self,
        ids: list[int],
        global_state: State,
        beta: float,
        personal: Mapping[int, State] | None = None,
    ) -> list[dict]:
        """One temperature-scaling step of every listed unit, on its own validation split.

        Its logits under ``global_state`` (and its own kept tensors) are computed once, then
        reused for every β.
        """
        units = val_units(self.task)
        if self._val_logits is None or self._val_logits[0] is not global_state:
            fed = method(self.cfg.method)
            logits = client_logits(self.task.model, fed, global_state, personal or {}, units)
            self._val_logits = (global_state, logits)
        return [client_calibration_stats(self._val_logits[1][i], units[i], beta) for i in ids]

    def _result(self, client: int, outcome, error: str | None, seconds: float) -> ClientResult:
        """A client slower than ``server.timeout`` is left out, as a real server would not wait."""
        timeout = self.cfg.server.timeout
        if error is None and timeout > 0 and seconds > timeout:
            error = f"timed out ({seconds:.1f} s > {timeout:g} s)"
        if error is not None:
            return ClientResult(client, None, {"seconds": seconds}, error)
        sent, metrics, kept = outcome
        personal = deserialize(kept) if kept is not None else None
        return ClientResult(client, deserialize(sent), metrics, None, len(sent), personal)

    def close(self) -> None:
        """Shut the worker pool down, cancelling pending jobs (idempotent)."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
