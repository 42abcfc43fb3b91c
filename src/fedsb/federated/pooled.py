"""The pooled reference, ``method = "centralized"``: no federation, the fine-tuning loop.

One LoRA-SB model trains on the union of every client's training records through
``training.loop.fit``, the loop and warm-up + cosine schedule of ``fedsb finetune``, with the
federation's budget: ``rounds x client.local_epochs`` epochs at the clients' batch size, learning
rate, weight decay and label smoothing (AdamW; ``client.optimizer``, ``logit_adjust`` and
``prox_mu`` are federated remedies and do not apply); the plain head takes ``client.head_lr``
when set, as the clients' does. Its basis comes from the same
``init_basis`` (the union's gradient or the server's proxy data), its temperature from the union
of the clients' validation splits, and its scores from the same global and per-client test sets,
so its rows sit beside the federated runs' in every table and figure. A round row is written
after every ``local_epochs`` epochs, so the curves line up; nothing is sent, so every byte count
is 0. The run keeps no checkpoints: ``--resume`` trains it again from its config.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..data.imageset import ImageSet, join_sets
from ..models.adapters import adapter_state
from ..reporter import Reporter
from ..runs import METRICS_FILE, PARTITION_FILE, RunDir, write_json
from ..training.config import TrainConfig
from ..training.loop import evaluate_logits, fit, fit_temperature_on, predict
from .aggregate import parameter_count
from .client import param_groups
from .config import RunConfig
from .round0 import client_round0, init_basis
from .server import RunResult, write_final
from .task import Task, save_basis


def pooled_train_config(cfg: RunConfig) -> TrainConfig:
    """The fine-tuning settings with the federation's budget and the clients' optimiser settings."""
    c = cfg.client
    return TrainConfig(
        epochs=cfg.rounds * c.local_epochs,
        batch_size=c.batch_size,
        lr=c.lr,
        weight_decay=c.weight_decay,
        label_smoothing=c.label_smoothing,
        seed=cfg.seed,
        threads=cfg.threads,
    )


def _round_row(epoch_row: dict, server_round: int, task: Task, trained: int, start: float):
    """A metrics row shaped as a federated round's: the epoch's training and scores, 0 bytes."""
    test = evaluate_logits(predict(task.model, task.test), task.test)
    return {
        "round": server_round,
        "stage": "round",
        "clients": [],
        "accepted": [],
        "dropped": {},
        "bytes_down_per_client": 0,
        "bytes_up_per_client": 0.0,
        "round_bytes": 0,
        "cumulative_bytes": 0.0,
        "params_per_client": trained,
        "train_loss": epoch_row["train_loss"],
        "train_acc": epoch_row["train_acc"],
        "lr": epoch_row["lr"],
        "seconds": time.perf_counter() - start,
        "val_acc": epoch_row["val_acc"],
        "val_loss": epoch_row["val_loss"],
        **test.as_dict("test"),
    }


def _start(task: Task, cfg: RunConfig, run: RunDir, cache_dir: Path | None, union: ImageSet) -> int:
    """Config, partition, the basis from the union, the init row; returns the trained count."""
    run.save_config(cfg)
    write_json(run.path / PARTITION_FILE, task.partition)
    samples = cfg.adapter.init_samples
    init_basis(
        task,
        cfg,
        cache_dir,
        lambda ids, stage, sent: [client_round0(task.model, union, cfg, 0, samples, stage, sent)],
        ids=[0],  # the union is one client
    )
    save_basis(task.model, run.path)
    frozen = evaluate_logits(predict(task.model, task.test), task.test)
    zero = {"bytes_up_per_client": 0.0, "bytes_down_per_client": 0.0, "cumulative_bytes": 0.0}
    run.log(
        round=0,
        stage="init",
        method=cfg.method,
        init_source=cfg.init_source,
        **zero,
        **frozen.as_dict("test"),
    )
    return parameter_count(adapter_state(task.model))


def run_pooled(
    task: Task,
    cfg: RunConfig,
    run: RunDir,
    cache_dir: Path | None,
    reporter: Reporter,
    resume: bool = False,
    on_round: Callable[[dict], None] | None = None,
) -> RunResult:
    """Train the pooled reference into ``run``; the same ``RunResult`` as a federated run."""
    if resume:
        reporter.info(f"{run.path}: a centralized run keeps no checkpoints; training it again")
        (run.path / METRICS_FILE).unlink(missing_ok=True)
    union, val = join_sets(task.units), task.val  # built once (on disk where the units are)
    trained = _start(task, cfg, run, cache_dir, union)
    train_cfg = pooled_train_config(cfg)
    clock = [time.perf_counter()]

    def on_epoch(row: dict) -> None:
        if row["epoch"] % cfg.client.local_epochs:
            return
        out = _round_row(row, row["epoch"] // cfg.client.local_epochs, task, trained, clock[0])
        run.log(**out)
        if on_round:
            on_round(out)
        clock[0] = time.perf_counter()

    with reporter.task(f"{cfg.method}: epochs on pooled data", train_cfg.epochs * len(union)) as a:
        groups = param_groups(task.model, cfg, 1)  # round 1's rates: client.lr, head_lr
        fit(task.model, groups, union, val, train_cfg, on_epoch, a)
    temperature = fit_temperature_on(task.model, val)
    state = adapter_state(task.model)
    fitted_on = "the union of the clients' validation splits (pooled)"
    return write_final(task, cfg, run, state, temperature, 0.0, 0.0, fitted_on)


__all__ = ["pooled_train_config", "run_pooled"]
