"""Where tensors live: ``device = "auto" | "cpu" | "cuda"`` of every training config.

"auto" takes the GPU when torch sees one and the CPU otherwise; "cuda" without one is a
ConfigError, not a silent fall back. Wire states, checkpoints and predictions always leave on the
CPU, so a GPU run writes the same files a CPU run does. Mixed precision (``train.amp``) is
bfloat16 autocast on CUDA only; without it nothing changes, so CPU runs stay bit-identical.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str, key: str = "device") -> torch.device:
    """The torch device ``name`` stands for on this machine."""
    if name == "cpu":
        return torch.device("cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{key}: 'cuda' but torch {torch.__version__} sees no CUDA device; "
                "use 'auto' or 'cpu'"
            )
        return torch.device("cuda")
    raise ConfigError(f"{key}: {name!r} is not one of {', '.join(DEVICES)}")


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (the CPU for a model without any)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def autocast(device: torch.device, enabled: bool, key: str = "train.amp"):
    """bfloat16 autocast on CUDA when ``enabled`` (no loss scaling needed); else no change.

    Refused off CUDA: CPU autocast would silently change what a CPU run computes.
    """
    if not enabled:
        return contextlib.nullcontext()
    if device.type != "cuda":
        raise ConfigError(f"{key}: mixed precision runs on CUDA only; the model is on {device}")
    return torch.autocast("cuda", dtype=torch.bfloat16)


__all__ = ["DEVICES", "autocast", "model_device", "resolve_device"]
