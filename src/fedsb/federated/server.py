"""The server loop of ``fedsb run``: run directories, round 0, the rounds, the final files.

One round (``rounds.run_round``) = the engine trains the sampled clients on the global state;
each answer is checked and the rest aggregated; the global model is evaluated on the global
test set; a row goes to ``metrics.jsonl`` and the progress (global state, server optimiser's
state, totals) is written atomically to ``state.safetensors`` (``progress``). ``resume``
continues from that file and ends with the same final state as an uninterrupted run, because
every random draw is a function of (seed, round, client). With the data at the sites
(``task.sites``: a deployment with ``data-at-sites``) the scores come from the nodes' sums.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config import load_config, to_dict
from ..errors import ConfigError
from ..evaluation.scoring import Predictions, save_predictions
from ..io.cache import atomic_file
from ..models.adapters import merge
from ..models.checkpoint import save_checkpoint
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
from ..training.calibration import TemperatureFit
from ..training.loop import Evaluation, evaluate_logits
from .aggregate import parameter_count
from .calibrate import final_evaluation, fit_global_temperature, site_final_evaluation
from .config import RunConfig
from .methods import FedMethod, method
from .personal import Personal, global_model, model_kept, unit_weights
from .personal import initial as initial_personal
from .progress import Progress, State, Totals, load_progress, save_progress, split_prefixed
from .round0 import init_basis
from .rounds import FederatedError, evaluate_state, initial_scores, run_round, sample_clients
from .states import initial_global, load_global, start_state
from .task import Task, load_basis, save_basis

if TYPE_CHECKING:  # engines.run_federated imports the server loop: typing only, no cycle
    from .engines import Engine, SiteEvaluator


@dataclass(frozen=True)
class RunResult:
    """A finished run: its test evaluation, bytes sent, trained parameters, client accuracies."""

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
    """Check the run directory before anything is written.

    A new run needs a writable directory that holds no run; a resumed one its config, readable
    rows, and either its state file or rows without one (it is started again then: see
    ``federate``).
    """
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
    """``--method a,b``: check that ``OUT`` is no run itself and each ``OUT/<method>`` is new.

    Checked before anything is trained.
    """
    paths = check_sub_runs(out, methods)
    for path in paths:
        check_out(path)
        check_new_run(path)
    return paths


def _restart(run: RunDir, reporter: Reporter) -> None:
    """Start a resumed run without a state file again from its config.toml, as a new run.

    It has no progress to keep: it stopped between its init row and its first checkpoint.
    """
    reporter.info(f"{run.path}: no checkpoint yet; starting the run again from its {CONFIG_FILE}")
    (run.path / METRICS_FILE).unlink(missing_ok=True)


def _resumed(task: Task, cfg: RunConfig, run: RunDir, reporter: Reporter) -> Progress:
    """The progress of the last checkpoint; rows written after it are dropped."""
    progress = load_progress(run.path / STATE_FILE)
    load_basis(task.model, run.path)
    _truncate_metrics(run, progress.done)
    reporter.info(f"resuming {run.path} after round {progress.done} of {cfg.rounds}")
    return progress


def _started(
    task: Task, cfg: RunConfig, run: RunDir, engine: Engine, cache_dir: Path | None
) -> Progress:
    """A new run: config, partition, round 0 (LoRA-SB's basis), the init row, checkpoint 0."""
    run.save_config(cfg)
    write_json(run.path / PARTITION_FILE, task.partition)
    init = {"clients": 0.0, "bytes_up": 0.0, "bytes_down": 0.0}
    if method(cfg.method).needs_basis:
        init = init_basis(task, cfg, cache_dir, engine.init_round)
    save_basis(task.model, run.path)
    fed = method(cfg.method)
    global_state = initial_global(task.model, fed)
    personal = initial_personal(task.model, fed, task.n_clients)
    shared = global_model(global_state, personal, unit_weights(task))
    if task.sites:
        frozen = initial_scores(task, engine, fed, shared)
    else:
        frozen = evaluate_state(task, shared, task.test, fed).as_dict("test")
    k = max(init["clients"], 1.0)
    totals = Totals(init["bytes_up"] + init["bytes_down"], (0,) * task.n_clients)
    run.log(
        round=0,
        stage="init",
        method=cfg.method,
        init_source=cfg.init_source,
        init_clients=int(init["clients"]),
        bytes_up_per_client=init["bytes_up"] / k,
        bytes_down_per_client=init["bytes_down"] / k,
        cumulative_bytes=totals.bytes,
        **frozen,
    )
    progress = Progress(global_state, {}, 0, totals, personal)
    save_progress(run.path / STATE_FILE, progress)
    return progress


def federate(
    task: Task,
    cfg: RunConfig,
    run: RunDir,
    engine: Engine,
    cache_dir: Path | None,
    reporter: Reporter,
    resume: bool = False,
    on_round: Callable[[dict], None] | None = None,
) -> RunResult:
    """The rounds, over any ``engines.Engine``.

    The embedded engine and the Flower ServerApp both call this, so both give the same numbers.
    """
    if resume and not (run.path / STATE_FILE).exists():
        _restart(run, reporter)
        resume = False
    if resume:
        progress = _resumed(task, cfg, run, reporter)
    else:
        progress = _started(task, cfg, run, engine, cache_dir)
    with reporter.task(f"{cfg.method}: rounds", cfg.rounds) as advance:
        advance(progress.done)
        for server_round in range(progress.done + 1, cfg.rounds + 1):
            progress, row = run_round(task, cfg, engine, server_round, progress)
            run.log(**row)
            save_progress(run.path / STATE_FILE, progress)
            if on_round:
                on_round(row)
            advance(1)
    return finish(task, cfg, run, progress.global_state, progress.totals, engine, progress.personal)


def _save_models(
    task: Task, cfg: RunConfig, run: RunDir, model_state: State, temperature: float
) -> None:
    """Save the adapter file (the global model's state) and the merged model.

    The adapter file holds the trained tensors (fedex, flora: and the folded W0; fedsa: the
    global A and the clients' mean B); the merged model is W0 + s·B·A of that state.
    """
    load_global(task.model, method(cfg.method), model_state)
    meta = {
        **task.meta,
        "kind": "adapted",
        "adapter": to_dict(cfg.adapter),
        "method": cfg.method,
        "temperature": temperature,
    }
    save_checkpoint(run.path / ADAPTER_FILE, model_state, meta)
    save_checkpoint(
        run.path / MODEL_FILE, merge(task.model).state_dict(), {**meta, "kind": "merged"}
    )


def _mean_round_bytes(run: RunDir) -> float:
    """Mean bytes down + up per participating client over the round rows."""
    rounds = [r for r in run.rows() if r.get("stage") == "round"]
    if not rounds:
        return 0.0
    return float(np.mean([r["bytes_down_per_client"] + r["bytes_up_per_client"] for r in rounds]))


def _evaluation_bytes(run: RunDir) -> float:
    """Bytes of the federated evaluations of the init and round rows (data at the sites)."""
    return float(
        sum(r.get("evaluation_bytes") or 0.0 for r in run.rows() if r.get("stage") != "final")
    )


def _global_model_scores(task: Task, fed: FedMethod, model_state: State) -> dict:
    """The global model of fedsa (global A, the clients' mean B) on the global test set."""
    glob = evaluate_state(task, model_state, task.test, fed)
    return {"global_model_test_acc": glob.accuracy, "global_model_test_loss": glob.loss}


def finish(
    task: Task,
    cfg: RunConfig,
    run: RunDir,
    global_state: State,
    totals: Totals,
    engine: Engine,
    personal: Personal | None = None,
) -> RunResult:
    """End a federated run: federated temperature scaling, then ``write_final``.

    ``personal``: what each client keeps (fedsa's B), for its own model's scores.
    """
    n = task.n_clients
    fit, calibration_bytes = fit_global_temperature(engine, n, global_state, personal)
    return write_final(
        task,
        cfg,
        run,
        global_state,
        fit,
        totals.bytes,
        calibration_bytes,
        personal=personal,
        engine=engine,
    )


def _final_scores(
    task: Task,
    run: RunDir,
    global_state: State,
    fit: TemperatureFit,
    fed: FedMethod,
    personal: Personal,
    engine: SiteEvaluator | None,
) -> tuple[Predictions | None, dict, Evaluation, dict]:
    """(predictions, evaluation.json, the row's test scores, more row keys) of the final state.

    With the data at the sites, from the nodes' sums (``calibrate.site_final_evaluation``).
    """
    if not task.sites:
        pred, evaluation = final_evaluation(task, global_state, fit, fed, personal)
        test = evaluate_logits(torch.from_numpy(pred.logits).float(), task.test)  # logits just made
        return pred, evaluation, test, {}
    assert engine is not None, "a run at the sites evaluates on its engine's nodes"
    pred, evaluation, test, answers = site_final_evaluation(task, engine, global_state, fit, fed)
    extra = {"evaluation": evaluation["evaluation"], **answers.row()}
    extra["total_evaluation_bytes"] = _evaluation_bytes(run) + answers.bytes
    return pred, evaluation, test, extra


def write_final(
    task: Task,
    cfg: RunConfig,
    run: RunDir,
    global_state: State,
    fit: TemperatureFit,
    run_bytes: float,
    calibration_bytes: float,
    fitted_on: str = "validation splits of the clients (federated sums)",
    personal: Personal | None = None,
    engine: SiteEvaluator | None = None,
) -> RunResult:
    """The final evaluation, the output files and the summary row, with temperature ``fit``.

    The evaluation is global and per client, before and after scaling; the files are the
    predictions, the model and the adapter. ``calibration_bytes`` are per training unit.
    ``personal`` (fedsa): every client's kept B, so its own model scores its test split.
    With the data at the sites (``task.sites``) the sites score their test splits on
    ``engine`` (``calibrate.site_final_evaluation``): no predictions file without a server
    test set, and the row says where the evaluation ran and what it moved.
    """
    fed, personal = method(cfg.method), model_kept(personal)  # int8's residuals are not models
    total_bytes = run_bytes + calibration_bytes * task.n_clients
    pred, evaluation, test, extra = _final_scores(
        task, run, global_state, fit, fed, personal, engine
    )
    evaluation["calibration"]["fitted_on"] = fitted_on
    if pred is not None:
        save_predictions(pred, run.path / PREDICTIONS_FILE)
    write_json(run.path / EVALUATION_FILE, evaluation)
    clients = tuple(c["accuracy"] for c in evaluation["clients"])
    model_state = global_model(global_state, personal, unit_weights(task))
    if personal:
        extra.update(_global_model_scores(task, fed, model_state))
    _save_models(task, cfg, run, model_state, fit.temperature)
    per_round = _mean_round_bytes(run)
    trained = parameter_count(
        start_state(task.model, fed, global_state, next(iter(personal.values()), None), 0)
    )
    run.log(
        round=cfg.rounds,
        stage="final",
        method=cfg.method,
        trained_parameters=trained,
        bytes_per_round_per_client=per_round,
        total_bytes=total_bytes,
        client_test_acc=list(clients),
        temperature=fit.temperature,
        calibration_bytes_per_client=calibration_bytes,
        test_ece=evaluation["test"]["calibration_before"]["ece"],
        test_ece_calibrated=evaluation["test"]["calibration_after"]["ece"],
        test_nll_calibrated=evaluation["test"]["calibration_after"]["nll"],
        **test.as_dict("test"),
        **extra,
    )
    return RunResult(
        run.path, cfg.method, cfg.rounds, test, per_round, total_bytes, trained, clients
    )


__all__ = [
    "ConfigError",
    "FederatedError",
    "RunResult",
    "federate",
    "prepare",
    "sample_clients",
    "split_prefixed",
]
