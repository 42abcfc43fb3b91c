"""What FedEx-LoRA and FLoRA change in an adapted model besides its factors.

Both fold the server's aggregated update into each adapted layer's frozen W0
(``base_weights`` / ``load_base_weights``), and FLoRA's clients start every round from new LoRA
factors (``fresh_lora_factors``). The adapter layers themselves are ``adapters.AdaptedLayer``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from .adapters import adapted_layers
from .state import load_checked

BASE_WEIGHT = ".base_layer.weight"  # key suffix of an adapted layer's frozen W0


def base_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached clones of every adapted layer's frozen W0, keyed ``<layer>.base_layer.weight``.

    FedEx-LoRA and FLoRA fold the aggregated update into W0, so their global state carries it.
    """
    return {
        name + BASE_WEIGHT: layer.base_layer.weight.detach().clone()
        for name, layer in adapted_layers(model).items()
    }


def load_base_weights(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy a ``base_weights`` state into the adapted layers' W0, every key checked first."""
    targets = {
        name + BASE_WEIGHT: layer.base_layer.weight for name, layer in adapted_layers(model).items()
    }
    load_checked(targets, state, strict=True, what="base weights")


def fresh_lora_factors(model: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """New factors of every ``lora`` layer, drawn as ``apply_adapters`` draws them.

    A is Kaiming-uniform from ``generator`` (module order), B = 0, so a layer given them computes
    W0 x again: FLoRA's clients start each round from such adapters on the updated W0.
    """
    out = {}
    for name, layer in adapted_layers(model).items():
        if layer.method != "lora":
            continue
        a = torch.empty(layer.lora_A.weight.shape)
        nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)
        b = layer.lora_B.weight
        out[f"{name}.lora_A.weight"] = a.to(layer.lora_A.weight)
        out[f"{name}.lora_B.weight"] = torch.zeros(b.shape, dtype=b.dtype, device=b.device)
    return out


__all__ = ["BASE_WEIGHT", "base_weights", "fresh_lora_factors", "load_base_weights"]
