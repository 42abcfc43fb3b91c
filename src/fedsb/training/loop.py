"""The training loop: plain functions over a model and ImageSets (no engine, no globals).

``fit`` = epochs of ``train_epoch`` with a per-step warm-up + cosine learning rate, an
evaluation on the validation split after every epoch, and a callback per epoch. The federated
client update will call ``train_epoch`` on its own shard with the same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.imageset import ImageSet
from ..signals.summary import snr_bins
from .config import TrainConfig

EVAL_BATCH = 512


def make_optimizer(params: Sequence[nn.Parameter], cfg: TrainConfig, total_steps: int):
    """AdamW and a LambdaLR: linear warm-up over ``cfg.warmup`` of the steps, then cosine to 0."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train_epoch(
    model: nn.Module,
    data: ImageSet,
    opt: torch.optim.Optimizer,
    sched,
    cfg: TrainConfig,
    generator: torch.Generator,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """One pass over ``data`` in a seeded random order; returns mean loss and accuracy."""
    model.train()
    order = torch.randperm(len(data), generator=generator)
    total_loss, correct = 0.0, 0
    for start in range(0, len(data), cfg.batch_size):
        index = order[start : start + cfg.batch_size]
        x, y = data.batch(index)
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total_loss += loss.item() * len(index)
        correct += (logits.argmax(1) == y).sum().item()
        if on_step:
            on_step(len(index))
    return {"train_loss": total_loss / len(data), "train_acc": correct / len(data)}


@torch.no_grad()
def predict(model: nn.Module, data: ImageSet, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Logits (N, K) in eval mode."""
    model.eval()
    out = [
        model(data.batch(torch.arange(s, min(s + batch_size, len(data))))[0])
        for s in range(0, len(data), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, len(data.class_names))


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
        return {
            f"{prefix}_loss": self.loss,
            f"{prefix}_acc": self.accuracy,
            f"{prefix}_acc_snr_ge_10": self.accuracy_high_snr,
            f"{prefix}_acc_by_snr": dict(zip(self.snr_labels, self.snr_accuracy)),
        }


def evaluate(logits: torch.Tensor, data: ImageSet) -> Evaluation:
    """Score logits against an ImageSet: overall, SNR >= 10 dB, and per 5-dB SNR bin."""
    labels = data.labels
    loss = F.cross_entropy(logits, labels).item() if len(labels) else float("nan")
    hit = (logits.argmax(1) == labels).numpy()
    snr = data.snr_db.numpy().astype(np.float64)
    edges, names = snr_bins(snr, width=5.0)
    accs, counts = [], []
    for j in range(len(names)):
        inside = (snr >= edges[j]) & (
            (snr < edges[j + 1]) if j < len(names) - 1 else (snr <= edges[j + 1])
        )
        counts.append(int(inside.sum()))
        accs.append(float(hit[inside].mean()) if inside.any() else float("nan"))
    high = snr >= 10.0
    return Evaluation(
        loss=loss,
        accuracy=float(hit.mean()) if hit.size else float("nan"),
        accuracy_high_snr=float(hit[high].mean()) if high.any() else float("nan"),
        snr_labels=tuple(names),
        snr_accuracy=tuple(accs),
        snr_counts=tuple(counts),
    )


def fit(
    model: nn.Module,
    params: Sequence[nn.Parameter],
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
    history = []
    for epoch in range(1, cfg.epochs + 1):
        row: dict[str, object] = {"epoch": epoch, "lr": sched.get_last_lr()[0]}
        row.update(train_epoch(model, train, opt, sched, cfg, generator, on_step))
        row.update(evaluate(predict(model, val), val).as_dict("val"))
        history.append(row)
        if on_epoch:
            on_epoch(row)
    return history


def init_batches(data: ImageSet, n: int, batch_size: int, seed: int):
    """The first ``n`` samples of a seeded order, in batches (the LoRA-SB gradient estimate)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    for start in range(0, len(order), batch_size):
        yield data.batch(order[start : start + batch_size])
