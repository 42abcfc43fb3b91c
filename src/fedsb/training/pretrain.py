"""``fedsb pretrain``: train a backbone from scratch on the source domain and save it."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import torch
from torch import nn

from ..config import config_file, config_hash, load_config, to_dict
from ..data.imageset import ImageSet
from ..data.splits import build_splits
from ..devices import resolve_device
from ..errors import ConfigError
from ..models.backbones import build_backbone, count_parameters
from ..models.checkpoint import save_checkpoint
from ..models.shipped import shipped_backbone
from ..reporter import Reporter, SilentReporter
from ..runs import MODEL_FILE, RunDir
from .calibration import TemperatureFit
from .config import PretrainConfig, TrainConfig
from .loop import Evaluation, evaluate_logits, fit, fit_temperature_on, predict

P = ParamSpec("P")
R = TypeVar("R")

#: Draws a run's metrics rows into a figure file with a title (the callers pass
#: ``report.curves.training_curve``; training itself draws nothing).
DrawHistory = Callable[[list[dict[str, Any]], Path, str], object]


def set_threads(cfg: TrainConfig) -> None:
    """Use ``cfg.threads`` torch threads (0: one per core), until the caller returns.

    Callers are wrapped in :func:`keeps_threads`: a backbone pretrained on first use inside a
    ``threads = 1`` federated run must not leave the run on every core (two spinning OpenMP
    threads beside another job made its rounds 10x slower).
    """
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)


def keeps_threads(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn``, with the torch thread count it found put back when it returns or raises."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        previous = torch.get_num_threads()
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(previous)

    return wrapper


@dataclass(frozen=True)
class PretrainResult:
    """What ``pretrain`` returns: run folder, checkpoint, parameter count, test evaluation."""

    run: Path
    checkpoint: Path
    parameters: int
    test: Evaluation


def calibrate(model: nn.Module, val: ImageSet, run: RunDir) -> TemperatureFit:
    """The temperature fitted on the validation split, logged as the calibration row."""
    fit_t = fit_temperature_on(model, val)
    run.log(stage="calibration", **fit_t.as_dict(), fitted_on="the validation split")
    return fit_t


@keeps_threads
def pretrain(
    cfg: PretrainConfig,
    out: str | Path,
    cache_dir: Path | None = None,
    reporter: Reporter | None = None,
    on_history: DrawHistory | None = None,
) -> PretrainResult:
    """Generate the source-domain splits, train ``cfg.model`` on them, save the checkpoint.

    ``on_history`` draws the training curve into the run's figures.
    """
    reporter = reporter or SilentReporter()
    set_threads(cfg.train)
    device = resolve_device(cfg.train.device, "train.device")  # before anything is read
    splits = build_splits(cfg.data, cfg.val_per_class, cfg.test_per_class, cache_dir, reporter)
    run = RunDir(out)  # after the data: a bad file leaves nothing behind
    run.save_config(cfg)
    train = splits["train"]
    channels, size, _ = train.shape
    torch.manual_seed(cfg.train.seed)
    model = build_backbone(cfg.model, channels, len(train.class_names), size).to(device)
    n_params = count_parameters(model)
    reporter.info(f"{cfg.model.arch}: {n_params:,} parameters, {len(train):,} training records")
    steps = cfg.train.epochs * len(train)
    with reporter.task("pretraining", steps) as advance:
        fit(
            model,
            list(model.parameters()),
            train,
            splits["val"],
            cfg.train,
            on_epoch=lambda row: run.log(stage="pretrain", **row),
            on_step=advance,
        )
    test = evaluate_logits(predict(model, splits["test"]), splits["test"])
    run.log(stage="test", **test.as_dict("test"))
    fit_t = calibrate(model, splits["val"], run)  # so zero-shot scores are calibrated too
    meta = {
        "kind": "backbone",
        "model": to_dict(cfg.model),
        "in_channels": channels,
        "image_size": size,
        "class_names": list(train.class_names),
        "images": to_dict(cfg.data.images),
        "length": cfg.data.generator.length,  # the record length the backbone was trained on
        "config_hash": config_hash(cfg),
        "temperature": fit_t.temperature,
    }
    checkpoint = save_checkpoint(run.path / MODEL_FILE, model.state_dict(), meta)
    if on_history:
        title = f"pretraining ({cfg.model.arch}, source domain)"
        on_history(run.rows(), run.figure("training_curve.png"), title)
    return PretrainResult(run.path, checkpoint, n_params, test)


def resolve_pretrained(
    spec: str, cache_dir: Path | None, reporter: Reporter, on_history: DrawHistory | None = None
) -> Path:
    """Checkpoint path for ``spec``: a run dir, a .safetensors file, or a pretrain config.

    A pretrain config's checkpoint is cached under ``cache_dir/pretrain/<config hash>``; when
    missing, the backbone shipped for that hash is used (:mod:`fedsb.models.shipped`), else it
    is trained (its curve drawn by ``on_history``). A preset name (``pretrain``) is the pretrain
    config shipped in the package.
    """
    path = Path(spec) if Path(spec).is_dir() else config_file(spec)
    if path.is_dir():
        return path / MODEL_FILE
    if path.suffix == ".safetensors":
        return path
    if path.suffix == ".toml":
        cfg = load_config(PretrainConfig, path)
        if cache_dir is None:
            raise ConfigError(f"pretrained = {spec!r}: a pretrain config needs a cache directory")
        run = Path(cache_dir) / "pretrain" / config_hash(cfg)
        if (run / MODEL_FILE).exists():
            reporter.info(f"reusing pretrained backbone {run} (config hash matches)")
            return run / MODEL_FILE
        if shipped := shipped_backbone(config_hash(cfg)):
            reporter.info(f"using the backbone shipped for {path.name} (config hash matches)")
            return shipped
        reporter.info(f"no cached backbone for {path}: pretraining into {run}")
        return pretrain(cfg, run, cache_dir, reporter, on_history).checkpoint
    raise ConfigError(
        f"pretrained = {spec!r}: expected a run directory, a .safetensors file or a pretrain .toml"
    )
