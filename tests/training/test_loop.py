"""The training loop on a toy model: schedule, evaluation by SNR, learning a separable task."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fedsb.data.imageset import ImageSet
from fedsb.training.config import TrainConfig
from fedsb.training.loop import evaluate, fit, make_optimizer, predict


def toy_set(n: int, seed: int) -> ImageSet:
    """Two classes: a bright top half (0) or a bright bottom half (1), SNRs on a 5-dB grid."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.randint(0, 60, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    images[labels == 0, :, :4] += 150
    images[labels == 1, :, 4:] += 150
    snr = torch.tensor([-10.0, -5.0, 0.0, 5.0, 10.0, 15.0])[torch.arange(n) % 6]
    return ImageSet(images, labels, snr, ("top", "bottom"))


def test_schedule_warms_up_then_decays_to_zero():
    p = nn.Parameter(torch.zeros(1))
    cfg = TrainConfig(lr=1.0, warmup=0.1)
    opt, sched = make_optimizer([p], cfg, total_steps=100)
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert max(lrs) == pytest.approx(1.0) and lrs[-1] < 0.01
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # monotone cosine decay


def test_evaluate_bins_by_snr_and_reports_high_snr_accuracy():
    data = toy_set(12, 0)
    logits = torch.zeros(12, 2)
    logits[torch.arange(12), data.labels] = 1.0  # all right...
    logits[0] = torch.tensor([0.0, 0.0]) + torch.eye(2)[1 - data.labels[0]]  # ...but record 0
    ev = evaluate(logits, data)
    assert ev.accuracy == pytest.approx(11 / 12)
    assert ev.snr_labels == ("-10", "-5", "0", "5", "10", "15")
    assert ev.snr_counts == (2, 2, 2, 2, 2, 2)
    assert ev.snr_accuracy[0] == pytest.approx(0.5) and ev.snr_accuracy[1] == 1.0
    assert ev.accuracy_high_snr == 1.0
    assert math.isfinite(ev.loss)


def test_fit_learns_a_separable_task_and_is_reproducible():
    train, val = toy_set(256, 1), toy_set(64, 2)

    def run() -> tuple[list, torch.Tensor]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
        cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=3)
        rows = []
        history = fit(model, list(model.parameters()), train, val, cfg, on_epoch=rows.append)
        assert rows == history
        return history, predict(model, val)

    history, logits = run()
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["val_acc"] == 1.0 and history[-1]["train_loss"] < history[0]["train_loss"]
    again, logits_again = run()
    assert torch.equal(logits, logits_again)  # same seeds, same numbers
