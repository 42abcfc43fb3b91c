"""The client update: global adapter state in -> local adapter state + metrics out. No engine.

The same function runs in the embedded engine (in-process or in a worker process) and in the
Flower ClientApp, so both give the same numbers for the same seed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..data.imageset import ImageSet
from ..models.adapters import adapter_state, load_adapter_state
from ..models.lora_sb_init import estimate_weight_gradients
from ..training.loop import LossFn, Tally, run_epoch, shuffled_batches, warmup_cosine
from . import dp as dpacc
from . import payload
from .config import RunConfig
from .methods import method
from .states import client_start, fresh_seed, split_update

State = dict[str, torch.Tensor]


def round_lr(cfg: RunConfig, server_round: int, head: bool = False) -> float:
    """Client learning rate in ``server_round`` (1-based): cosine decay over the rounds.

    The last rounds take small steps, as a centralized cosine schedule would. The head takes
    ``client.head_lr`` when set, else ``client.lr``, so fedsb's R can be tuned apart from it;
    the adapter tensors take the rate of their kind (LoRA factors diverge at fedsb's rate, full
    weights need a ~10x smaller one).
    """
    c = cfg.client
    base = (c.head_lr or c.lr) if head else getattr(c, method(cfg.method).lr_key)
    return base * warmup_cosine(server_round - 1, cfg.rounds)


def param_groups(model: nn.Module, cfg: RunConfig, server_round: int) -> list[dict]:
    """AdamW parameter groups: the plain head at the head's rate, the rest at its method's.

    The rest is every other trained tensor, an adapted head's factors too.
    """
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
    """Log of the client's class prior, add-one smoothed so an absent class stays finite."""
    counts = torch.bincount(labels, minlength=classes).double() + 1.0
    return (counts / counts.sum()).log().float()


def local_loss(logits, y, cfg: RunConfig, shift: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy; with ``client.logit_adjust`` = tau, on logits + tau*log(prior).

    Logit adjustment (Menon et al. 2021; FedLC, Zhang et al. 2022): a client stops pushing down
    the classes it barely holds, so its update fits p(x|y) rather than its own skewed p(y).
    """
    if shift is not None:
        logits = logits + shift
    return F.cross_entropy(logits, y, label_smoothing=cfg.client.label_smoothing)


def proximal(params: list[torch.Tensor], anchors: list[torch.Tensor], mu: float) -> torch.Tensor:
    """FedProx (Li et al. 2020): mu/2 * squared distance of the trained tensors to the global."""
    return 0.5 * mu * sum(((p - a) ** 2).sum() for p, a in zip(params, anchors, strict=True))


def local_optimizer(groups: list[dict], cfg: RunConfig) -> torch.optim.Optimizer:
    """A fresh optimiser every round: AdamW (default) or SGD with momentum (``client.optimizer``).

    SGD's update is proportional to the gradients, as FedAvg's analysis assumes.
    """
    if cfg.client.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, weight_decay=cfg.client.weight_decay)
    return torch.optim.AdamW(groups, weight_decay=cfg.client.weight_decay)


def _loss_fn(groups: list[dict], data: ImageSet, cfg: RunConfig) -> LossFn:
    """The client's loss: cross-entropy, logit-adjusted by ``client.logit_adjust``, and FedProx.

    The FedProx term (to the global state) is added only when ``client.prox_mu`` > 0.
    """
    shift = None
    if cfg.client.logit_adjust > 0:
        shift = cfg.client.logit_adjust * log_prior(data.labels, len(data.class_names))
    if cfg.client.prox_mu <= 0:
        return lambda logits, y: local_loss(logits, y, cfg, shift)
    params = [p for g in groups for p in g["params"]]
    anchors = [p.detach().clone() for p in params]
    return lambda logits, y: (
        local_loss(logits, y, cfg, shift) + proximal(params, anchors, cfg.client.prox_mu)
    )


def _train(model, groups, data, cfg: RunConfig, generator) -> tuple[Tally, dict[str, float]]:
    """The client's local epochs through the training loop.

    With DP, the same loop on Poisson batches with the model and optimiser made private (the
    config refuses logit_adjust and prox_mu with dp, so the loss is plain cross-entropy there).
    """
    loss_fn = _loss_fn(groups, data, cfg)
    opt = local_optimizer(groups, cfg)
    n, bs, epochs = len(data), cfg.client.batch_size, cfg.client.local_epochs
    if not cfg.dp.enabled:
        return run_epoch(model, data, opt, shuffled_batches(n, bs, generator, epochs), loss_fn), {}
    q = dpacc.sample_rate(bs, n)
    steps = dpacc.steps_per_round(bs, n, epochs)
    sigma = dpacc.noise_multiplier(cfg.dp, q, steps * cfg.rounds)
    with dpacc.private(model, opt, sigma, cfg.dp.clip, q, n, generator) as (gsm, dp_opt):
        batches = dpacc.poisson_batches(n, q, steps, generator)
        tally = run_epoch(gsm, data, dp_opt, batches, loss_fn)
    return tally, {"dp_sigma": sigma, "dp_sample_rate": q, "dp_steps": steps}


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
    tally, extra = _train(model, groups, data, cfg, generator)
    metrics = {
        "num-examples": float(len(data)),
        **tally.metrics(),
        "lr": lr,
        "seconds": time.perf_counter() - start,
        **extra,
    }
    return adapter_state(model), metrics


def client_init_gradients(
    model: nn.Module, data: ImageSet, samples: int, batch_size: int, seed: int
) -> State:
    """Federated round 0 of LoRA-SB: this client's summed gradients of every lora-sb base weight.

    The sum is over the client's first ``samples`` (seeded order) of the batch-mean gradient.
    The server sums them over clients.
    """
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    order = order[: min(samples, len(data))]
    batches = (data.batch(order[s : s + batch_size]) for s in range(0, len(order), batch_size))
    model.train()
    return estimate_weight_gradients(model, batches)


def client_init_step(model, data, cfg: RunConfig, client: int, samples: int) -> State:
    """LoRA-SB round 0 of one client; every engine calls this, so all give the same basis."""
    seed = client_seed(cfg.adapter.init_seed, 0, client)
    return client_init_gradients(model, data, samples, cfg.client.batch_size, seed)


def client_step(
    model, data, cfg: RunConfig, server_round: int, client: int, global_state, personal=None
):
    """Train one client and apply its (simulated) behaviour: (upload, metrics, kept).

    Every engine calls this. ``global_state`` is the round's broadcast in ``client.payload``'s
    precision (``payload.decode``). The client starts from it (its W0 loaded where the method
    folds into it), the round's new factors (flora) and what it kept (``personal``: fedsa's B,
    and its int8 error-feedback residuals); it sends the method's keys, encoded as
    ``payload.encode_update`` says, and keeps the rest (``states.split_update``) and its new
    residuals. The global torch RNG (dropout) is seeded per (round, client) and restored
    afterwards, so results do not depend on which process ran which client before.
    """
    from .faults import misbehave  # looked up per call: tests replace it to forge bad answers

    fed, kind = method(cfg.method), cfg.client.payload
    received = payload.decode(global_state, kind)
    own = payload.without_residuals(personal) if personal is not None else None
    fresh = fresh_seed(cfg.adapter.init_seed, server_round)
    start = client_start(model, fed, received, own, fresh)
    seed = client_seed(cfg.seed, server_round, client)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state, metrics = client_update(model, start, data, cfg, server_round, seed)
    sent, kept = split_update(fed, state)
    reference = {k: start[k] for k in sent}
    sent = misbehave(sent, reference, cfg.attack, client, seed)
    feedback = [k for k in reference if k in received]  # not flora's new factors
    wire, residual = payload.encode_update(
        sent, reference, payload.residuals(personal), kind, feedback
    )
    return wire, metrics, payload.with_residuals(kept, residual)
