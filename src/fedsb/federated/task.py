"""What every participant shares: the adapted model, the client data, and LoRA-SB's B and A.

``build_task`` runs once on the server side (and, for the Flower engine, its files are read back
by each ClientApp): it loads the pretrained backbone, wraps the layers for the run's method, and
for fedsb ``round0.init_basis`` fixes B and A from one gradient estimate (the server's proxy
data here, or the clients' round 0). B and A are then saved in the run directory and *loaded*
(never re-derived: SVD signs are not unique) on resume.
``build_site_task`` is the server's task of a deployment whose data stay at the sites: the
model and, optionally, the server's own test set, no client data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..config import load_config
from ..data.client_sets import eval_records, lazy_client_data
from ..data.file_partition import file_partition_rows
from ..data.file_sets import file_classes, file_clients, file_partition
from ..data.imageset import ImageSet, join_sets, load_or_build, split_config
from ..data.partition import ClientData, partition_rows, plan_partition
from ..devices import resolve_device
from ..errors import ConfigError
from ..models.adapters import adapted_layers, adapter_state, apply_adapters
from ..models.checkpoint import load_backbone, load_checkpoint, save_checkpoint, settle_classes
from ..models.lora_sb_init import (
    load_lora_sb_basis,
    lora_sb_basis,
)
from ..reporter import Reporter
from ..runs import BASIS_FILE, CONFIG_FILE
from ..signals import resolve_classes
from ..training.config import PretrainConfig
from ..training.loop import init_batches
from ..training.pretrain import DrawHistory, resolve_pretrained
from .config import RunConfig
from .sites import server_test_set


@dataclass
class Task:
    """The federation: the model every client trains, the data each holds, the global test."""

    model: nn.Module
    meta: dict
    checkpoint: Path
    clients: list[ClientData]  # generated: training splits built when read (data.client_sets)
    test: ImageSet | None  # union of the clients' test splits (sites: the server's, or None)
    val: ImageSet | None  # union of the clients' validation splits (None at the sites)
    units: list[ImageSet]  # what each client trains on (empty at the sites)
    partition: list[dict]  # one row per client (partition.json, the dry run's table)
    sites: int = 0  # > 0: the data are at this many sites (SuperNodes); the server holds none

    @property
    def n_clients(self) -> int:
        """The number of clients: the sites, or the training units the server holds."""
        return self.sites or len(self.units)


def load_clients(
    cfg: RunConfig, cache_dir: Path | None, reporter: Reporter, classes: tuple[str, ...]
) -> tuple[list[ClientData], list[dict]]:
    """Every client's data of ``cfg.partition`` and the partition's rows (partition.json).

    Generated clients (``data.client_sets``): a training split is built when a round (or round
    0) first reads it, so a round of 10 out of 1,000 clients builds 10; the validation and test
    splits are built once into a memory-mapped store, under one "client data" progress task.
    The user's files (``data.source = "files"``) are read, mapped onto the backbone's
    ``classes``, split and dealt to the clients by ``data.file_sets``.
    """
    if cfg.data.from_files:
        return file_clients(
            cfg.data, cfg.partition, cfg.data.generator.length, classes, cache_dir, reporter
        )
    plans = plan_partition(cfg.partition, cfg.data)
    total = eval_records(plans, cfg.partition, cfg.data)
    with reporter.task("client data", total) as advance:
        clients = lazy_client_data(plans, cfg.partition, cfg.data, cache_dir, advance)
    return clients, partition_rows(plans)


def partition_preview(cfg: RunConfig, reporter: Reporter) -> tuple[list[dict], tuple[str, ...]]:
    """The partition's rows and class names, for ``--dry-run``: nothing is imaged or trained.

    File data are read and split (mapped onto ``data.classes``; a run maps them onto its
    backbone's classes, the same list unless the backbone was trained on others).
    """
    if cfg.data.from_files:
        length = cfg.data.generator.length
        splits, clients = file_partition(
            cfg.data, cfg.partition, length, file_classes(cfg.data), reporter
        )
        return file_partition_rows(clients, splits.records), splits.records.records.class_names
    plans = plan_partition(cfg.partition, cfg.data)
    return partition_rows(plans), tuple(resolve_classes(cfg.data.classes))


def adapted_model(cfg: RunConfig, checkpoint: Path) -> tuple[nn.Module, dict]:
    """The pretrained backbone with the method's adapters (B, A, R of lora-sb still zero)."""
    model, meta = load_backbone(checkpoint, cfg)  # type: ignore[arg-type]
    torch.manual_seed(cfg.seed)
    apply_adapters(model, cfg.adapter)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and cfg.workers > 1:
        raise ConfigError("workers: > 1 needs device = 'cpu' (CUDA does not survive the fork)")
    return model.to(device), meta


def proxy_batches(
    cfg: RunConfig,
    checkpoint: Path,
    cache_dir: Path | None,
    batch_size: int,
    classes: tuple[str, ...],
):
    """The server's proxy data: a slice of the pretraining set, drawn with its own config.

    Only the run's ``classes`` (a subset of the backbone's, the model's head rows) are drawn,
    so the labels index the model's outputs.
    """
    config_file = checkpoint.parent / CONFIG_FILE
    if not config_file.exists():
        raise ConfigError(
            f"init_source = 'proxy' needs the pretraining config next to {checkpoint} "
            f"({config_file} is missing); use init_source = 'clients'"
        )
    pre = load_config(PretrainConfig, config_file)
    if tuple(resolve_classes(pre.data.classes)) != classes:  # a broader backbone's subset
        pre = replace(pre, data=replace(pre.data, classes=",".join(classes)))
    k = len(classes)
    per_class = max(1, math.ceil(cfg.adapter.init_samples / k))
    proxy = load_or_build(split_config(pre.data, "train", per_class), cache_dir)
    return init_batches(proxy, cfg.adapter.init_samples, batch_size, cfg.adapter.init_seed)


def settled(
    cfg: RunConfig,
    cache_dir: Path | None,
    reporter: Reporter,
    on_history: DrawHistory | None = None,
) -> tuple[RunConfig, Path]:
    """``cfg`` with "found" file classes settled against its backbone, and that backbone.

    The backbone is pretrained when missing, its curve drawn by ``on_history``. The settled
    config (``models.checkpoint.settle_classes``) is what the run saves and sends its clients.
    """
    checkpoint = resolve_pretrained(cfg.pretrained, cache_dir, reporter, on_history)
    return settle_classes(cfg, checkpoint, reporter), checkpoint


def build_task(
    cfg: RunConfig,
    cache_dir: Path | None,
    reporter: Reporter,
    on_history: DrawHistory | None = None,
    checkpoint: Path | None = None,
) -> Task:
    """Load the backbone and the client data; the model's adapters are not initialised yet.

    The backbone (``checkpoint``, else ``cfg.pretrained``) is pretrained when missing, its
    curve drawn by ``on_history``.
    """
    checkpoint = checkpoint or resolve_pretrained(cfg.pretrained, cache_dir, reporter, on_history)
    model, meta = adapted_model(cfg, checkpoint)
    clients, partition = load_clients(cfg, cache_dir, reporter, tuple(meta["class_names"]))
    if clients[0].train.class_names != tuple(meta["class_names"]):
        raise ConfigError("data.classes differ from the classes the backbone was trained on")
    test = join_sets([c.test for c in clients])  # rows of one store: they stay on disk
    val = join_sets([c.val for c in clients])
    units = [c.train for c in clients]
    return Task(model, meta, checkpoint, clients, test, val, units, partition)


def build_site_task(
    cfg: RunConfig,
    cache_dir: Path | None,
    reporter: Reporter,
    sites: int,
    test_paths: tuple[str, ...] = (),
    on_history: DrawHistory | None = None,
) -> Task:
    """The server's task when the data are at ``sites`` SuperNodes: the model, no client data.

    ``test_paths``: the server's own global test set (``sites.server_test_set``), else none
    (the evaluation is federated). ``partition`` is filled from the nodes' answers.
    """
    checkpoint = resolve_pretrained(cfg.pretrained, cache_dir, reporter, on_history)
    model, meta = adapted_model(cfg, checkpoint)
    classes = tuple(meta["class_names"])
    test = server_test_set(cfg, test_paths, classes, cache_dir, reporter) if test_paths else None
    return Task(model, meta, checkpoint, [], test, None, [], [], sites=sites)


def has_lora_sb(model: nn.Module) -> bool:
    """Whether any adapted layer of ``model`` is lora-sb (so it has a B and A basis)."""
    return any(m.method == "lora-sb" for m in adapted_layers(model).values())


def save_basis(model: nn.Module, run_dir: Path) -> None:
    """B and A of fedsb (empty for other methods): loaded on resume and by Flower clients."""
    basis = lora_sb_basis(model) if has_lora_sb(model) else {}
    save_checkpoint(Path(run_dir) / BASIS_FILE, basis, {"kind": "basis"})


def load_basis(model: nn.Module, run_dir: Path) -> None:
    """Load the run's saved lora-sb basis (B and A) into ``model`` when it has lora-sb layers."""
    basis, _ = load_checkpoint(Path(run_dir) / BASIS_FILE)
    if has_lora_sb(model):
        load_lora_sb_basis(model, basis)


def initial_state(task: Task) -> dict[str, torch.Tensor]:
    """The current adapter state of ``task.model``, as a global state to start rounds from."""
    return adapter_state(task.model)
