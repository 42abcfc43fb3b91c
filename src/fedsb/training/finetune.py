"""``fedsb finetune``: adapt a pretrained backbone to the target domain, centralized.

This is the upper bound the federated runs are compared with. Every run reports the frozen
pretrained backbone's accuracy on the same target test split, so the gain a method recovers
can be read off directly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..config import config_hash, from_dict, load_config, to_dict
from ..errors import ConfigError, DataError
from ..models.adapters import (
    adapter_state,
    apply_adapters,
    count_trainable,
    expected_trainable,
    trainable_parameters,
)
from ..models.backbones import build_backbone, count_parameters
from ..models.config import ModelConfig
from ..models.lora_sb_init import estimate_weight_gradients, init_lora_sb
from ..report.curves import training_curve
from .config import FinetuneConfig, PretrainConfig
from .imageset import ImageSet
from .loop import Evaluation, evaluate, fit, predict
from .pretrain import build_splits, pretrain, set_threads
from .reporter import Reporter, SilentReporter
from .runs import MODEL_FILE, RunDir, check_out, load_checkpoint, save_checkpoint

ADAPTER_FILE = "adapter.safetensors"


def resolve_pretrained(spec: str, cache_dir: Path | None, reporter: Reporter) -> Path:
    """Checkpoint path for ``spec``: a run dir, a .safetensors file, or a pretrain config whose
    checkpoint is cached under ``cache_dir/pretrain/<config hash>`` (trained when missing)."""
    path = Path(spec)
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
        reporter.info(f"no cached backbone for {path}: pretraining into {run}")
        return pretrain(cfg, run, cache_dir, reporter).checkpoint
    raise ConfigError(
        f"pretrained = {spec!r}: expected a run directory, a .safetensors file or a pretrain .toml"
    )


def load_backbone(checkpoint: Path, cfg: FinetuneConfig) -> tuple[nn.Module, dict]:
    """Rebuild the pretrained backbone; its image config and classes must match the data's."""
    state, meta = load_checkpoint(checkpoint)
    if meta.get("kind") != "backbone":
        raise ConfigError(f"{checkpoint}: not a pretrained backbone checkpoint")
    check_model_meta(meta, checkpoint)
    if meta["images"] != to_dict(cfg.data.images):
        raise ConfigError(
            f"{checkpoint}: the backbone was trained on other images "
            f"({meta['images']}) than data.images"
        )
    return backbone_from_checkpoint(state, meta, checkpoint), meta


_META_TYPES = {
    "model": dict,
    "in_channels": int,
    "image_size": int,
    "class_names": list,
    "images": dict,
}


def check_model_meta(meta: dict, path: Path | None) -> ModelConfig:
    """The ModelConfig of a checkpoint's metadata, or a DataError naming the bad entry."""
    for key, kind in _META_TYPES.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise DataError(path, f"metadata {key!r} is missing or not a {kind.__name__}")
    names = meta["class_names"]
    if not names or not all(isinstance(c, str) for c in names):
        raise DataError(path, "metadata 'class_names' must be a non-empty list of strings")
    if meta["in_channels"] < 1 or meta["image_size"] < 1:
        raise DataError(path, "metadata 'in_channels' and 'image_size' must be >= 1")
    try:
        return from_dict(ModelConfig, meta["model"])
    except ConfigError as exc:
        raise DataError(path, f"metadata 'model': {exc}") from None


def _mismatch(want: dict[str, torch.Size], state: dict[str, torch.Tensor]) -> str | None:
    """The first difference between an architecture's tensors and a checkpoint's."""
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing:
        return f"missing tensor {missing[0]!r}"
    if extra:
        return f"unexpected tensor {extra[0]!r}"
    for key, shape in want.items():
        if tuple(state[key].shape) != tuple(shape):
            return f"{key!r} is {tuple(state[key].shape)}, the model's is {tuple(shape)}"
    return None


def backbone_from_checkpoint(state: dict, meta: dict, path: Path | None = None) -> nn.Module:
    """The backbone a checkpoint's metadata describes, with its weights loaded; a DataError
    naming ``path`` when the metadata or the tensors describe no such model."""
    model_cfg = check_model_meta(meta, path)
    args = (model_cfg, meta["in_channels"], len(meta["class_names"]), meta["image_size"])
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated for what meta claims
            want = {k: v.shape for k, v in build_backbone(*args).state_dict().items()}
    except (ValueError, TypeError, RuntimeError) as exc:
        raise DataError(path, f"metadata describes no buildable model ({exc})") from None
    problem = _mismatch(want, state)
    if problem:
        raise DataError(path, f"tensors do not fit the model in its metadata: {problem}")
    model = build_backbone(*args)
    model.load_state_dict(state)
    return model


def init_batches(data: ImageSet, n: int, batch_size: int, seed: int):
    """The first ``n`` samples of a seeded order, in batches (the LoRA-SB gradient estimate)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    for start in range(0, len(order), batch_size):
        yield data.batch(order[start : start + batch_size])


@dataclass(frozen=True)
class FinetuneResult:
    run: Path
    method: str
    rank: int
    trainable: int
    parameters: int
    frozen: Evaluation  # the pretrained backbone, no fine-tuning, on the target test split
    test: Evaluation


def finetune(
    cfg: FinetuneConfig,
    out: str | Path,
    cache_dir: Path | None = None,
    reporter: Reporter | None = None,
) -> FinetuneResult:
    """Fine-tune with ``cfg.adapter.method`` on the target domain; evaluate on its test split."""
    reporter = reporter or SilentReporter()
    check_out(out)  # before a backbone is pretrained for it
    set_threads(cfg.train)
    checkpoint = resolve_pretrained(cfg.pretrained, cache_dir, reporter)
    model, meta = load_backbone(checkpoint, cfg)  # fail before anything is written
    expected_trainable(model, cfg.adapter)  # a bad rank or targets fail here too
    run = RunDir(out)
    run.save_config(cfg)
    splits = build_splits(cfg.data, cfg.val_per_class, cfg.test_per_class, cache_dir, reporter)
    if splits["train"].class_names != tuple(meta["class_names"]):
        raise ConfigError("data.classes differ from the classes the backbone was trained on")
    frozen = evaluate(predict(model, splits["test"]), splits["test"])
    run.log(stage="frozen", **frozen.as_dict("test"))
    n_params = count_parameters(model)
    torch.manual_seed(cfg.train.seed)
    apply_adapters(model, cfg.adapter)
    if cfg.adapter.method == "lora-sb":
        batches = init_batches(
            splits["train"], cfg.adapter.init_samples, cfg.train.batch_size, cfg.adapter.init_seed
        )
        init_lora_sb(model, estimate_weight_gradients(model, batches), cfg.adapter.init_lr)
    trainable = count_trainable(model)
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
    test = evaluate(predict(model, splits["test"]), splits["test"])
    run.log(
        stage="test",
        method=cfg.adapter.method,
        rank=cfg.adapter.rank,
        trainable=trainable,
        parameters=n_params,
        **test.as_dict("test"),
    )
    meta = {**meta, "kind": "adapted", "adapter": to_dict(cfg.adapter)}
    save_checkpoint(run.path / MODEL_FILE, model.state_dict(), meta)
    save_checkpoint(run.path / ADAPTER_FILE, adapter_state(model), meta)
    training_curve(
        run.rows(),
        run.figure("training_curve.png"),
        title=f"fine-tuning ({cfg.adapter.method}, r={cfg.adapter.rank}, target)",
    )
    return FinetuneResult(
        run.path, cfg.adapter.method, cfg.adapter.rank, trainable, n_params, frozen, test
    )
