"""The training loop: plain functions over a model and ImageSets (no engine, no globals).

``run_epoch`` is the one per-batch loop: pretraining and fine-tuning (``fit``: a per-step
warm-up + cosine learning rate, an evaluation on the validation split after every epoch) and the
federated client update (its own loss, no scheduler, optionally made private by
``federated.dp``) all train through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.imageset import ImageSet
from ..devices import autocast, model_device
from ..signals.summary import accuracy_by_snr
from .calibration import TemperatureFit, fit_temperature_central
from .config import TrainConfig

#: What an optimiser trains: tensors, or AdamW parameter groups (dicts with their own "lr").
Params = Sequence[nn.Parameter] | Sequence[dict]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, labels) -> loss
EVAL_BATCH = 512


def warmup_cosine(step: int, total: int, warm: int = 0) -> float:
    """The one learning-rate schedule: linear warm-up over ``warm`` steps, then cosine to 0.

    ``fit`` applies it per optimiser step; the federated clients per round (``step`` = the
    round - 1 of ``total`` rounds, no warm-up), so both decay the same way.
    """
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(params: Params, cfg: TrainConfig, total_steps: int):
    """AdamW and a LambdaLR: linear warm-up over ``cfg.warmup`` of the steps, then cosine to 0.

    ``params`` are tensors at ``cfg.lr``, or AdamW parameter groups with their own rates (the
    schedule scales each).
    """
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * total_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total_steps, warm))
    return opt, sched


@dataclass
class Tally:
    """Running sums of a pass: loss x records, correct predictions, records seen."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0

    def metrics(self) -> dict[str, float]:
        """Mean training loss and accuracy over the records seen so far."""
        seen = max(self.seen, 1)
        return {"train_loss": self.loss_sum / seen, "train_acc": self.correct / seen}


def shuffled_batches(
    n: int, batch_size: int, generator: torch.Generator, epochs: int = 1
) -> Iterator[torch.Tensor]:
    """Index batches of ``epochs`` passes, each in a fresh seeded random order (drawn lazily)."""
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def run_epoch(
    model: nn.Module,
    data: ImageSet,
    opt: torch.optim.Optimizer,
    batches: Iterable[torch.Tensor],
    loss_fn: LossFn,
    sched: torch.optim.lr_scheduler.LRScheduler | None = None,
    on_step: Callable[[int], None] | None = None,
    amp: bool = False,
) -> Tally:
    """One optimiser step per index batch of ``batches``; returns the tally of loss and accuracy.

    An empty batch is skipped but still clears the gradients. The loss is ``loss_fn``'s.
    ``amp``: the forward pass and loss under bfloat16 autocast (CUDA only, ``devices.autocast``).
    """
    model.train()
    tally = Tally()
    device = model_device(model)
    for index in batches:
        opt.zero_grad(set_to_none=True)
        if len(index) == 0:
            continue
        x, y = (t.to(device) for t in data.batch(index))
        with autocast(device, amp):
            logits = model(x)
            loss = loss_fn(logits, y)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        tally.loss_sum += loss.item() * len(y)
        tally.correct += int((logits.argmax(1) == y).sum())
        tally.seen += len(y)
        if on_step:
            on_step(len(y))
    return tally


@torch.no_grad()
def predict(model: nn.Module, data: ImageSet, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Logits (N, K) in eval mode, on the CPU whatever device the model is on."""
    model.eval()
    device = model_device(model)
    out = [
        model(data.batch(torch.arange(s, min(s + batch_size, len(data))))[0].to(device)).cpu()
        for s in range(0, len(data), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, len(data.class_names))


def fit_temperature_on(model: nn.Module, data: ImageSet) -> TemperatureFit:
    """Temperature scaling (Guo et al., 2017) on ``model``'s logits of a validation set."""
    return fit_temperature_central(predict(model, data).double().numpy(), data.labels.numpy())


@dataclass(frozen=True)
class Evaluation:
    """Accuracy overall, at SNR >= 10 dB, and per SNR bin, with the loss."""

    loss: float
    accuracy: float
    accuracy_high_snr: float  # SNR >= 10 dB: where a good classifier should be near-perfect
    snr_labels: tuple[str, ...]
    snr_accuracy: tuple[float, ...]
    snr_counts: tuple[int, ...]

    def as_dict(self, prefix: str) -> dict[str, object]:
        """The evaluation as metrics-row keys ``<prefix>_loss``, ``<prefix>_acc`` and so on."""
        return {
            f"{prefix}_loss": self.loss,
            f"{prefix}_acc": self.accuracy,
            f"{prefix}_acc_snr_ge_10": self.accuracy_high_snr,
            f"{prefix}_acc_by_snr": dict(zip(self.snr_labels, self.snr_accuracy)),
        }


def evaluate_logits(logits: torch.Tensor, data: ImageSet) -> Evaluation:
    """Score logits against an ImageSet: overall, SNR >= 10 dB, and per 5-dB SNR bin."""
    labels = data.labels
    loss = F.cross_entropy(logits, labels).item() if len(labels) else float("nan")
    hit = (logits.argmax(1) == labels).numpy()
    snr = data.snr_db.numpy().astype(np.float64)
    bins = accuracy_by_snr(hit, snr, width=5.0)
    high = snr >= 10.0
    return Evaluation(
        loss=loss,
        accuracy=float(hit.mean()) if hit.size else float("nan"),
        accuracy_high_snr=float(hit[high].mean()) if high.any() else float("nan"),
        snr_labels=bins.labels,
        snr_accuracy=bins.accuracy,
        snr_counts=bins.counts,
    )


def fit(
    model: nn.Module,
    params: Params,
    train: ImageSet,
    val: ImageSet,
    cfg: TrainConfig,
    on_epoch: Callable[[dict[str, object]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[dict[str, object]]:
    """Train ``params`` of ``model`` for ``cfg.epochs``; returns one metrics row per epoch."""
    steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    opt, sched = make_optimizer(params, cfg, steps)
    generator = torch.Generator().manual_seed(cfg.seed)

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)

    history = []
    for epoch in range(1, cfg.epochs + 1):
        row: dict[str, object] = {"epoch": epoch, "lr": sched.get_last_lr()[0]}
        batches = shuffled_batches(len(train), cfg.batch_size, generator)
        tally = run_epoch(model, train, opt, batches, loss_fn, sched, on_step, cfg.amp)
        row.update(tally.metrics())
        row.update(evaluate_logits(predict(model, val), val).as_dict("val"))
        history.append(row)
        if on_epoch:
            on_epoch(row)
    return history


def init_batches(data: ImageSet, n: int, batch_size: int, seed: int):
    """The first ``n`` samples of a seeded order, in batches (the LoRA-SB gradient estimate)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    for start in range(0, len(order), batch_size):
        yield data.batch(order[start : start + batch_size])
