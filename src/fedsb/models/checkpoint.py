"""Checkpoints (safetensors + JSON metadata) and the pretrained backbone they hold."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..config import from_dict, to_dict
from ..data.file_sets import FOUND, file_classes, settle_found
from ..errors import ConfigError, DataError
from ..images.config import ImageConfig
from ..io.budget import check_budget
from ..io.cache import temp_path
from ..reporter import Reporter
from ..runs import json_safe
from ..signals.classes import resolve_classes
from .backbones import build_backbone
from .config import ModelConfig


def save_checkpoint(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Tensors + JSON metadata in one safetensors file, written atomically."""
    path = Path(path)
    tmp = temp_path(path, ".safetensors")
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    try:
        save_file(
            tensors, str(tmp), metadata={"fedsb": json.dumps(json_safe(meta), sort_keys=True)}
        )
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (full disk) leaves no temporary file
    return path


def load_checkpoint(
    path: str | Path, tensors: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, metadata) of a checkpoint; a one-line DataError when it is unusable.

    safetensors bounds its own header (a claimed length of 10^15 bytes is an error); the
    file size is checked against the input budget and the "fedsb" JSON must be an object.
    ``tensors=False``: the metadata only (the state dict is empty).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such checkpoint")
    check_budget(path, path.stat().st_size, "the checkpoint", verb="is")
    try:
        with safe_open(str(path), "pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("fedsb", "{}"))
            if not isinstance(meta, dict):
                kind = type(meta).__name__
                raise DataError(path, f"metadata 'fedsb' is not a JSON object (got {kind})")
            state = {k: handle.get_tensor(k) for k in handle.keys()} if tensors else {}
    except DataError:
        raise
    except RecursionError:
        raise DataError(path, "metadata 'fedsb' nests too deeply to read") from None
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a readable checkpoint ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(path, f"not a readable checkpoint ({problem})") from None
    return state, meta


def load_backbone(checkpoint: Path, cfg: Any) -> tuple[nn.Module, dict]:
    """Rebuild the pretrained backbone; its image config must match ``cfg.data.images``.

    ``cfg`` is a finetune or run config. The backbone's temperature (``fedsb pretrain`` fits
    one for its own head) is left out of the metadata: a model built on it fits its own.
    """
    state, meta = load_checkpoint(checkpoint)
    check_backbone(meta, checkpoint, cfg)
    meta.pop("temperature", None)
    model = backbone_from_checkpoint(state, meta, checkpoint)
    classes = target_classes(cfg.data, tuple(meta["class_names"]))
    return keep_classes(model, meta, classes)


def check_backbone(meta: dict, checkpoint: Path, cfg: Any) -> None:
    """A ConfigError unless ``meta`` is a backbone for ``cfg``'s images and record length."""
    if meta.get("kind") != "backbone":
        raise ConfigError(f"{checkpoint}: not a pretrained backbone checkpoint")
    check_model_meta(meta, checkpoint)
    trained = images_meta(meta, checkpoint)
    if trained != to_dict(cfg.data.images):
        raise ConfigError(
            f"{checkpoint}: the backbone was trained on other images than data.images; "
            f"to match it, {_image_flags(trained, to_dict(cfg.data.images))}"
        )
    length = cfg.data.generator.length
    if isinstance(meta.get("length"), int) and meta["length"] != length:
        raise ConfigError(
            f"{checkpoint}: the backbone was pretrained on {meta['length']}-sample records, "
            f"not {length} (data.generator.length; --length {meta['length']})"
        )


def _image_flags(trained: dict, asked: dict, prefix: str = "data.images.") -> str:
    """The ``--set`` flags that turn ``asked`` into ``trained`` (TOML values)."""
    flags = []
    for key, value in trained.items():
        if isinstance(value, dict):
            flags.append(_image_flags(value, asked.get(key, {}), f"{prefix}{key}."))
        elif asked.get(key) != value:
            flags.append(f"--set {prefix}{key}={json.dumps(value)}")
    return " ".join(f for f in flags if f)


def target_classes(data: Any, backbone: tuple[str, ...]) -> tuple[str, ...]:
    """The classes a run on ``data`` asks of a backbone trained on ``backbone``.

    Generated data: ``data.classes``. Files: ``data.classes``, or the backbone's own classes
    when it is still "found" (a server whose data are at the sites; see :func:`settle_classes`).
    """
    if data.from_files:
        return file_classes(data) or backbone
    return tuple(resolve_classes(data.classes))


def settle_classes(cfg: Any, checkpoint: Path, reporter: Reporter) -> Any:
    """``cfg`` (finetune or run) with "found" classes settled: the backbone's that its files hold.

    See :func:`fedsb.data.file_sets.settle_found`; other configs are returned as they are.
    """
    if not (cfg.data.from_files and cfg.data.classes == FOUND):
        return cfg
    _, meta = load_checkpoint(checkpoint, tensors=False)  # load_backbone reads the weights
    check_backbone(meta, checkpoint, cfg)  # its errors first: they need no file read
    return replace(cfg, data=settle_found(cfg.data, tuple(meta["class_names"]), reporter))


def keep_classes(
    model: nn.Module, meta: dict, classes: tuple[str, ...], what: str = "data.classes"
) -> tuple[nn.Module, dict]:
    """The backbone with only the head rows of ``classes``, in their order.

    A backbone pretrained on 25 classes thus fine-tunes, federates and scores on any subset of
    them: its logits for those classes are unchanged. ``backbone_classes`` in the returned
    metadata keeps what it was trained on.
    """
    names = tuple(meta["class_names"])
    if classes == names:
        return model, meta
    missing = [c for c in classes if c not in names]
    if missing:
        raise ConfigError(
            f"{what}: {', '.join(missing)} not among the model's classes ({', '.join(names)})"
        )
    old = model.head
    rows = torch.tensor([names.index(c) for c in classes], device=old.weight.device)
    model.head = nn.Linear(old.in_features, len(classes), bias=old.bias is not None).to(old.weight)
    with torch.no_grad():
        model.head.weight.copy_(old.weight[rows])
        if old.bias is not None:
            model.head.bias.copy_(old.bias[rows])
    kept = {**meta, "class_names": list(classes)}
    kept.setdefault("backbone_classes", list(names))  # what the backbone was trained on
    return model, kept


def images_meta(meta: dict, path: Path | None) -> dict:
    """A checkpoint's image config with defaults filled in, as a plain dict.

    Keys added since it was written (``frontend``) take their defaults, which reproduce the
    images it was trained on; a DataError when the entry is no valid image config.
    """
    try:
        return to_dict(from_dict(ImageConfig, meta["images"]))
    except ConfigError as exc:
        raise DataError(path, f"metadata 'images': {exc}") from None


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
    """The backbone a checkpoint's metadata describes, with its weights loaded.

    A DataError naming ``path`` when the metadata or the tensors describe no such model.
    """
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
