"""Simulated misbehaving clients (``[attack]``) and the record of a client's answer in a round.

A misbehaving client trains normally, then changes what it sends: scaled, NaN, sign-flipped or
noisy tensors, wrong keys, an exception, or a stall. Both engines apply the same function on the
client side, so the server sees exactly what a real faulty client would send and its checks
(``aggregate.check_update``) decide what enters the round.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from .config import AttackConfig


class ClientFailure(RuntimeError):
    """A simulated crash of a client (attack kind ``raise``)."""


@dataclass
class ClientResult:
    """One sampled client's answer: its state and metrics, or why it has none."""

    client: int
    state: dict[str, torch.Tensor] | None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # exception text, timeout or a failed check: left out of the round
    bytes_up: int = 0
    personal: dict[str, torch.Tensor] | None = None  # what the client keeps (fedsa's B): not sent


def misbehave(
    state: Mapping[str, torch.Tensor],
    global_state: Mapping[str, torch.Tensor],
    attack: AttackConfig,
    client: int,
    seed: int,
) -> dict[str, torch.Tensor]:
    """What client ``client`` sends instead of ``state`` under ``attack`` (unchanged if honest)."""
    out = dict(state)
    if attack.kind == "none" or client not in attack.clients:
        return out
    if attack.kind == "raise":
        raise ClientFailure(f"client {client} crashed (simulated)")
    if attack.kind == "sleep":
        time.sleep(attack.sleep)
        return out
    if attack.kind == "scale":
        return {k: v * attack.factor for k, v in out.items()}
    if attack.kind == "nan":
        return {k: torch.full_like(v, float("nan")) for k, v in out.items()}
    if attack.kind == "sign-flip":  # send global - (state - global): the update reversed
        return {k: 2 * global_state[k] - v for k, v in out.items()}
    if attack.kind == "noise":
        g = torch.Generator().manual_seed(seed)
        return {k: v + attack.factor * torch.randn(v.shape, generator=g) for k, v in out.items()}
    if attack.kind == "wrong-keys":
        return {f"{k}.bogus": v for k, v in out.items()}
    raise ValueError(f"unknown attack kind {attack.kind!r}")
