"""The tensors clients keep (fedsa's B): their custody in the simulation and their evaluation.

FedSA-LoRA's clients never send B. The embedded engine simulates each client's own storage in
the server's checkpoint (``Progress.personal``, client id -> B), hands a client its B with the
global A for training and takes the new B back, uncounted (it never crosses the network).

Evaluation, as the paper does it: every client's own model (global A, its own B) on its own
split; the split scores of the run (``test_*``, ``val_*``) pool those predictions over the
union of the clients' splits, so they sit beside the other methods' global test scores. The
run also scores one global model, the global A with the example-weighted mean of the clients'
B (``global_model_test_*``, and the saved adapter and merged model).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..data.imageset import ImageSet
from ..training.loop import Evaluation, evaluate_logits, predict
from .faults import ClientResult
from .methods import FedMethod
from .payload import without_residuals
from .states import initial_personal, load_global
from .task import Task

State = dict[str, torch.Tensor]
Personal = Mapping[int, State]


def initial(model: nn.Module, fed: FedMethod, n_units: int) -> dict[int, State]:
    """Every client's kept tensors before round 1 (fedsa: B = 0); empty for other methods."""
    if not fed.personal:
        return {}
    return {i: initial_personal(model, fed) for i in range(n_units)}


def updated(personal: Personal, results: Sequence[ClientResult]) -> dict[int, State]:
    """``personal`` with the new tensors of every client that finished training this round.

    A client whose upload the server refused still keeps what it trained; one that failed
    (crash, timeout) keeps its old tensors.
    """
    out = dict(personal)
    for res in results:
        if res.personal is not None:
            out[res.client] = res.personal
    return out


def model_kept(personal: Personal | None) -> dict[int, State]:
    """The kept tensors that are part of each client's model (fedsa's B), by client.

    Without the int8 error-feedback residuals (``payload``): they are what a client still owes
    the server, not a part of its model; a client that keeps nothing else is left out.
    """
    out = {c: without_residuals(kept) for c, kept in (personal or {}).items()}
    return {c: kept for c, kept in out.items() if kept}


def unit_weights(task: Task) -> list[float]:
    """Each client's weight in the mean of the kept tensors: its training examples."""
    return [float(len(u)) for u in task.units]


def global_model(global_state: State, personal: Personal, weights: Sequence[float]) -> State:
    """The global state plus the weighted mean of the clients' kept tensors (the global model).

    With nothing kept (error-feedback residuals are not counted), the global state itself.
    """
    personal = model_kept(personal)
    if not personal:
        return global_state
    w = torch.tensor([float(weights[i]) for i in personal], dtype=torch.float64)
    w = w / w.sum()
    states = list(personal.values())
    mean = {
        k: torch.tensordot(w, torch.stack([s[k].double() for s in states]), dims=1).to(v.dtype)
        for k, v in states[0].items()
    }
    return {**global_state, **mean}


def client_logits(
    model: nn.Module,
    fed: FedMethod,
    global_state: State,
    personal: Personal,
    datasets: Sequence[ImageSet],
) -> list[torch.Tensor]:
    """Each client's logits on its dataset, under its own model (global + its kept tensors).

    With nothing kept (error-feedback residuals are not counted), the global model is loaded
    once for all.
    """
    personal = model_kept(personal)
    if not personal:
        load_global(model, fed, global_state)
        return [predict(model, d) for d in datasets]
    out = []
    for i, data in enumerate(datasets):
        load_global(model, fed, {**global_state, **personal[i]})
        out.append(predict(model, data))
    return out


def evaluate_personal(
    task: Task, fed: FedMethod, global_state: State, personal: Personal, split: str
) -> Evaluation:
    """Every client's own model on its own ``split`` ("test" or "val"), pooled over the union."""
    datasets = [getattr(c, split) for c in task.clients]
    logits = torch.cat(client_logits(task.model, fed, global_state, personal, datasets))
    return evaluate_logits(logits, getattr(task, split))


__all__ = [
    "client_logits",
    "evaluate_personal",
    "global_model",
    "initial",
    "model_kept",
    "unit_weights",
    "updated",
]
