"""What a method's global state, upload and kept tensors are, and how they reach a model.

For the ``plain`` methods (fedsb, fedit, ffa, fedavg, head-only) the global state is the trained
tensors, which every client also sends back: each function here is then the identity or
``load_adapter_state``, so their numbers stay as they were. The LoRA baselines differ by three
registry fields:

* ``base_weights`` (fedex, flora): the server folds the aggregated update into each adapted
  layer's frozen W0, so the global state also carries ``<layer>.base_layer.weight`` (absolute,
  so a client needs no memory of earlier rounds; a residual would cost the same bytes).
* ``fresh_adapters`` (flora): clients start every round from new LoRA factors (A drawn from a
  seed of the round, the same on every client, B = 0), so the global state holds no A and B.
* ``personal`` (fedsa): trained keys that stay on the client (its B), never sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatch

import torch
from torch import nn

from ..models.adapters import adapted_layers, adapter_state, load_adapter_state
from ..models.folding import BASE_WEIGHT, base_weights, fresh_lora_factors, load_base_weights
from .methods import FedMethod
from .payload import without_residuals

State = dict[str, torch.Tensor]


def fresh_seed(init_seed: int, server_round: int) -> int:
    """The seed of round ``server_round``'s new factors (flora): one per round, every client."""
    return (init_seed * 1_000_003 + server_round * 7919 + 15_485_863) % (2**63 - 1)


def _fresh(model: nn.Module, seed: int) -> State:
    return fresh_lora_factors(model, torch.Generator().manual_seed(seed))


def is_personal(fed: FedMethod, key: str) -> bool:
    """Whether trained key ``key`` stays on the client under ``fed`` (fedsa's B)."""
    return any(fnmatch(key, p) for p in fed.personal)


def initial_global(model: nn.Module, fed: FedMethod) -> State:
    """The global state before round 1: the shared trained tensors (+ W0 where folded)."""
    state = adapter_state(model)
    if fed.plain:
        return state
    drop = set(_fresh(model, 0)) if fed.fresh_adapters else set()
    state = {k: v for k, v in state.items() if k not in drop and not is_personal(fed, k)}
    if fed.base_weights:
        state.update(base_weights(model))
    return state


def initial_personal(model: nn.Module, fed: FedMethod) -> State:
    """What one client keeps before its first round (fedsa: B = 0); empty for other methods."""
    return {k: v for k, v in adapter_state(model).items() if is_personal(fed, k)}


def start_state(
    model: nn.Module,
    fed: FedMethod,
    global_state: Mapping[str, torch.Tensor],
    personal: Mapping[str, torch.Tensor] | None,
    seed: int,
) -> State:
    """Every trained tensor a client starts round ``seed``'s training from (nothing is loaded).

    The global state without W0, the round's new factors (flora, from ``seed``) and the client's
    kept tensors (fedsa's B; not its error-feedback residuals, which are no trained tensors).
    """
    if fed.plain:
        return dict(global_state)
    start = {k: v for k, v in global_state.items() if not k.endswith(BASE_WEIGHT)}
    if fed.fresh_adapters:
        start.update(_fresh(model, seed))
    start.update(without_residuals(personal))
    return start


def client_start(model, fed: FedMethod, global_state, personal, seed: int) -> State:
    """``start_state``, with the global state's W0 (fedex, flora) loaded into ``model`` first."""
    base = {k: v for k, v in global_state.items() if k.endswith(BASE_WEIGHT)}
    if base:
        load_base_weights(model, base)
    return start_state(model, fed, global_state, personal, seed)


def upload_reference(model, fed: FedMethod, global_state: State, seed: int) -> State:
    """What an honest client's upload is checked against: the sent keys at their start values.

    The plain methods' global state itself (every update's distance is then measured from it).
    """
    if fed.plain:
        return global_state
    start = start_state(model, fed, global_state, None, seed)
    return {k: v for k, v in start.items() if not is_personal(fed, k)}


def split_update(fed: FedMethod, state: State) -> tuple[State, State]:
    """A client's trained tensors as (sent, kept): fedsa keeps its B, the others keep nothing."""
    if not fed.personal:
        return state, {}
    kept = {k: v for k, v in state.items() if is_personal(fed, k)}
    return {k: v for k, v in state.items() if k not in kept}, kept


def load_global(model: nn.Module, fed: FedMethod, state: Mapping[str, torch.Tensor]) -> None:
    """Load a model state of ``fed`` into ``model``: W0 where folded, every trained tensor.

    fedsa's ``state`` must hold a B too (a client's own, or their mean); flora's model has zero
    B (its factors start fresh each round), so it computes the folded W0 alone.
    """
    if fed.plain:
        load_adapter_state(model, state)
        return
    base = {k: v for k, v in state.items() if k.endswith(BASE_WEIGHT)}
    if base:
        load_base_weights(model, base)
    trained = {k: v for k, v in state.items() if k not in base}
    if fed.fresh_adapters:
        trained = {**_fresh(model, 0), **trained}
    load_adapter_state(model, trained)


def layer_scalings(model: nn.Module) -> dict[str, float]:
    """The LoRA scaling s = alpha/r of every adapted layer (what the folding aggregators need)."""
    return {name: layer.scaling for name, layer in adapted_layers(model).items()}


__all__ = [
    "client_start",
    "fresh_seed",
    "initial_global",
    "initial_personal",
    "is_personal",
    "layer_scalings",
    "load_global",
    "split_update",
    "start_state",
    "upload_reference",
]
