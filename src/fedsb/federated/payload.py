"""What a training round puts on the wire (``client.payload``): fp32, fp16 or int8 tensors.

Pure functions, shared by both engines, so the embedded and the Flower runs send the same bytes.

* Uplink: a client sends its update, delta = sent - start, of every sent tensor. ``fp16`` casts
  it (2 bytes a number); ``int8`` quantises it symmetrically per tensor, q = round(x / s) in
  [-127, 127] with s = max|x| / 127 (1 byte a number, plus one float32 scale per tensor, all
  in one ``SCALES`` tensor), with error feedback: the client adds the residual it kept from its
  last participation before quantising and keeps the new one, e = (delta + e_old) - s q, so
  what one round rounds away is sent in a later one instead of being lost (Seide et al. 2014;
  Karimireddy et al. 2019). The server adds the decoded delta to the start it knows.
* Downlink: the server sends the global state itself in the same precision (absolute values,
  so a client that missed rounds needs nothing else) and keeps the exact state: each client's
  update is applied to the exact state (``rebase``), so the broadcast's rounding never
  accumulates and needs no residual.

Round 0 (``round0``) follows the same rule: the clients' replies go in ``kind``, and the fixed
matrices the server sends once (the sketch's Q, LoRA-SB's B and A) in ``fixed_kind``
(``client.basis_payload``; "auto": fp16 for fp16 and int8). Every node must decode the very
basis the server keeps: fp16 re-encodes its own values exactly, and int8 does with
power-of-two scales (``quantise(pow2=True)``) (an ordinary int8 scale recomputed from dequantised
values would not be bit-identical).

Per tensor, not per row: one scale costs 4 bytes for the whole tensor, while per-row scales
would add 4 / d_in (25 % on a 16 x 16 LoRA-SB R) for a finer grid whose gain the error
feedback already recovers. ``fp32`` returns every state unchanged: the same numbers as before.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal, get_args

import torch

from ..models.state import AdapterStateError, check_state

State = dict[str, torch.Tensor]
Payload = Literal["fp32", "fp16", "int8"]
PAYLOADS: tuple[str, ...] = get_args(Payload)
SCALES = "payload.scales"  # int8: one float32 scale per tensor, in sorted-key order
RESIDUAL = "ef."  # the prefix of a client's error-feedback residuals in what it keeps
LEVELS = 127  # symmetric int8 grid: -127..127 (-128 unused, so the grid is symmetric)


def quantise(x: torch.Tensor, pow2: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(q int8, scale float32): x ~ q * scale, scale = max|x| / 127, q in [-127, 127].

    An all-zero x has scale 0 and q 0. A non-finite x gets a non-finite scale (the server's
    check then refuses the tensor) and q 0 where x / scale is not a number. ``pow2`` rounds the
    scale up to a power of two: q * 2^e is exact in float32, so encoding the decoded values
    again gives the same q and scale (a server re-sending the basis it keeps sends the same bits).
    """
    x = x.detach().float()
    amax = x.abs().max() if x.numel() else torch.zeros((), dtype=torch.float32)
    scale = amax / LEVELS
    if pow2 and bool(torch.isfinite(scale)) and float(scale) > 0:
        mantissa, exponent = torch.frexp(scale)  # scale = m * 2^e, m in [0.5, 1)
        scale = torch.ldexp(torch.ones(()), exponent - (mantissa == 0.5).to(exponent.dtype))
    ratio = torch.nan_to_num(x / scale, nan=0.0, posinf=0.0, neginf=0.0)
    return ratio.round().clamp(-LEVELS, LEVELS).to(torch.int8), scale


def dequantise(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float32 values q * scale of one quantised tensor."""
    return q.to(torch.float32) * scale.to(torch.float32)


def encode(values: Mapping[str, torch.Tensor], kind: str, pow2: bool = False) -> State:
    """``values`` as sent in precision ``kind`` (fp32: unchanged; int8: ``quantise(pow2)``)."""
    if kind == "fp32":
        return dict(values)
    if kind == "fp16":
        return {k: v.detach().to(torch.float16) for k, v in values.items()}
    if kind != "int8":
        raise ValueError(f"payload {kind!r} is not one of {', '.join(PAYLOADS)}")
    wire: State = {}
    scales = []
    for key in sorted(values):
        wire[key], scale = quantise(values[key], pow2)
        scales.append(scale)
    wire[SCALES] = torch.stack(scales) if scales else torch.zeros(0)
    return wire


def decode(wire: Mapping[str, torch.Tensor], kind: str) -> State:
    """The float32 values of an ``encode`` result (fp32: unchanged)."""
    if kind == "fp32":
        return dict(wire)
    if kind == "fp16":
        return {k: v.to(torch.float32) for k, v in wire.items()}
    keys = sorted(k for k in wire if k != SCALES)
    scales = wire[SCALES]
    return {k: dequantise(wire[k], scales[i]) for i, k in enumerate(keys)}


def fixed_kind(kind: str, fixed: str = "auto") -> str:
    """The precision of what the server sends once (Q, B and A); "auto": fp32, else fp16."""
    if fixed != "auto":
        return fixed
    return "fp32" if kind == "fp32" else "fp16"


def encode_fixed(values: Mapping[str, torch.Tensor], kind: str) -> State:
    """What the server sends once (Q, B and A) in ``kind``: int8 with power-of-two scales.

    So a re-encoding of the decoded values (the basis a server re-sends) is bit-identical.
    """
    return encode(values, kind, pow2=True)


def expected(like: Mapping[str, torch.Tensor], kind: str) -> State:
    """What an ``encode`` of values shaped like ``like`` holds: its keys, shapes and dtypes."""
    if kind == "fp32":
        return dict(like)
    dtype = torch.float16 if kind == "fp16" else torch.int8
    out = {k: torch.empty(v.shape, dtype=dtype) for k, v in like.items()}
    if kind == "int8":
        out[SCALES] = torch.empty(len(like), dtype=torch.float32)
    return out


def check_wire(
    wire: Mapping[str, object], like: Mapping[str, torch.Tensor], kind: str, what: str = ""
) -> None:
    """Raise AdapterStateError (one line naming the key) unless ``wire`` is a ``kind`` encoding.

    Of values shaped like ``like``: its keys, shapes and dtypes, every value (and int8's scale
    per tensor) finite. ``what`` names it in the message (default: "KIND update").
    """
    check_state(expected(like, kind), wire, strict=True, what=what or f"{kind} update")


def delta(state: Mapping[str, torch.Tensor], start: Mapping[str, torch.Tensor]) -> State:
    """The update ``state - start`` of every key (a key without a start: its value)."""
    return {k: v - start[k] if k in start else v for k, v in state.items()}


def _finite_or_zero(x: torch.Tensor) -> torch.Tensor:
    return x if bool(torch.isfinite(x).all()) else torch.zeros_like(x)


def encode_update(
    sent: Mapping[str, torch.Tensor],
    start: Mapping[str, torch.Tensor],
    residual: Mapping[str, torch.Tensor],
    kind: str,
    feedback: Collection[str] = (),
) -> tuple[State, State]:
    """A client's upload of ``sent`` (started from ``start``): (wire, new residual).

    fp32: ``sent`` itself and no residual. int8: the keys in ``feedback`` (those whose start is
    the global value, not a round's new factors) carry ``residual`` (``RESIDUAL`` dropped
    from the keys) into the quantised delta and get the new one back; a residual that is not
    finite (a diverged or faulty client) is reset to 0 rather than carried for ever.
    """
    if kind == "fp32":
        return dict(sent), {}
    update = delta(sent, start)
    if kind != "int8":
        return encode(update, kind), {}
    ef = [k for k in sorted(update) if k in feedback]
    for key in ef:
        if key in residual:
            update[key] = update[key] + residual[key]
    wire = encode(update, kind)
    back = decode(wire, kind)
    return wire, {k: _finite_or_zero(update[k] - back[k]) for k in ef}


def decode_update(wire: Mapping[str, torch.Tensor], start: State, kind: str) -> State:
    """The state a client's upload stands for: start + its decoded delta (fp32: the upload).

    ``start``: what the client started from, of the keys it sends; ``check_wire`` first.
    """
    if kind == "fp32":
        return dict(wire)
    check_wire(wire, start, kind)
    update = decode(wire, kind)
    return {k: (start[k] + update[k]).to(start[k].dtype) for k in start}


def broadcast(global_state: State, kind: str) -> tuple[State, State]:
    """(what the server sends, what the clients decode from it) of the global state.

    fp32: the global state itself, twice (so nothing downstream changes).
    """
    if kind == "fp32":
        return global_state, global_state
    wire = encode(global_state, kind)
    return wire, decode(wire, kind)


def received_update(
    wire: Mapping[str, torch.Tensor], start: State, kind: str
) -> tuple[State | None, str | None]:
    """(the state an upload stands for, None) or (None, why it cannot be read): ``decode_update``.

    fp32: the upload itself, as before.
    """
    if kind == "fp32":
        return wire, None  # type: ignore[return-value]
    try:
        return decode_update(wire, start, kind), None
    except AdapterStateError as exc:
        return None, str(exc)


def rebase(
    aggregated: Mapping[str, torch.Tensor],
    received: Mapping[str, torch.Tensor],
    exact: Mapping[str, torch.Tensor],
) -> State:
    """The aggregate moved from the broadcast the clients ``received`` onto the ``exact`` state.

    exact + (aggregated - received), in float64: the clients' mean update applied to the
    state the server kept, so the downlink's rounding does not accumulate over the rounds.
    """
    return {
        k: (exact[k].double() + (v.double() - received[k].double())).to(exact[k].dtype)
        for k, v in aggregated.items()
    }


def residuals(kept: Mapping[str, torch.Tensor] | None) -> State:
    """The error-feedback residuals in what a client keeps, by sent key (prefix removed)."""
    return {k.removeprefix(RESIDUAL): v for k, v in (kept or {}).items() if k.startswith(RESIDUAL)}


def without_residuals(kept: Mapping[str, torch.Tensor] | None) -> State:
    """What a client keeps for its method (fedsa's B), without its error-feedback residuals."""
    return {k: v for k, v in (kept or {}).items() if not k.startswith(RESIDUAL)}


def with_residuals(kept: Mapping[str, torch.Tensor], residual: Mapping[str, torch.Tensor]) -> State:
    """``kept`` plus ``residual`` under the ``RESIDUAL`` prefix."""
    return {**kept, **{RESIDUAL + k: v for k, v in residual.items()}}


__all__ = [
    "PAYLOADS",
    "RESIDUAL",
    "SCALES",
    "Payload",
    "broadcast",
    "check_wire",
    "decode",
    "decode_update",
    "delta",
    "dequantise",
    "encode",
    "encode_fixed",
    "encode_update",
    "expected",
    "fixed_kind",
    "quantise",
    "rebase",
    "received_update",
    "residuals",
    "with_residuals",
    "without_residuals",
]
