"""Sample-level DP-SGD on a client's trained tensors (Opacus), and the privacy accounting.

Each client trains with Poisson-sampled batches (rate q = batch_size / n), per-sample gradients
clipped to ``clip`` and Gaussian noise of std ``sigma * clip`` (Opacus ``GradSampleModule`` +
``DPOptimizer``, made by ``private`` around the model and optimiser the training loop then
runs as usual, on ``poisson_batches``). sigma is chosen so that a client taking part in *every*
round reaches the target epsilon after the last one; a client sampled less often ends below it.
The accountant of client i is a pure function of (sigma_i, q_i, steps taken so far), so the
server can report each client's epsilon after every round without holding any client state, and
a resumed run gets the same numbers.

Only R (and the head) train under fedsb, so noise enters the update linearly: B (R + xi) A =
B R A + B xi A (Fed-SB). The LoRA-SB init gradient is computed without DP, as in the reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import torch
from torch import nn

from .config import DPConfig


def sample_rate(batch_size: int, n: int) -> float:
    """Poisson sampling rate q: ``batch_size`` records expected of ``n``, at most 1."""
    return min(1.0, batch_size / max(n, 1))


def steps_per_round(batch_size: int, n: int, local_epochs: int) -> int:
    """Poisson steps per round: one expected pass over the data per local epoch."""
    return local_epochs * max(1, math.ceil(n / batch_size))


@lru_cache(maxsize=1024)
def noise_multiplier(dp: DPConfig, q: float, total_steps: int) -> float:
    """Sigma that reaches ``dp.epsilon`` at ``dp.delta`` after ``total_steps`` steps at rate q."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(
        get_noise_multiplier(
            target_epsilon=dp.epsilon,
            target_delta=dp.delta,
            sample_rate=q,
            steps=total_steps,
            accountant=dp.accountant,
        )
    )


def epsilon(dp: DPConfig, sigma: float, q: float, steps: int) -> float:
    """The epsilon a client has spent after ``steps`` DP-SGD steps (0 before any)."""
    if steps <= 0:
        return 0.0
    from opacus.accountants import create_accountant

    accountant = create_accountant(dp.accountant)
    accountant.history = [(sigma, q, steps)]
    return float(accountant.get_epsilon(delta=dp.delta))


def poisson_batches(
    n: int, q: float, steps: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """``steps`` Poisson-sampled index batches: each record is in a batch with probability q.

    A batch may be empty; the step still counts for the accountant.
    """
    for _ in range(steps):
        yield torch.nonzero(torch.rand(n, generator=generator) < q).flatten()


@contextmanager
def private(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sigma: float,
    clip: float,
    q: float,
    n: int,
    generator: torch.Generator,
) -> Iterator[tuple[nn.Module, torch.optim.Optimizer]]:
    """The model with per-sample gradients and an optimiser that clips them and adds noise.

    The noise is seeded; both serve the same training loop; afterwards the model is plain again.
    """
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    gsm = GradSampleModule(model)
    dp_opt = DPOptimizer(
        opt,
        noise_multiplier=sigma,
        max_grad_norm=clip,
        expected_batch_size=max(1, round(q * n)),  # = min(batch_size, n): Opacus averages by it
        generator=generator,
    )
    try:
        yield gsm, dp_opt
    finally:
        dp_opt.zero_grad(set_to_none=True)
        gsm._close()  # remove hooks and grad_sample attributes
