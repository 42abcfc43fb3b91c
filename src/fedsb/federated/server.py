"""The server loop of ``fedsb run``: sample, collect, check, aggregate, evaluate, checkpoint.

One round = the engine trains the sampled clients on the global state; each answer is checked
(``check_update``: keys, shapes, dtypes, finiteness, norm bound; crashes and timeouts come from
the engine) and the rest aggregated; the global model is evaluated on the global test set; a
row goes to ``metrics.jsonl`` and the global state (with the server optimiser's state) is
written atomically to ``state.safetensors``. ``resume`` continues from that file and ends with
the same final state as an uninterrupted run, because every random draw is a function of
(seed, round, client).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import load_config, to_dict
from ..data.imageset import ImageSet
from ..data.partition import partition_rows
from ..errors import ConfigError, FedsbError
from ..evaluation.scoring import save_predictions
from ..io.cache import atomic_file
from ..models.adapters import adapter_state, load_adapter_state, merge
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..reporter import Reporter
from ..runs import (
    ADAPTER_FILE,
    CONFIG_FILE,
    EVALUATION_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PARTITION_FILE,
    PREDICTIONS_FILE,
    STATE_FILE,
    RunDir,
    check_out,
    check_sub_runs,
    read_rows,
    write_json,
)
from ..training.loop import Evaluation, evaluate, predict
from . import dp as dpacc
from .aggregate import (
    aggregate,
    check_update,
    parameter_count,
    payload_bytes,
    server_step,
    update_agreement,
)
from .calibrate import final_evaluation, fit_global_temperature
from .config import RunConfig
from .faults import ClientResult
from .methods import method
from .task import Task, init_basis, load_basis, save_basis


class FederatedError(FedsbError):
    """A round cannot go on (too few valid updates) or a run directory cannot be used."""


def sample_clients(cfg: RunConfig, server_round: int, n_units: int) -> list[int]:
    """Clients of ``server_round``: a seeded draw of ceil(fraction * n), at least min_clients."""
    if n_units == 1:
        return [0]
    k = max(cfg.server.min_clients, int(np.ceil(cfg.server.fraction * n_units)))
    rng = np.random.default_rng([cfg.seed, server_round, 17])
    return sorted(int(i) for i in rng.choice(n_units, size=min(k, n_units), replace=False))


def evaluate_state(task: Task, state, data: ImageSet) -> Evaluation:
    load_adapter_state(task.model, state)
    return evaluate(predict(task.model, data), data)


@dataclass(frozen=True)
class RunResult:
    run: Path
    method: str
    rounds: int
    test: Evaluation
    bytes_per_round: float  # mean bytes up + down per participating client per round
    total_bytes: float
    trained_parameters: int
    client_accuracy: tuple[float, ...]


def _truncate_metrics(run: RunDir, last_round: int) -> None:
    """Drop rows written after the checkpoint of ``last_round`` (a run killed mid-round)."""
    rows = [r for r in run.rows() if r.get("round", 0) <= last_round and r.get("stage") != "final"]
    path = run.path / METRICS_FILE
    with atomic_file(path) as handle:
        handle.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())


def prepare(run_path: Path, cfg: RunConfig | None, resume: bool) -> tuple[RunConfig, RunDir]:
    """Check the run directory before anything is written: a new run needs a writable
    directory that holds no run; a resumed one its config, readable rows, and either its state
    file or rows without one (it is started again then: see ``federate``)."""
    if resume:
        if not (run_path / CONFIG_FILE).is_file():
            raise FederatedError(f"{run_path}: nothing to resume (no {CONFIG_FILE})")
        check_out(run_path)
        read_rows(run_path / METRICS_FILE)  # a corrupt row fails here, not after the set-up
        if not (run_path / STATE_FILE).exists() and not (run_path / METRICS_FILE).exists():
            raise FederatedError(
                f"{run_path}: nothing to resume (no {STATE_FILE} or {METRICS_FILE}: it never "
                "started); run it as a new run with this --out"
            )
        return load_config(RunConfig, run_path / CONFIG_FILE), RunDir(run_path)
    check_out(run_path)
    check_new_run(run_path)
    assert cfg is not None
    return cfg, RunDir(run_path)


def check_new_run(run_path: Path) -> None:
    """Refuse a directory that already holds a run: it is continued with ``--resume``."""
    if (run_path / STATE_FILE).exists():
        raise FederatedError(f"{run_path}: already holds a run; pass --resume or another --out")
    if (run_path / METRICS_FILE).exists():
        raise FederatedError(
            f"{run_path}: already holds a run; pass --resume (it stopped before its first "
            f"checkpoint: --resume starts it again from its {CONFIG_FILE}) or another --out"
        )


def check_sub_run_dirs(out: Path, methods: list[str]) -> list[Path]:
    """``--method a,b``: ``OUT`` is no run itself and each ``OUT/<method>`` is new (checked
    before anything is trained)."""
    paths = check_sub_runs(out, methods)
    for path in paths:
        check_out(path)
        check_new_run(path)
    return paths


def _restart(run: RunDir, reporter: Reporter) -> None:
    """A resumed run without a state file has no progress to keep (it stopped between its
    init row and its first checkpoint): it starts again from its config.toml, as a new run."""
    reporter.info(f"{run.path}: no checkpoint yet; starting the run again from its {CONFIG_FILE}")
    (run.path / METRICS_FILE).unlink(missing_ok=True)


def federate(
    task: Task,
    cfg: RunConfig,
    run: RunDir,
    engine,
    cache_dir: Path | None,
    reporter: Reporter,
    resume: bool = False,
    on_round: Callable[[dict], None] | None = None,
) -> RunResult:
    """The rounds, over any engine with ``init_gradients(ids)`` and ``train(round, ids, state)``.

    The embedded engine and the Flower ServerApp both call this, so both give the same numbers.
    """
    if resume and not (run.path / STATE_FILE).exists():
        _restart(run, reporter)
        resume = False
    if resume:
        state, ckpt = load_checkpoint(run.path / STATE_FILE)
        load_basis(task.model, run.path)
        done = int(ckpt["round"])
        global_state = {k[7:]: v for k, v in state.items() if k.startswith("global.")}
        opt_state = {k[4:]: v for k, v in state.items() if k.startswith("opt.")}
        totals = ckpt["totals"]
        _truncate_metrics(run, done)
        reporter.info(f"resuming {run.path} after round {done} of {cfg.rounds}")
    else:
        run.save_config(cfg)
        plans = partition_rows([c.plan for c in task.clients])
        write_json(run.path / PARTITION_FILE, plans)
        init = {"bytes_up": 0.0, "bytes_down": 0.0}
        if method(cfg.method).needs_basis:
            init = init_basis(task, cfg, cache_dir, engine.init_gradients)
        save_basis(task.model, run.path)
        global_state, opt_state, done = adapter_state(task.model), {}, 0
        frozen = evaluate_state(task, global_state, task.test)
        central = method(cfg.method).pooled  # pooled data: nothing is sent
        per_client = 0.0 if central else init["bytes_up"] + init["bytes_down"]
        totals = {"bytes": per_client * len(task.units), "dp_steps": [0] * len(task.units)}
        run.log(
            round=0,
            stage="init",
            method=cfg.method,
            init_source=cfg.init_source,
            bytes_up_per_client=0.0 if central else init["bytes_up"],
            bytes_down_per_client=0.0 if central else init["bytes_down"],
            cumulative_bytes=totals["bytes"],
            **frozen.as_dict("test"),
        )
        _checkpoint(run, global_state, opt_state, 0, totals)
    with reporter.task(f"{cfg.method}: rounds", cfg.rounds) as advance:
        advance(done)
        for server_round in range(done + 1, cfg.rounds + 1):
            global_state, opt_state, row = run_round(
                task, cfg, engine, server_round, global_state, opt_state, totals
            )
            run.log(**row)
            _checkpoint(run, global_state, opt_state, server_round, totals)
            if on_round:
                on_round(row)
            advance(1)
    return finish(task, cfg, run, global_state, totals, engine)


def _checkpoint(run: RunDir, global_state, opt_state, server_round: int, totals: dict) -> None:
    tensors = {f"global.{k}": v for k, v in global_state.items()}
    tensors.update({f"opt.{k}": v for k, v in opt_state.items()})
    save_checkpoint(
        run.path / STATE_FILE,
        tensors,
        {"kind": "federated-state", "round": server_round, "totals": totals},
    )


def run_round(
    task: Task, cfg: RunConfig, engine, server_round: int, global_state, opt_state, totals: dict
):
    """One round; returns the new global state, optimiser state and the metrics row."""
    start = time.perf_counter()
    ids = sample_clients(cfg, server_round, len(task.units))
    results: list[ClientResult] = engine.train(server_round, ids, global_state)
    dropped: dict[str, str] = {}
    accepted: list[ClientResult] = []
    for res in results:
        reason = res.error or check_update(res.state, global_state, cfg.server.norm_bound)
        if reason is None:
            accepted.append(res)
        else:
            dropped[str(res.client)] = reason
    if len(accepted) < min(cfg.server.min_clients, len(task.units)):
        detail = "; ".join(f"client {c}: {r}" for c, r in dropped.items())
        raise FederatedError(
            f"round {server_round}: {len(accepted)} valid updates, fewer than "
            f"server.min_clients={cfg.server.min_clients} ({detail})"
        )
    states = [r.state for r in accepted]
    weights = [r.metrics["num-examples"] for r in accepted]
    aggregated = aggregate(cfg.method, states, weights, cfg.server.aggregation, cfg.server.trim)
    new_global, new_opt = server_step(
        global_state,
        aggregated,
        cfg.server.optimizer,
        opt_state,
        cfg.server.lr,
        cfg.server.beta1,
        cfg.server.beta2,
        cfg.server.tau,
    )
    val = evaluate_state(task, new_global, task.val)  # for model and hyper-parameter choice
    test = evaluate_state(task, new_global, task.test)
    central = method(cfg.method).pooled  # one training unit on pooled data: nothing is sent
    down = 0 if central else payload_bytes(global_state)
    ups = [0 if central else r.bytes_up for r in results if r.bytes_up]
    round_bytes = down * len(ids) + sum(ups)
    totals["bytes"] += round_bytes
    row = {
        "round": server_round,
        "stage": "round",
        "clients": ids,
        "accepted": [r.client for r in accepted],
        "dropped": dropped,
        "bytes_down_per_client": down,
        "bytes_up_per_client": float(np.mean(ups)) if ups else 0.0,
        "params_per_client": parameter_count(global_state),
        "round_bytes": round_bytes,
        "cumulative_bytes": totals["bytes"],
        "train_loss": float(
            np.average([r.metrics["train_loss"] for r in accepted], weights=weights)
        ),
        "train_acc": float(np.average([r.metrics["train_acc"] for r in accepted], weights=weights)),
        "lr": accepted[0].metrics.get("lr"),
        "update_agreement": update_agreement(states, weights, global_state),
        "seconds": time.perf_counter() - start,
        "val_acc": val.accuracy,
        "val_loss": val.loss,
        **test.as_dict("test"),
    }
    if cfg.dp.enabled:
        eps = []
        for r in accepted:
            totals["dp_steps"][r.client] += int(r.metrics["dp_steps"])
        for r in results:
            if r.metrics.get("dp_sigma") is not None:
                steps = totals["dp_steps"][r.client]
                eps.append(
                    dpacc.epsilon(cfg.dp, r.metrics["dp_sigma"], r.metrics["dp_sample_rate"], steps)
                )
        row["dp_epsilon"] = max(eps) if eps else None
        row["dp_sigma"] = float(np.mean([r.metrics["dp_sigma"] for r in accepted]))
    return new_global, new_opt, row


def finish(
    task: Task, cfg: RunConfig, run: RunDir, global_state, totals: dict, engine
) -> RunResult:
    """Federated temperature scaling, final evaluation (global and per client, before and after
    scaling), predictions, model and adapter files, the summary row."""
    fit, calibration_bytes = fit_global_temperature(engine, len(task.units), global_state)
    if method(cfg.method).pooled:
        calibration_bytes = 0.0  # pooled validation data: nothing is sent
    totals["bytes"] += calibration_bytes * len(task.units)
    pred, evaluation = final_evaluation(task, global_state, fit)
    save_predictions(pred, run.path / PREDICTIONS_FILE)
    write_json(run.path / EVALUATION_FILE, evaluation)
    test = evaluate(torch.from_numpy(pred.logits).float(), task.test)  # the logits just made
    clients = tuple(c["accuracy"] for c in evaluation["clients"])
    meta = {
        **task.meta,
        "kind": "adapted",
        "adapter": to_dict(cfg.adapter),
        "method": cfg.method,
        "temperature": fit.temperature,
    }
    save_checkpoint(run.path / ADAPTER_FILE, global_state, meta)
    save_checkpoint(
        run.path / MODEL_FILE, merge(task.model).state_dict(), {**meta, "kind": "merged"}
    )
    rounds = [r for r in run.rows() if r.get("stage") == "round"]
    per_round = (
        float(np.mean([r["bytes_down_per_client"] + r["bytes_up_per_client"] for r in rounds]))
        if rounds
        else 0.0
    )
    trained = parameter_count(global_state)
    run.log(
        round=cfg.rounds,
        stage="final",
        method=cfg.method,
        trained_parameters=trained,
        bytes_per_round_per_client=per_round,
        total_bytes=totals["bytes"],
        client_test_acc=list(clients),
        temperature=fit.temperature,
        calibration_bytes_per_client=calibration_bytes,
        test_ece=evaluation["test"]["calibration_before"]["ece"],
        test_ece_calibrated=evaluation["test"]["calibration_after"]["ece"],
        test_nll_calibrated=evaluation["test"]["calibration_after"]["nll"],
        **test.as_dict("test"),
    )
    return RunResult(
        run.path, cfg.method, cfg.rounds, test, per_round, totals["bytes"], trained, clients
    )


__all__ = ["ConfigError", "FederatedError", "RunResult", "federate", "prepare", "sample_clients"]
