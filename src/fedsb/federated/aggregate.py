"""Server-side pure functions: check a client update, aggregate updates, apply a server optimiser.

Every method aggregates the same way: each key the clients send is combined on its own
(weighted mean, coordinate-wise median or trimmed mean). What differs is what the clients send:

* ``fedsb``: R of every LoRA-SB layer and the head. B and A are the same on every client for
  the whole run, so mean_i(B R_i A) = B mean_i(R_i) A: averaging R is averaging the updates.
* ``fedit``: A and B of every LoRA layer. mean(B_i) mean(A_i) != mean(B_i A_i): inexact.
* ``ffa``: B only (A frozen and shared), exact like fedsb but with r (d_in + ...) numbers.
* ``fedavg``: every weight. ``head-only``: the head.
* ``fedsa``: A only (each client keeps its B), averaged key by key.

Two methods fold the clients' updates into each adapted layer's frozen W0 (``AGGREGATORS``):

* ``fedex`` (FedEx-LoRA): fedit's mean(A) and mean(B), plus the residual
  s (sum_i w_i B_i A_i - mean(B) mean(A)) added to W0, so W0' + s mean(B) mean(A) is exactly
  the weighted mean of the clients' W0 + s B_i A_i.
* ``flora`` (FLoRA): the stacked factors B = [w_1 B_1 .. w_K B_K], A = [A_1; ..; A_K], whose
  product s sum_i w_i B_i A_i is added to W0; the next round starts from new factors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatch

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..models.folding import BASE_WEIGHT
from ..models.state import AdapterStateError, check_state
from .methods import METHODS, method

State = dict[str, torch.Tensor]

#: Key patterns each method may send (besides the head): ``FedMethod.sent`` of the registry.
METHOD_KEYS = {name: m.sent for name, m in METHODS.items()}


def serialize(state: Mapping[str, torch.Tensor]) -> bytes:
    """The bytes a client or server sends: a safetensors blob (header + raw little-endian data)."""
    return st_save({k: v.detach().contiguous() for k, v in state.items()})


def deserialize(blob: bytes) -> State:
    """The state of a ``serialize`` blob, with its keys sorted.

    safetensors returns them in hash order, which differs from call to call (and would make
    ``check_update``'s reason random).
    """
    state = st_load(blob)
    return {k: state[k] for k in sorted(state)}


def payload_bytes(state: Mapping[str, torch.Tensor]) -> int:
    """Measured size of ``serialize(state)``: what one transfer of this state costs."""
    return len(serialize(state))


def parameter_count(state: Mapping[str, torch.Tensor]) -> int:
    """Number of scalar values in ``state``: the trained-parameter count a run reports."""
    return sum(v.numel() for v in state.values())


def method_keys_ok(name: str, keys: Sequence[str]) -> list[str]:
    """Keys that method ``name`` must not send (empty when all are allowed)."""
    allowed = (*method(name).sent, "head.*")
    return [k for k in keys if not any(fnmatch(k, p) for p in allowed)]


def update_norm(update: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]) -> float:
    """L2 norm of (update - reference) over every key: how far a client moved the model."""
    total = sum(float((update[k].double() - reference[k].double()).pow(2).sum()) for k in reference)
    return total**0.5


def update_agreement(
    states: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float],
    reference: Mapping[str, torch.Tensor],
) -> float:
    """How much of each client's step survives the averaging: the measure of client drift.

    |weighted mean of the clients' updates| / weighted mean of their norms, in [0, 1]: 1 when
    every client moved the same way, ~1/sqrt(K) when K clients moved in unrelated directions.
    """
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
    w = w / w.sum()
    mean = {k: sum(wi * s[k].double() for wi, s in zip(w, states)) for k in reference}
    spread = float(sum(wi * update_norm(s, reference) for wi, s in zip(w, states)))
    return update_norm(mean, reference) / spread if spread > 0 else 1.0


def check_update(
    update: Mapping[str, object], reference: Mapping[str, torch.Tensor], norm_bound: float = 0.0
) -> str | None:
    """Why ``update`` must be left out of the round, or None when it is acceptable.

    Wrong or missing keys, wrong shapes or dtypes, NaN/Inf, and (``norm_bound`` > 0) an update
    whose distance from the global state exceeds the bound.
    """
    try:
        check_state(reference, update, strict=True, what="update")
    except AdapterStateError as exc:
        return str(exc)
    if norm_bound > 0:
        norm = update_norm(update, reference)  # type: ignore[arg-type]
        if norm > norm_bound:
            return f"update norm {norm:.3g} exceeds the bound {norm_bound:.3g}"
    return None


def _trimmed_mean(stack: torch.Tensor, trim: float) -> torch.Tensor:
    n = stack.shape[0]
    cut = int(trim * n)
    if n - 2 * cut < 1:
        cut = (n - 1) // 2
    ordered = stack.sort(dim=0).values
    return ordered[cut : n - cut].mean(dim=0)


def aggregate(
    method: str,
    states: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float],
    rule: str = "mean",
    trim: float = 0.2,
) -> State:
    """Combine client states key by key.

    ``mean`` is weighted by ``weights`` (usually training examples); ``median`` and
    ``trimmed-mean`` (cut ``trim`` of the values at each end, coordinate-wise) are unweighted,
    as in Yin et al. 2018. Every state must have the same keys, all allowed for ``method``.
    """
    if not states:
        raise ValueError("aggregate: no client states")
    if len(weights) != len(states):
        raise ValueError(f"aggregate: {len(states)} states but {len(weights)} weights")
    keys = sorted(states[0])
    bad = method_keys_ok(method, keys)
    if bad:
        raise AdapterStateError(f"{method}: clients may not send {bad[:3]}")
    for i, s in enumerate(states[1:], 1):
        if sorted(s) != keys:
            raise AdapterStateError(f"aggregate: client state {i} has other keys than state 0")
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("aggregate: weights must be >= 0 with a positive sum")
    w = w / w.sum()
    out: State = {}
    for key in keys:
        stack = torch.stack([s[key].double() for s in states])
        if rule == "mean":
            value = torch.tensordot(w, stack, dims=1)
        elif rule == "median":
            value = stack.median(dim=0).values if len(states) % 2 else stack.quantile(0.5, dim=0)
        elif rule == "trimmed-mean":
            value = _trimmed_mean(stack, trim)
        else:
            raise ValueError(f"unknown aggregation rule {rule!r}")
        out[key] = value.to(states[0][key].dtype)
    return out


def keywise(
    name: str,
    states: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float],
    global_state: Mapping[str, torch.Tensor],
    scalings: Mapping[str, float],
    rule: str = "mean",
    trim: float = 0.2,
) -> State:
    """``aggregate`` behind the common signature of ``AGGREGATORS`` (most methods)."""
    return aggregate(name, states, weights, rule, trim)


def _product(state: Mapping[str, torch.Tensor], layer: str, shape: torch.Size) -> torch.Tensor:
    """B A of ``layer`` in ``state`` (float64), in W0's ``shape`` (a conv's kernel too)."""
    b = state[f"{layer}.lora_B.weight"].double()
    a = state[f"{layer}.lora_A.weight"].double()
    return (b.reshape(b.shape[0], -1) @ a.reshape(a.shape[0], -1)).reshape(shape)


def _normalised(weights: Sequence[float]) -> torch.Tensor:
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
    return w / w.sum()


def fold_residual(name, states, weights, global_state, scalings, rule="mean", trim=0.2) -> State:
    """FedEx-LoRA: mean A and mean B, and the exact residual folded into W0.

    W0' = W0 + s (sum_i w_i B_i A_i - mean(B) mean(A)), with mean(B) mean(A) taken of the
    aggregated (float32) factors the clients receive, so W0' + s mean(B) mean(A) equals the
    weighted mean of the W0 + s B_i A_i up to float32 rounding.
    """
    out = aggregate(name, states, weights, rule, trim)
    w = _normalised(weights)
    for layer, s in scalings.items():
        key = layer + BASE_WEIGHT
        w0 = global_state[key]
        exact = sum(wi * _product(st, layer, w0.shape) for wi, st in zip(w, states))
        residual = exact - _product(out, layer, w0.shape)
        out[key] = (w0.double() + s * residual).to(w0.dtype)
    return out


def fold_stack(name, states, weights, global_state, scalings, rule="mean", trim=0.2) -> State:
    """FLoRA: W0' = W0 + s sum_i w_i B_i A_i, the product of the stacked factors.

    The factors themselves are not kept (the clients draw new ones); the other sent keys (the
    head) are averaged key by key.
    """
    kept = [{k: v for k, v in st.items() if k in global_state} for st in states]
    out = aggregate(name, kept, weights, rule, trim)
    w = _normalised(weights)
    for layer, s in scalings.items():
        key = layer + BASE_WEIGHT
        w0 = global_state[key]
        update = sum(wi * _product(st, layer, w0.shape) for wi, st in zip(w, states))
        out[key] = (w0.double() + s * update).to(w0.dtype)
    return out


Aggregator = Callable[..., State]
#: ``FedMethod.aggregate`` -> the function: (method, states, weights, global state, layer
#: scalings, rule, trim) -> the aggregated global state (every key of the global state).
AGGREGATORS: dict[str, Aggregator] = {
    "keywise": keywise,
    "fedex-residual": fold_residual,
    "flora-stack": fold_stack,
}


def aggregate_round(
    name: str,
    states: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float],
    global_state: Mapping[str, torch.Tensor],
    scalings: Mapping[str, float],
    rule: str = "mean",
    trim: float = 0.2,
) -> State:
    """The aggregated global state of method ``name``'s accepted client states."""
    combine = AGGREGATORS[method(name).aggregate]
    return combine(name, states, weights, global_state, scalings, rule, trim)


def server_step(
    global_state: Mapping[str, torch.Tensor],
    aggregated: Mapping[str, torch.Tensor],
    optimizer: str,
    opt_state: Mapping[str, torch.Tensor],
    lr: float = 1e-2,
    beta1: float = 0.9,
    beta2: float = 0.99,
    tau: float = 1e-3,
) -> tuple[State, State]:
    """The next global state and server-optimiser state.

    ``avg``: the aggregate itself. With the pseudo-gradient d = aggregate - global:
    ``fedavgm`` (Hsu et al., 2019, server momentum): m = b1 m + d, global += lr m (lr = 1 and
    b1 = 0 is ``avg``); ``fedadam`` (Reddi et al., ICLR 2021): m = b1 m + (1 - b1) d,
    v = b2 v + (1 - b2) d^2, global += lr m / (sqrt(v) + tau). ``opt_state`` holds ``m.<key>``
    (and ``v.<key>``).
    """
    if optimizer == "avg":
        return {k: v.clone() for k, v in aggregated.items()}, dict(opt_state)
    if optimizer == "fedavgm":
        new_global, new_opt = {}, {}
        for key, x in global_state.items():
            d = aggregated[key].double() - x.double()
            m = beta1 * opt_state.get(f"m.{key}", torch.zeros_like(d)).double() + d
            new_global[key] = (x.double() + lr * m).to(x.dtype)
            new_opt[f"m.{key}"] = m
        return new_global, new_opt
    if optimizer != "fedadam":
        raise ValueError(f"unknown server optimizer {optimizer!r}")
    new_global: State = {}
    new_opt: State = {}
    for key, x in global_state.items():
        d = aggregated[key].double() - x.double()
        m = beta1 * opt_state.get(f"m.{key}", torch.zeros_like(d)).double() + (1 - beta1) * d
        v = beta2 * opt_state.get(f"v.{key}", torch.zeros_like(d)).double() + (1 - beta2) * d * d
        new_global[key] = (x.double() + lr * m / (v.sqrt() + tau)).to(x.dtype)
        new_opt[f"m.{key}"], new_opt[f"v.{key}"] = m, v
    return new_global, new_opt


__all__ = [
    "AGGREGATORS",
    "METHOD_KEYS",
    "aggregate",
    "aggregate_round",
    "check_update",
    "deserialize",
    "fold_residual",
    "fold_stack",
    "keywise",
    "parameter_count",
    "payload_bytes",
    "serialize",
    "server_step",
    "update_norm",
]
