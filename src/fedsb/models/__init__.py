"""Models: image backbones (ResNet, ViT), the raw-IQ baseline (IQCNN), adapters, configs.

Exports load lazily on first access, so importing ``fedsb.models.config`` (done by every config
loader) does not import torch. To export a name, add one ``name: module`` line to ``_EXPORTS``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # configs (no torch)
    "METHODS": "config",
    "AdapterConfig": "config",
    "ModelConfig": "config",
    # backbones
    "ResNet": "backbones",
    "ViT": "backbones",
    "build_backbone": "backbones",
    "count_parameters": "backbones",
    "parameter_summary": "backbones",
    # raw-IQ baseline
    "IQCNN": "iq_cnn",
    "iq_to_tensor": "iq_cnn",
    # adapters
    "AdaptedLayer": "adapters",
    "AdapterStateError": "adapters",
    "adapter_state": "adapters",
    "apply_adapters": "adapters",
    "count_trainable": "adapters",
    "load_adapter_state": "adapters",
    "merge": "adapters",
    "trainable_parameters": "adapters",
    # LoRA-SB initialisation
    "estimate_weight_gradients": "lora_sb_init",
    "init_lora_sb": "lora_sb_init",
    "initialize_lora_sb": "lora_sb_init",
    "lora_sb_basis": "lora_sb_init",
    "load_lora_sb_basis": "lora_sb_init",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
