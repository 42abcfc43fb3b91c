"""Ship a run's model: adapters folded in, as safetensors and TorchScript, with what feeds it.

A run's ``model.safetensors`` is a backbone (pretrain), the adapted model (finetune: the
frozen layers plus adapter tensors) or the merged model (federated runs). Whatever it holds,
:func:`merged_model` rebuilds a plain backbone with every update folded into its weights
(W0 + s·B·R·A), so nothing of fedsb's adapter code is needed to run it.

:func:`export_model` writes into a folder:

* ``model.safetensors``: the merged weights, with the fedsb metadata (``kind = "merged"``), so
  fedsb loads it as it loads any run's model;
* ``model.torchscript.pt``: the same network traced with ``torch.jit.trace`` (checked on a
  second batch size before it is written), loadable with ``torch.jit.load`` and no fedsb;
* ``model.json``: class names, image config, record length, temperature, the input layout.

ONNX is not written: ``torch.onnx.export`` needs the ``onnx`` (legacy exporter) or
``onnxscript`` (dynamo exporter) package, and neither is a dependency of fedsb.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from ..config import from_dict
from ..errors import ConfigError, DataError
from ..io.cache import atomic_file, discard, temp_path
from .adapters import AdapterStateError, apply_adapters, merge
from .backbones import build_backbone
from .checkpoint import backbone_from_checkpoint, check_model_meta, save_checkpoint
from .config import AdapterConfig

FILES = {
    "safetensors": "model.safetensors",
    "torchscript": "model.torchscript.pt",
    "json": "model.json",
}
ONNX_NOTE = (
    "not written: torch.onnx.export needs the onnx or onnxscript package, "
    "which fedsb does not depend on"
)
INPUT_NOTE = (
    "float32 (N, C, H, W) in [0, 1]: fedsb.images.to_images of `length` complex64 IQ samples "
    "with the `images` config, quantised to uint8 and divided by 255; output: logits (N, K); "
    "calibrated probabilities are softmax(logits / temperature)"
)
#: Metadata keys a merged checkpoint carries (besides kind).
META_KEYS = ("model", "in_channels", "image_size", "class_names", "images")


def _adapted(state: dict[str, torch.Tensor], meta: dict, path: Path | None) -> nn.Module:
    """The adapted model of a finetune checkpoint, merged."""
    cfg = check_model_meta(meta, path)
    try:
        adapter = from_dict(AdapterConfig, meta.get("adapter"))
    except (ConfigError, TypeError) as exc:
        raise DataError(path, f"metadata 'adapter': {exc}") from None
    args = (cfg, meta["in_channels"], len(meta["class_names"]), meta["image_size"])
    try:
        with torch.device("meta"):  # shapes only: nothing allocated for what meta claims
            want = apply_adapters(build_backbone(*args), adapter).state_dict()
        model = apply_adapters(build_backbone(*args), adapter)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise DataError(path, f"metadata describes no buildable model ({exc})") from None
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    bad = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    if missing or extra or bad:
        first = (missing or extra or bad)[0]
        raise DataError(path, f"tensors do not fit the model in its metadata: {first!r}")
    model.load_state_dict(state)
    try:
        return merge(model)
    except AdapterStateError as exc:
        raise DataError(path, str(exc)) from None


def merged_model(state: dict[str, torch.Tensor], meta: dict, path: Path | None = None) -> nn.Module:
    """A plain backbone with the checkpoint's adapters folded in (see module doc), eval mode."""
    kind = meta.get("kind")
    if kind in ("backbone", "merged"):
        model = backbone_from_checkpoint(state, meta, path)
    elif kind == "adapted":
        model = _adapted(state, meta, path)
    else:
        raise DataError(path, f"not a model of a finished run (kind {kind!r})")
    return model.eval()


def _trace(model: nn.Module, shape: tuple[int, int, int], target: Path) -> None:
    """TorchScript by tracing, checked against the model on another batch size."""
    model = model.eval()
    with warnings.catch_warnings():  # trace's deprecation note and GroupNorm's size check
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.rand(2, *shape))
    check = torch.rand(5, *shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        if not torch.allclose(traced(check), model(check), rtol=1e-4, atol=1e-5):
            raise DataError(target, "the traced model does not reproduce the model's logits")
    tmp = temp_path(target, ".pt")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(traced, str(tmp))
        tmp.replace(target)
    except OSError as exc:
        raise DataError(target, f"cannot write: {exc.strerror or exc}") from None
    finally:
        discard(tmp)


def export_model(model: nn.Module, info: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write the three files of the module doc into ``out``; returns them by kind.

    ``info`` holds :data:`META_KEYS` plus ``length`` and ``temperature`` (and may hold more,
    e.g. the run it came from).
    """
    out = Path(out)
    missing = [k for k in (*META_KEYS, "length", "temperature") if k not in info]
    if missing:
        raise ValueError(f"export info lacks {', '.join(missing)}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(out, f"cannot write here ({exc.strerror or exc})") from None
    paths = {k: out / name for k, name in FILES.items()}
    shape = (info["in_channels"], info["image_size"], info["image_size"])
    _trace(model, shape, paths["torchscript"])
    save_checkpoint(paths["safetensors"], model.state_dict(), {**info, "kind": "merged"})
    doc = {**info, "kind": "merged", "input": INPUT_NOTE, "onnx": ONNX_NOTE}
    doc["files"] = {k: p.name for k, p in paths.items()}
    with atomic_file(paths["json"]) as handle:
        handle.write((json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return paths


def load_exported(out: str | Path) -> tuple[torch.jit.ScriptModule, nn.Module, dict[str, Any]]:
    """(TorchScript module, model rebuilt from the safetensors, model.json) of an export.

    TorchScript files run code: load only exports you made or trust.
    """
    out = Path(out)
    info = json.loads((out / FILES["json"]).read_text(encoding="utf-8"))
    state = load_file(str(out / FILES["safetensors"]))
    model = backbone_from_checkpoint(state, info, out / FILES["safetensors"]).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(out / FILES["torchscript"]))
    return scripted, model, info
