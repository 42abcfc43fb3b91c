"""``fedsb model info``: the backbone's layers and what each adapter method trains."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import ConfigError
from .app import app, console
from .data import SetOpt

model_app = typer.Typer(help="Inspect backbones and adapters.", no_args_is_help=True)
app.add_typer(model_app, name="model")


def _configs(path: Path | None, overrides: list[str]):
    """(PretrainConfig, AdapterConfig, data config) from a pretrain or a finetune TOML."""
    from ..config import apply_overrides, load_config
    from ..models.config import AdapterConfig
    from ..training.config import FinetuneConfig, PretrainConfig

    if path is None:  # the built-in defaults; --set addresses the fine-tuning config's keys
        fine = apply_overrides(FinetuneConfig(), overrides)
        return PretrainConfig(), fine.adapter, fine.data
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    if "model" in raw:
        pre = load_config(PretrainConfig, path, overrides)
        return pre, AdapterConfig(), pre.data
    fine = load_config(FinetuneConfig, path, overrides)
    if not fine.pretrained.endswith(".toml"):
        raise ConfigError(f"{path}: model info needs `pretrained` to be a pretrain .toml")
    return load_config(PretrainConfig, Path(fine.pretrained)), fine.adapter, fine.data


@model_app.command("info")
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
    from dataclasses import replace

    from ..models.adapters import ADAPTED_METHODS, apply_adapters, count_trainable
    from ..models.backbones import build_backbone, count_parameters, parameter_summary
    from ..models.config import METHODS
    from ..signals import resolve_classes

    pre, adapter, data = _configs(config, overrides or [])
    adapter = adapter if rank is None else replace(adapter, rank=rank)
    n_classes = len(resolve_classes(data.classes))
    channels, size = len(data.images.channels), data.images.size
    model = build_backbone(pre.model, channels, n_classes, size)
    total = count_parameters(model)
    layers = Table(
        title=f"{pre.model.arch} on {channels} x {size} x {size} images, "
        f"{n_classes} classes: {total:,} parameters"
    )
    for col in ("layer", "type", "parameters"):
        layers.add_column(col, justify="right" if col == "parameters" else "left")
    for name, kind, n, _ in parameter_summary(model):
        layers.add_row(name, kind, f"{n:,}")
    console.print(layers)
    methods = Table(
        title=f"what each method trains (rank {adapter.rank}, targets "
        f"{', '.join(adapter.targets)}, head {adapter.head})"
    )
    for col in ("method", "trained parameters", "% of model", "bytes sent per round"):
        methods.add_column(col, justify="right" if col != "method" else "left")
    for method in METHODS:
        head = adapter.head if method in ADAPTED_METHODS else "train"  # full/head-only: train
        adapted = apply_adapters(copy.deepcopy(model), replace(adapter, method=method, head=head))
        n = count_trainable(adapted)
        methods.add_row(method, f"{n:,}", f"{100 * n / total:.2f}", f"{4 * n:,}")
    console.print(methods)
