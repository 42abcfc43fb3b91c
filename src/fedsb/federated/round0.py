"""LoRA-SB's round 0: what the clients send so that the server can fix B, A and R0 once.

``init_source`` chooses how:

* ``"clients"``: each round-0 client sends its summed full-weight gradient G_i, d_out·d_in floats
  per layer; the server takes the SVD of −lr·sign(Σ G_i), exactly LoRA-SB's initialisation.
* ``"sketch"``: a two-pass randomized range finder over the sum (Halko, Martinsson and Tropp
  2011, algorithm 4.1), k = rank + ``init_oversample`` columns per layer. Pass 1: the server sends
  a seed; each client draws the same Gaussian Ω (d_in × k) and sends G_i·Ω. The server
  orthonormalises Q = qr(Σ G_i·Ω). Pass 2: it sends Q; each client sends Qᵀ·G_i (k × d_in). Then
  Σ G_i ≈ Q·Z with Z = Σ Qᵀ·G_i, and the SVD of the small Z gives the top-r subspace. A client
  sends k·(d_out + d_in) floats instead of d_out·d_in. sign() is not linear, so it cannot be
  sketched: the step is G's own rank-r part, scaled so that its entries have Adam's first-step
  size lr in root mean square (the sign step's entries are ±lr).
* ``"proxy"``: the server's own data (``task.proxy_batches``); nothing goes up.

Round 0's clients are a seeded draw like a round's (``server.fraction``), or ``init_clients`` of
them; each uses ``adapter.init_samples`` split over them. The replies go in ``client.payload``'s
precision, Q, B and A in ``client.basis_kind``'s. Every byte is counted: the seed, Q, the
replies, and B and A down to each round-0 client (later rounds send the basis to each client the
first time it is drawn, ``rounds.basis_newcomers``). The same functions serve every engine.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..models.adapters import matrix_shape
from ..models.lora_sb_init import (
    init_lora_sb,
    initialize_lora_sb,
    load_lora_sb_basis,
    lora_sb_layers,
    set_lora_sb_factors,
)
from ..models.state import AdapterStateError
from .aggregate import payload_bytes
from .client import client_init_step
from .config import RunConfig
from .payload import check_wire, decode, encode, encode_fixed
from .progress import State
from .rounds import FederatedError, basis_wire, init_participants
from .task import Task, proxy_batches

GRADIENTS, RANGE, PROJECT = "gradients", "range", "project"  # what a round-0 request asks for
STAGES = (GRADIENTS, RANGE, PROJECT)
SEED_BYTES = 8  # the sketch's seed: one int64 down to each client
Ask = Callable[[list[int], str, State], list[State]]  # (ids, stage, arrays sent) -> replies


def sketch_width(layer: nn.Module, cfg: RunConfig) -> int:
    """k: the layer's rank plus the oversampling, at most min(d_out, d_in)."""
    return min(layer.rank + cfg.init_oversample, *matrix_shape(layer.base_layer))


def test_matrix(seed: int, name: str, d_in: int, k: int) -> torch.Tensor:
    """Ω of one layer: Gaussian d_in × k from (seed, layer name), the same on every client."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    return torch.randn(d_in, k, generator=generator)


def client_round0(model, data, cfg: RunConfig, client: int, samples: int, stage, sent) -> State:
    """One client's round-0 reply to ``stage``: its summed gradients, G·Ω or Qᵀ·G."""
    grads = client_init_step(model, data, cfg, client, samples)
    return round0_reply(grads, model, cfg, stage, sent)


def round0_reply(grads: State, model: nn.Module, cfg: RunConfig, stage: str, sent: State) -> State:
    """What a client with summed gradients ``grads`` sends for ``stage`` (``sent``: the request).

    The reply is encoded in ``client.payload``; Q arrives in ``client.basis_kind``, checked first.
    """
    kind = cfg.client.payload
    if stage == GRADIENTS:
        return encode(grads, kind) if kind != "fp32" else grads
    layers = lora_sb_layers(model)
    if stage == RANGE:
        seed = int(sent["seed"])
        out = {}
        for name, g in grads.items():
            omega = test_matrix(seed, name, g[0].numel(), sketch_width(layers[name], cfg))
            out[name] = g.reshape(len(g), -1) @ omega
        return encode(out, kind)
    if stage == PROJECT:
        shapes = {n: (len(g), sketch_width(layers[n], cfg)) for n, g in grads.items()}
        q = checked(sent, shapes, cfg.client.basis_kind, "round 0: Q")
        return encode({name: q[name].T @ g.reshape(len(g), -1) for name, g in grads.items()}, kind)
    raise ValueError(f"round 0: unknown stage {stage!r} (one of {', '.join(STAGES)})")


def checked(wire: State, shapes: dict[str, tuple[int, ...]], kind: str, who: str) -> State:
    """The float32 values of ``wire``, a ``kind`` encoding of exactly these shapes (else raise).

    AdapterStateError names the key: a missing or extra key, a shape, a dtype, NaN or Inf.
    """
    check_wire(wire, {n: torch.empty(s) for n, s in shapes.items()}, kind, who)
    return decode(wire, kind)


def summed(
    replies: list[State], ids: list[int], shapes: dict[str, tuple[int, ...]], kind: str = "fp32"
) -> State:
    """The sum of the clients' replies (sent in ``kind``), each checked first (a bad one stops)."""
    values = []
    for client, reply in zip(ids, replies):
        try:
            values.append(checked(reply, shapes, kind, "reply"))
        except AdapterStateError as e:
            raise FederatedError(f"round 0: client {client}: {e}") from None
    return {k: torch.stack([v[k].float() for v in values]).sum(0) for k in shapes}


def gradient_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The shape of each lora-sb layer's base weight: what a full round-0 reply holds."""
    return {n: tuple(m.base_layer.weight.shape) for n, m in lora_sb_layers(model).items()}


def init_from_gradients(model: nn.Module, cfg: RunConfig, ask: Ask, ids: list[int]) -> float:
    """Exact LoRA-SB from the clients' summed gradients; returns the bytes sent up."""
    replies = ask(ids, GRADIENTS, {})
    total = summed(replies, ids, gradient_shapes(model), cfg.client.payload)
    init_lora_sb(model, total, cfg.adapter.init_lr)
    return float(sum(payload_bytes(r) for r in replies))


def init_from_sketch(model: nn.Module, cfg: RunConfig, ask: Ask, ids: list[int]) -> tuple:
    """B, A, R0 from the two-pass sketch; returns (bytes up, bytes down before the basis)."""
    layers, kind = lora_sb_layers(model), cfg.client.payload
    dims = {n: (matrix_shape(m.base_layer), sketch_width(m, cfg)) for n, m in layers.items()}
    seed = {"seed": torch.tensor(cfg.adapter.init_seed, dtype=torch.int64)}
    ranges = ask(ids, RANGE, seed)
    y = summed(ranges, ids, {n: (d_out, k) for n, ((d_out, _), k) in dims.items()}, kind)
    fixed = cfg.client.basis_kind
    q_wire = encode_fixed({n: torch.linalg.qr(y[n]).Q.contiguous() for n in y}, fixed)
    q = decode(q_wire, fixed)  # the Q the clients project on
    projections = ask(ids, PROJECT, q_wire)
    z = summed(projections, ids, {n: (k, d_in) for n, ((_, d_in), k) in dims.items()}, kind)
    for name, layer in layers.items():
        (d_out, d_in), _ = dims[name]
        u, s, vh = torch.linalg.svd(z[name], full_matrices=False)
        scale = cfg.adapter.init_lr * math.sqrt(d_out * d_in) / max(float(s.norm()), 1e-30)
        set_lora_sb_factors(layer, -(q[name] @ u), scale * s, vh)  # ΔW ≈ −scale·Σ G_i
    up = sum(payload_bytes(r) for r in ranges + projections)
    return float(up), float(len(ids) * (SEED_BYTES + payload_bytes(q_wire)))


def init_basis(
    task: Task, cfg: RunConfig, cache_dir: Path | None, ask: Ask, ids: list[int] | None = None
) -> dict[str, float]:
    """Fix LoRA-SB's B, A and R0; returns round 0's bytes and how many clients took part.

    ``ask(ids, stage, arrays)`` is the engine's round-0 exchange (``client_round0`` on each
    listed client); ``ids`` defaults to ``init_participants``. The keys: ``clients``, and
    ``bytes_up`` and ``bytes_down`` (totals over the clients, B and A included).
    """
    if cfg.init_source == "proxy":
        classes = tuple(task.meta["class_names"])
        batches = proxy_batches(cfg, task.checkpoint, cache_dir, cfg.client.batch_size, classes)
        initialize_lora_sb(task.model, batches, cfg.adapter)
        ids, up, down = [], 0.0, 0.0
    elif cfg.init_source == "sketch":
        ids = ids if ids is not None else init_participants(cfg, task.n_clients)
        up, down = init_from_sketch(task.model, cfg, ask, ids)
    else:
        ids = ids if ids is not None else init_participants(cfg, task.n_clients)
        up, down = init_from_gradients(task.model, cfg, ask, ids), 0.0
    wire = basis_wire(task, cfg.client)  # B and A as every client decodes them
    load_lora_sb_basis(task.model, decode(wire, cfg.client.basis_kind))
    down += len(ids) * payload_bytes(wire)
    return {"clients": float(len(ids)), "bytes_up": up, "bytes_down": down}
