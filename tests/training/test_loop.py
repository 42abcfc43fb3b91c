"""The training loop on a toy model: schedule, evaluation by SNR, learning a separable task."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedsb.data.imageset import ImageSet
from fedsb.training.config import TrainConfig
from fedsb.training.loop import (
    evaluate_logits,
    fit,
    make_optimizer,
    predict,
    run_epoch,
    shuffled_batches,
)


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
    ev = evaluate_logits(logits, data)
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


def test_shuffled_batches_cover_every_record_once_per_epoch():
    batches = list(shuffled_batches(10, 4, torch.Generator().manual_seed(7), epochs=2))
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    g = torch.Generator().manual_seed(7)  # the same draws as two plain randperms
    want = [torch.randperm(10, generator=g), torch.randperm(10, generator=g)]
    assert torch.equal(torch.cat(batches[:3]), want[0]) and torch.equal(
        torch.cat(batches[3:]), want[1]
    )
    assert not torch.equal(want[0], want[1])


def test_run_epoch_is_plain_minibatch_sgd():
    """Against a hand-written loop: the same batches, one SGD step each, the scheduler stepped
    once per batch, the loss and accuracy tallied per record, on_step told each batch size."""
    data = toy_set(40, 3)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    weight, bias = (p.detach().clone() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (step + 1))
    batches = list(shuffled_batches(len(data), 16, torch.Generator().manual_seed(2)))
    steps: list[int] = []
    tally = run_epoch(
        model, data, opt, batches, lambda z, y: F.cross_entropy(z, y), sched, steps.append
    )
    loss_sum, correct = 0.0, 0
    for k, index in enumerate(batches):
        x, y = data.batch(index)
        w, b = weight.requires_grad_(), bias.requires_grad_()
        logits = x.flatten(1) @ w.T + b
        loss = F.cross_entropy(logits, y)
        gw, gb = torch.autograd.grad(loss, (w, b))
        weight, bias = w.detach() - 0.1 / (k + 1) * gw, b.detach() - 0.1 / (k + 1) * gb
        loss_sum += float(loss.detach()) * len(y)
        correct += int((logits.argmax(1) == y).sum())
    assert torch.allclose(model[1].weight, weight, atol=1e-6)
    assert torch.allclose(model[1].bias, bias, atol=1e-6)
    assert steps == [16, 16, 8] and sched.last_epoch == 3
    assert (tally.seen, tally.correct) == (40, correct)
    assert tally.loss_sum == pytest.approx(loss_sum, rel=1e-5)
    assert tally.metrics() == {"train_loss": tally.loss_sum / 40, "train_acc": correct / 40}


def test_run_epoch_skips_an_empty_batch_but_clears_the_gradients():
    """A Poisson batch may be empty: no step, nothing tallied, no stale gradient left over."""
    data = toy_set(8, 4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    empty = torch.zeros(0, dtype=torch.long)
    tally = run_epoch(model, data, opt, [empty], lambda z, y: F.cross_entropy(z, y))
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    assert tally.seen == 0 and tally.metrics() == {"train_loss": 0.0, "train_acc": 0.0}
