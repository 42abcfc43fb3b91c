"""``fedsb finetune``: adapt a pretrained backbone to the target domain, centralized.

This is the upper bound the federated runs are compared with. Every run reports the frozen
pretrained backbone's accuracy on the same target test split, so the gain a method recovers
can be read off directly. The model is saved calibrated: a temperature fitted on the validation
split (never the test split), which ``fedsb evaluate`` and ``fedsb classify`` then apply.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..config import to_dict
from ..data.imageset import ImageSet
from ..data.splits import build_splits
from ..devices import resolve_device
from ..errors import ConfigError
from ..models.adapters import (
    adapter_state,
    apply_adapters,
    count_trainable,
    expected_trainable,
    trainable_parameters,
)
from ..models.backbones import count_parameters
from ..models.checkpoint import load_backbone, save_checkpoint, settle_classes
from ..models.lora_sb_init import estimate_weight_gradients, init_lora_sb
from ..reporter import Reporter, SilentReporter
from ..runs import ADAPTER_FILE, MODEL_FILE, RunDir, check_out
from .calibration import TemperatureFit
from .config import FinetuneConfig
from .loop import Evaluation, evaluate_logits, fit, init_batches, predict
from .pretrain import DrawHistory, calibrate, keeps_threads, resolve_pretrained, set_threads


@dataclass(frozen=True)
class FinetuneResult:
    """What ``finetune`` returns: run folder, method, rank, parameter counts, test results."""

    run: Path
    method: str
    rank: int
    trainable: int
    parameters: int
    frozen: Evaluation  # the pretrained backbone, no fine-tuning, on the target test split
    test: Evaluation
    calibration: TemperatureFit  # the temperature fitted on the target validation split


def adapt(model: nn.Module, cfg: FinetuneConfig, train: ImageSet) -> int:
    """Wrap the target layers (LoRA-SB's B and A from a gradient estimate); trainable count."""
    torch.manual_seed(cfg.train.seed)
    apply_adapters(model, cfg.adapter)
    if cfg.adapter.method == "lora-sb":
        batches = init_batches(
            train, cfg.adapter.init_samples, cfg.train.batch_size, cfg.adapter.init_seed
        )
        init_lora_sb(model, estimate_weight_gradients(model, batches), cfg.adapter.init_lr)
    return count_trainable(model)


def target_splits(
    cfg: FinetuneConfig, classes: tuple[str, ...], cache_dir: Path | None, reporter: Reporter
) -> dict[str, ImageSet]:
    """The target domain's splits, in the backbone's ``classes`` (files are mapped onto them)."""
    splits = build_splits(
        cfg.data, cfg.val_per_class, cfg.test_per_class, cache_dir, reporter, classes=classes
    )
    if splits["train"].class_names != classes:
        raise ConfigError("data.classes differ from the classes the backbone was trained on")
    return splits


@keeps_threads
def finetune(
    cfg: FinetuneConfig,
    out: str | Path,
    cache_dir: Path | None = None,
    reporter: Reporter | None = None,
    on_history: DrawHistory | None = None,
) -> FinetuneResult:
    """Fine-tune ``cfg.adapter.method`` on the target domain, test it; on_history draws curves."""
    reporter = reporter or SilentReporter()
    check_out(out)  # before a backbone is pretrained for it
    set_threads(cfg.train)
    device = resolve_device(cfg.train.device, "train.device")
    checkpoint = resolve_pretrained(cfg.pretrained, cache_dir, reporter, on_history)
    cfg = settle_classes(cfg, checkpoint, reporter)  # "found": the backbone's the files hold
    model, meta = load_backbone(checkpoint, cfg)  # fail before anything is written
    expected_trainable(model, cfg.adapter)  # a bad rank or targets fail here too
    run = RunDir(out)
    run.save_config(cfg)
    splits = target_splits(cfg, tuple(meta["class_names"]), cache_dir, reporter)
    frozen = evaluate_logits(predict(model, splits["test"]), splits["test"])
    run.log(stage="frozen", **frozen.as_dict("test"))
    n_params = count_parameters(model)
    trainable = adapt(model, cfg, splits["train"])
    model.to(device)
    reporter.info(
        f"{cfg.adapter.method} r={cfg.adapter.rank}: {trainable:,} of {n_params:,} "
        f"parameters train ({100 * trainable / n_params:.2f} %)"
    )
    train_cfg = replace(cfg.train, lr=cfg.full_lr) if cfg.adapter.method == "full" else cfg.train
    steps = cfg.train.epochs * len(splits["train"])
    with reporter.task(f"fine-tuning ({cfg.adapter.method})", steps) as advance:
        fit(
            model,
            trainable_parameters(model),
            splits["train"],
            splits["val"],
            train_cfg,
            on_epoch=lambda row: run.log(stage="finetune", **row),
            on_step=advance,
        )
    test = evaluate_logits(predict(model, splits["test"]), splits["test"])
    run.log(
        stage="test",
        method=cfg.adapter.method,
        rank=cfg.adapter.rank,
        trainable=trainable,
        parameters=n_params,
        **test.as_dict("test"),
    )
    fit_t = calibrate(model, splits["val"], run)
    meta = {**meta, "kind": "adapted", "adapter": to_dict(cfg.adapter)}
    meta["temperature"] = fit_t.temperature
    save_checkpoint(run.path / MODEL_FILE, model.state_dict(), meta)
    save_checkpoint(run.path / ADAPTER_FILE, adapter_state(model), meta)
    if on_history:
        title = f"fine-tuning ({cfg.adapter.method}, r={cfg.adapter.rank}, target)"
        on_history(run.rows(), run.figure("training_curve.png"), title)
    return FinetuneResult(
        run.path, cfg.adapter.method, cfg.adapter.rank, trainable, n_params, frozen, test, fit_t
    )
