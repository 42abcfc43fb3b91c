"""``fedsb evaluate --run RUN --data PATH``: a trained run's model on any labelled IQ data.

Any finished run's model is rebuilt (``load_classifier``): a federated run's merged model with
its fitted temperature, or a finetune run's adapted model (a pretrain run's backbone), merged.
The data (npz, SigMF file/archive/directory/collection, RadioML; files, globs or directories)
are read as training reads them, a chunk at a time (``file_logits``): labels mapped through the
alias table onto the model's classes, records longer than the model's record length cut into
non-overlapping windows (each keeps its record's label and SNR), shorter ones refused; the
images are rendered with the run's image config and scored (``scoring.score``) before and after
the run's temperature. The model runs on the chosen device
(``devices.resolve_device``: auto, cpu or cuda); logits come back to the CPU.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..config import from_dict
from ..data.files import expand_paths
from ..devices import resolve_device
from ..errors import ConfigError, DataError
from ..images.config import ImageConfig
from ..models.checkpoint import backbone_from_checkpoint, keep_classes, load_checkpoint
from ..models.export import merged_model
from ..reporter import Reporter
from ..runs import CONFIG_FILE, MODEL_FILE
from .file_logits import ReadOptions, SourceCount, file_logits
from .scoring import Predictions, score


@dataclass(frozen=True)
class RunModel:
    """A run's merged model and what scoring needs: classes, image setup, length, temperature."""

    model: nn.Module
    class_names: tuple[str, ...]
    images: ImageConfig
    length: int  # IQ samples per record the model was trained on
    temperature: float


def check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a checkpoint with a NaN or Inf weight: it would predict garbage, silently."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise DataError(path, f"weight {name!r} holds NaN or Inf")


def record_length(run: Path) -> int:
    """data.generator.length of the run's config: the record length its model was trained on."""
    try:
        config = tomllib.loads((run / CONFIG_FILE).read_text())
        length = int(config["data"]["generator"]["length"])
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError):
        raise DataError(run / CONFIG_FILE, "missing or without data.generator.length") from None
    if length < 1:
        raise DataError(run / CONFIG_FILE, f"data.generator.length must be >= 1, got {length}")
    return length


def load_run_model(run: Path, device: str = "cpu") -> RunModel:
    """The merged model of a finished run on ``device``, with what is needed to feed it.

    A one-line DataError when any of it is unusable (metadata, tensors, weights, config); a
    ConfigError for a device this machine does not have (before anything is read).
    """
    target = resolve_device(device)
    run = Path(run)
    if not run.is_dir():
        raise DataError(run, "no such run directory")
    path = run / MODEL_FILE
    state, meta = load_checkpoint(path)
    if meta.get("kind") != "merged":
        raise DataError(path, "not the merged model of a finished run")
    check_finite(state, path)
    length = record_length(run)
    model = backbone_from_checkpoint(state, meta, path)
    try:
        images = from_dict(ImageConfig, meta["images"])
    except ConfigError as exc:
        raise DataError(path, f"metadata 'images': {exc}") from None
    names = tuple(meta["class_names"])
    return RunModel(model.to(target), names, images, length, meta_temperature(meta, path))


def meta_temperature(meta: dict, path: Path) -> float:
    """The fitted temperature in a checkpoint's metadata (1 where none was fitted), checked."""
    temperature = meta.get("temperature", 1.0)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise DataError(path, f"metadata 'temperature' is not a number: {temperature!r}")
    if not 0 < temperature < float("inf"):
        raise DataError(path, f"metadata 'temperature' must be > 0, got {temperature!r}")
    return float(temperature)


def load_classifier(
    run: str | Path, device: str = "cpu", classes: tuple[str, ...] = ()
) -> tuple[RunModel, dict]:
    """(the run's merged model on ``device`` and what feeds it, its checkpoint's metadata).

    The metadata holds ``temperature`` only where one was fitted. ``classes`` (a subset of the
    model's) restricts its label set: the head keeps those rows (``keep_classes``).
    """
    loaded, meta = _load_classifier(Path(run), device)
    if not classes:
        return loaded, meta
    model, meta = keep_classes(loaded.model, meta, tuple(classes), "--classes")
    return replace(loaded, model=model, class_names=tuple(classes)), meta


def _load_classifier(run: Path, device: str) -> tuple[RunModel, dict]:
    target = resolve_device(device)  # a missing GPU is refused before anything is read
    if not run.is_dir():
        raise DataError(run, "no such run directory")
    path = run / MODEL_FILE
    state, meta = load_checkpoint(path)
    if meta.get("kind") == "merged":
        return load_run_model(run, device), meta
    check_finite(state, path)
    model = merged_model(state, meta, path)
    try:
        images = from_dict(ImageConfig, meta["images"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise DataError(path, f"metadata 'images': {exc}") from None
    names = tuple(meta["class_names"])
    temperature = meta_temperature(meta, path)  # a finetune run's, fitted on its validation split
    return RunModel(model.to(target), names, images, record_length(run), temperature), meta


def evaluate_run(
    run: Path,
    data: Path | Sequence[str | Path],
    drop_unknown: bool = False,
    device: str = "cpu",
    classes: tuple[str, ...] = (),
    options: ReadOptions | None = None,
    reporter: Reporter | None = None,
) -> tuple[dict, Predictions]:
    """(eval dict as written to eval.json, predictions) of ``run``'s model on ``data``.

    Any finished run: federated, finetune or pretrain (``load_classifier``); ``classes``
    restricts its label set to those the data can hold. ``data``: a path, or specs (files,
    globs, directories) as ``--data`` takes them; every source is read a chunk at a time
    (``file_logits``), so a file need not fit in memory.

    The model runs on ``device``; the predictions are CPU float64 whatever it is.
    """
    loaded, _ = load_classifier(run, device, classes)
    specs = [data] if isinstance(data, str | Path) else list(data)
    if not specs:
        raise ConfigError("--data: no data given")
    for spec in specs:
        if not any(c in str(spec) for c in "*?[") and not Path(spec).expanduser().exists():
            raise DataError(Path(spec), "file not found")
    paths = expand_paths(specs)
    options = options or ReadOptions()
    options = replace(options, drop_unknown=drop_unknown or options.drop_unknown)
    pred, counts = file_logits(loaded, paths, options, reporter)
    lengths = [c.record_length for c in counts]
    result = {
        "run": str(Path(run).resolve()),
        "data": str(paths[0].resolve()) if len(paths) == 1 else [str(p.resolve()) for p in paths],
        "records": len(pred.labels),
        "record_length": lengths[0] if len(set(lengths)) == 1 else lengths,
        "windowed": any(n != loaded.length for n in lengths),
        **score(pred, loaded.temperature),
    }
    if len(counts) > 1:
        result["per_source"] = per_source(pred, counts)
    return result, pred


def per_source(pred: Predictions, counts: Sequence[SourceCount]) -> list[dict]:
    """Accuracy of each source (in the order scored): a site's file next to the others'."""
    hits = pred.logits.argmax(axis=1) == pred.labels
    out, start = [], 0
    for c in counts:
        part = hits[start : start + c.records]
        out.append({"data": str(c.path.resolve()), "records": c.records,
                    "accuracy": float(part.mean()) if c.records else None})  # fmt: skip
        start += c.records
    return out
