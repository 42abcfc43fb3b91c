"""Checking a state dict against the tensors it is meant for, before any of it is copied.

A client's update, a checkpoint or LoRA-SB's basis reaches the model only through
``load_checked``: keys, shapes, dtypes and finiteness are checked first, so a bad message leaves
the model as it was and fails with one line that names the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import FedsbError


class AdapterStateError(FedsbError):
    """A state dict does not fit the model; the one-line message names the key and the problem."""


def name_list(keys: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` keys, quoted, and how many more there are (for one-line errors)."""
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_state(
    targets: Mapping[str, torch.Tensor],
    state: Mapping[str, Any],
    strict: bool = True,
    what: str = "adapter state",
) -> None:
    """Raise AdapterStateError (one line naming the key) unless ``state`` fits ``targets``.

    Unexpected keys always raise (they mean another method or other targets); missing keys raise
    when ``strict``; every value must be a finite tensor of the target's shape and dtype.
    """
    unexpected = sorted(set(state) - set(targets))
    if unexpected:
        raise AdapterStateError(f"{what}: unexpected keys {name_list(unexpected)}")
    missing = sorted(set(targets) - set(state))
    if missing and strict:
        raise AdapterStateError(f"{what}: missing keys {name_list(missing)}")
    for key, value in state.items():
        want = targets[key]
        if not isinstance(value, torch.Tensor):
            raise AdapterStateError(f"{what}: key {key!r}: not a tensor ({type(value).__name__})")
        if value.shape != want.shape:
            got, exp = tuple(value.shape), tuple(want.shape)
            raise AdapterStateError(f"{what}: key {key!r}: shape {got}, expected {exp}")
        if value.dtype != want.dtype:
            raise AdapterStateError(
                f"{what}: key {key!r}: dtype {value.dtype}, expected {want.dtype}"
            )
        if (value.is_floating_point() or value.is_complex()) and not torch.isfinite(value).all():
            nan, inf = int(value.isnan().sum()), int(value.isinf().sum())
            raise AdapterStateError(f"{what}: key {key!r}: {nan} NaN and {inf} Inf values")


def load_checked(
    targets: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    strict: bool = True,
    what: str = "adapter state",
) -> None:
    """``check_state``, then copy every entry in place.

    A bad message from a client leaves the model as it was.
    """
    check_state(targets, state, strict, what)
    with torch.no_grad():
        for key, value in state.items():
            targets[key].copy_(value)
