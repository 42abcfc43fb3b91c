"""Where a federated run stands after a round, and its checkpoint (``state.safetensors``).

The checkpoint holds the global adapter state (keys ``global.*``), the server optimiser's
state (``opt.*``) and, for a method whose clients keep tensors (fedsa's B), each client's
(``personal.<client>.*``: the simulated clients' own storage, so a resume continues with it), with
metadata ``{"kind": "federated-state", "round": n, "totals": {"bytes":
..., "dp_steps": [...]}}``: the format every run directory so far was written in, so old runs
resume. The records are immutable: each round returns new ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import DataError
from ..models.checkpoint import load_checkpoint, save_checkpoint

State = dict[str, torch.Tensor]
GLOBAL, OPT, PERSONAL = "global.", "opt.", "personal."  # key prefixes in the checkpoint
KIND = "federated-state"


@dataclass(frozen=True)
class Totals:
    """What the run has counted so far: bytes sent (all clients) and DP-SGD steps per client."""

    bytes: float
    dp_steps: tuple[int, ...]

    def as_meta(self) -> dict:
        """The totals as checkpoint metadata (read back by ``from_meta``)."""
        return {"bytes": self.bytes, "dp_steps": list(self.dp_steps)}

    @classmethod
    def from_meta(cls, meta: object, path: Path) -> Totals:
        """The totals of a checkpoint's metadata; DataError naming ``path`` when malformed."""
        steps = meta.get("dp_steps") if isinstance(meta, dict) else None
        ok = isinstance(steps, list) and all(type(s) is int for s in steps)
        if not ok or not isinstance(meta.get("bytes"), int | float):
            raise DataError(path, 'metadata "totals" is not {"bytes": number, "dp_steps": [int]}')
        return cls(meta["bytes"], tuple(steps))


@dataclass(frozen=True)
class Progress:
    """The global and server-optimiser states after round ``done``, and the totals so far.

    ``personal``: client id -> the tensors that client keeps (fedsa's B); empty otherwise.
    """

    global_state: State
    opt_state: State
    done: int
    totals: Totals
    personal: dict[int, State] = field(default_factory=dict)


def split_prefixed(state: Mapping[str, torch.Tensor], prefix: str) -> State:
    """The entries of ``state`` whose key starts with ``prefix``, the prefix removed."""
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def with_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> State:
    """``state`` with ``prefix`` before every key (``split_prefixed`` undoes it)."""
    return {prefix + k: v for k, v in state.items()}


def save_progress(path: Path, progress: Progress) -> None:
    """Write the checkpoint atomically (``save_checkpoint``): a failed write keeps the last."""
    tensors = {**with_prefix(progress.global_state, GLOBAL), **with_prefix(progress.opt_state, OPT)}
    for client, kept in progress.personal.items():
        tensors.update(with_prefix(kept, f"{PERSONAL}{client}."))
    meta = {"kind": KIND, "round": progress.done, "totals": progress.totals.as_meta()}
    save_checkpoint(path, tensors, meta)


def load_progress(path: Path) -> Progress:
    """The progress a checkpoint holds; DataError naming ``path`` for malformed metadata."""
    state, meta = load_checkpoint(path)
    done = meta.get("round")
    if type(done) is not int or done < 0:
        raise DataError(path, f'metadata "round" is not a round number, got {done!r}')
    totals = Totals.from_meta(meta.get("totals"), path)
    personal = _personal(split_prefixed(state, PERSONAL), path)
    return Progress(
        split_prefixed(state, GLOBAL), split_prefixed(state, OPT), done, totals, personal
    )


def _personal(state: State, path: Path) -> dict[int, State]:
    """``<client>.<key>`` entries grouped by client; DataError naming ``path`` for another key."""
    out: dict[int, State] = {}
    for key, value in state.items():
        client, _, rest = key.partition(".")
        if not (client.isdigit() and client.isascii() and rest):
            raise DataError(path, f"key {PERSONAL + key!r} is not {PERSONAL}<client>.<key>")
        out.setdefault(int(client), {})[rest] = value
    return dict(sorted(out.items()))


__all__ = ["Progress", "Totals", "load_progress", "save_progress", "split_prefixed", "with_prefix"]
