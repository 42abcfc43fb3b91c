"""The client update: global adapter state in -> local adapter state + metrics out. No engine.

The same function runs in the embedded engine (in-process or in a worker process) and in the
Flower ClientApp, so both give the same numbers for the same seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..data.imageset import ImageSet
from ..models.adapters import adapter_state, load_adapter_state
from ..models.lora_sb_init import estimate_weight_gradients
from . import dp as dpacc
from .config import RunConfig
from .methods import method

State = dict[str, torch.Tensor]


def round_lr(cfg: RunConfig, server_round: int, head: bool = False) -> float:
    """Client learning rate in ``server_round`` (1-based): cosine decay over the rounds, so the
    last rounds take small steps, as a centralized cosine schedule would. The head always takes
    ``client.lr``; the adapter tensors take the rate of their kind (LoRA factors diverge at
    fedsb's rate, full weights need a ~10x smaller one)."""
    base = cfg.client.lr if head else getattr(cfg.client, method(cfg.method).lr_key)
    progress = (server_round - 1) / max(1, cfg.rounds)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, cfg: RunConfig, server_round: int) -> list[dict]:
    """AdamW groups: the plain head at the head's rate, every other trained tensor (an adapted
    head's factors too) at its method's."""
    head, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            plain_head = name.startswith("head.") and ".lora_" not in name
            (head if plain_head else rest).append(p)
    groups = [{"params": rest, "lr": round_lr(cfg, server_round)}] if rest else []
    if head:
        groups.append({"params": head, "lr": round_lr(cfg, server_round, head=True)})
    return groups


def client_seed(seed: int, server_round: int, client: int) -> int:
    """One independent seed per (run seed, round, client): resumable, order-independent."""
    return (seed * 1_000_003 + server_round * 7919 + client * 104_729) % (2**63 - 1)


def log_prior(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """log of the client's class prior, add-one smoothed so an absent class stays finite."""
    counts = torch.bincount(labels, minlength=classes).double() + 1.0
    return (counts / counts.sum()).log().float()


def local_loss(logits, y, cfg: RunConfig, shift: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy; with ``client.logit_adjust`` = tau, on logits + tau*log(prior) (logit
    adjustment, Menon et al. 2021; FedLC, Zhang et al. 2022): a client stops pushing down the
    classes it barely holds, so its update fits p(x|y) rather than its own skewed p(y)."""
    if shift is not None:
        logits = logits + shift
    return F.cross_entropy(logits, y, label_smoothing=cfg.client.label_smoothing)


def proximal(params: list[torch.Tensor], anchors: list[torch.Tensor], mu: float) -> torch.Tensor:
    """FedProx (Li et al. 2020): mu/2 * squared distance of the trained tensors to the global."""
    return 0.5 * mu * sum(((p - a) ** 2).sum() for p, a in zip(params, anchors, strict=True))


def local_optimizer(groups: list[dict], cfg: RunConfig) -> torch.optim.Optimizer:
    """A fresh optimiser every round: AdamW (default) or SGD with momentum (``client.optimizer``),
    whose update is proportional to the gradients, as FedAvg's analysis assumes."""
    if cfg.client.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, weight_decay=cfg.client.weight_decay)
    return torch.optim.AdamW(groups, weight_decay=cfg.client.weight_decay)


def _plain_epochs(model, groups, data, cfg, generator) -> tuple[float, int, int]:
    opt = local_optimizer(groups, cfg)
    shift = None
    if cfg.client.logit_adjust > 0:
        shift = cfg.client.logit_adjust * log_prior(data.labels, len(data.class_names))
    params = [p for g in groups for p in g["params"]]
    anchors = [p.detach().clone() for p in params] if cfg.client.prox_mu > 0 else None
    loss_sum, correct, seen = 0.0, 0, 0
    for _ in range(cfg.client.local_epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), cfg.client.batch_size):
            x, y = data.batch(order[start : start + cfg.client.batch_size])
            logits = model(x)
            loss = local_loss(logits, y, cfg, shift)
            if anchors is not None:
                loss = loss + proximal(params, anchors, cfg.client.prox_mu)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
    return loss_sum, correct, seen


def _private_epochs(model, groups, data, cfg, generator) -> tuple[float, int, int, dict]:
    """DP-SGD: Poisson batches, per-sample clipping and seeded Gaussian noise (Opacus)."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    n, bs = len(data), cfg.client.batch_size
    q = dpacc.sample_rate(bs, n)
    steps = dpacc.steps_per_round(bs, n, cfg.client.local_epochs)
    sigma = dpacc.noise_multiplier(cfg.dp, q, steps * cfg.rounds)
    gsm = GradSampleModule(model)
    opt = DPOptimizer(
        local_optimizer(groups, cfg),
        noise_multiplier=sigma,
        max_grad_norm=cfg.dp.clip,
        expected_batch_size=max(1, round(q * n)),  # = min(bs, n): Opacus averages by it
        generator=generator,
    )
    loss_sum, correct, seen = 0.0, 0, 0
    try:
        for _ in range(steps):
            index = torch.nonzero(torch.rand(n, generator=generator) < q).flatten()
            opt.zero_grad(set_to_none=True)
            if len(index) == 0:  # an empty Poisson batch: nothing to learn, the step is counted
                continue
            x, y = data.batch(index)
            logits = gsm(x)
            loss = local_loss(logits, y, cfg, None)  # config refuses logit_adjust/prox_mu with dp
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
    finally:
        opt.zero_grad(set_to_none=True)
        gsm._close()  # remove hooks and grad_sample attributes: the model is plain again
    return loss_sum, correct, seen, {"dp_sigma": sigma, "dp_sample_rate": q, "dp_steps": steps}


def client_update(
    model: nn.Module,
    global_state: Mapping[str, torch.Tensor],
    data: ImageSet,
    cfg: RunConfig,
    server_round: int,
    seed: int,
) -> tuple[State, dict[str, float]]:
    """Load the global state, train locally, return the new trained tensors and metrics.

    ``model`` is the adapted model with frozen weights (and, for fedsb, the shared B and A); every
    trained tensor is overwritten from ``global_state`` first, so nothing carries over from the
    previous client that used the same model object.
    """
    start = time.perf_counter()
    load_adapter_state(model, global_state)
    model.train()
    groups = param_groups(model, cfg, server_round)
    generator = torch.Generator().manual_seed(seed)
    lr = groups[0]["lr"]
    extra: dict[str, float] = {}
    if cfg.dp.enabled:
        loss_sum, correct, seen, extra = _private_epochs(model, groups, data, cfg, generator)
    else:
        loss_sum, correct, seen = _plain_epochs(model, groups, data, cfg, generator)
    metrics = {
        "num-examples": float(len(data)),
        "train_loss": loss_sum / max(seen, 1),
        "train_acc": correct / max(seen, 1),
        "lr": lr,
        "seconds": time.perf_counter() - start,
        **extra,
    }
    return adapter_state(model), metrics


def client_init_gradients(
    model: nn.Module, data: ImageSet, samples: int, batch_size: int, seed: int
) -> State:
    """Federated round 0 of LoRA-SB: the sum over this client's first ``samples`` (seeded order)
    of the batch-mean gradient of every lora-sb base weight. The server sums them over clients."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    order = order[: min(samples, len(data))]
    batches = (data.batch(order[s : s + batch_size]) for s in range(0, len(order), batch_size))
    model.train()
    return estimate_weight_gradients(model, batches)
