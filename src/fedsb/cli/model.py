"""``fedsb model info``: the backbone's layers and what each adapter method trains."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import ConfigError
from .app import console, safe
from .options import SetOpt


def _configs(path: Path | None, overrides: list[str]):
    """(PretrainConfig, AdapterConfig, data config) from a pretrain or a finetune TOML."""
    from ..config import apply_overrides, config_file, load_config, read_toml
    from ..models.config import AdapterConfig
    from ..training.config import FinetuneConfig, PretrainConfig

    if path is None:  # the built-in defaults; --set addresses the fine-tuning config's keys
        fine = apply_overrides(FinetuneConfig(), overrides)
        return PretrainConfig(), fine.adapter, fine.data
    raw = read_toml(config_file(path))
    if "model" in raw:
        pre = load_config(PretrainConfig, path, overrides)
        return pre, AdapterConfig(), pre.data
    fine = load_config(FinetuneConfig, path, overrides)
    if not fine.pretrained.endswith(".toml"):
        raise ConfigError(f"{path}: model info needs `pretrained` to be a pretrain .toml")
    return load_config(PretrainConfig, Path(fine.pretrained)), fine.adapter, fine.data


def info(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="A pretrain or finetune TOML (default: built-in defaults)."
        ),
    ] = None,
    rank: Annotated[int | None, typer.Option(help="Adapter rank (default: the config's).")] = None,
    overrides: SetOpt = None,
) -> None:
    """Show the layers and what each adapter method trains."""
    from ..config import from_dict, to_dict
    from ..models.backbones import build_backbone, count_parameters
    from ..models.config import AdapterConfig
    from ..signals import resolve_classes

    pre, adapter, data = _configs(config, overrides or [])
    if rank is not None:  # through the loader, so --rank 0 is a ConfigError naming adapter.rank
        adapter = from_dict(AdapterConfig, {**to_dict(adapter), "rank": rank}, "adapter.")
    n_classes = len(resolve_classes(data.classes))
    channels, size = len(data.images.channels), data.images.size
    model = build_backbone(pre.model, channels, n_classes, size)
    total = count_parameters(model)
    methods = _methods_table(model, adapter, total)  # first: a bad rank/target prints nothing
    title = f"{pre.model.arch} on {channels} x {size} x {size} images, {n_classes} classes"
    console.print(_layers_table(model, f"{title}: {total:,} parameters"))
    console.print(methods)


def _layers_table(model, title: str) -> Table:
    from ..models.backbones import parameter_summary

    layers = Table(title=safe(title))
    for col in ("layer", "type", "parameters"):
        layers.add_column(col, justify="right" if col == "parameters" else "left")
    for name, kind, n, _ in parameter_summary(model):
        layers.add_row(safe(name), safe(kind), f"{n:,}")
    return layers


def _methods_table(model, adapter, total: int) -> Table:
    """Trained parameters per method (raises the adapter's ConfigError before any output)."""
    from dataclasses import replace

    from ..models.adapters import ADAPTED_METHODS, apply_adapters, count_trainable
    from ..models.config import METHODS

    methods = Table(
        title=safe(
            f"what each method trains (rank {adapter.rank}, targets "
            f"{', '.join(adapter.targets)}, head {adapter.head})"
        )
    )
    for col in ("method", "trained parameters", "% of model", "bytes sent per round"):
        methods.add_column(col, justify="right" if col != "method" else "left")
    for method in METHODS:
        head = adapter.head if method in ADAPTED_METHODS else "train"  # full/head-only: train
        adapted = apply_adapters(copy.deepcopy(model), replace(adapter, method=method, head=head))
        n = count_trainable(adapted)
        methods.add_row(method, f"{n:,}", f"{100 * n / total:.2f}", f"{4 * n:,}")
    return methods
