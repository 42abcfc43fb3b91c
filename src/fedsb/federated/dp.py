"""Sample-level DP-SGD on a client's trained tensors (Opacus), and the privacy accounting.

Each client trains with Poisson-sampled batches (rate q = batch_size / n), per-sample gradients
clipped to ``clip`` and Gaussian noise of std ``sigma * clip`` (Opacus ``GradSampleModule`` +
``DPOptimizer``). sigma is chosen so that a client taking part in *every* round reaches the
target epsilon after the last one; a client sampled less often ends below it. The accountant of
client i is a pure function of (sigma_i, q_i, steps taken so far), so the server can report each
client's epsilon after every round without holding any client state, and a resumed run gets
the same numbers.

Only R (and the head) train under fedsb, so noise enters the update linearly: B (R + xi) A =
B R A + B xi A (Fed-SB). The LoRA-SB init gradient is computed without DP, as in the reference.
"""

from __future__ import annotations

import math
from functools import lru_cache

from .config import DPConfig


def sample_rate(batch_size: int, n: int) -> float:
    return min(1.0, batch_size / max(n, 1))


def steps_per_round(batch_size: int, n: int, local_epochs: int) -> int:
    """Poisson steps per round: one expected pass over the data per local epoch."""
    return local_epochs * max(1, math.ceil(n / batch_size))


@lru_cache(maxsize=1024)
def noise_multiplier(dp: DPConfig, q: float, total_steps: int) -> float:
    """sigma that reaches ``dp.epsilon`` at ``dp.delta`` after ``total_steps`` steps at rate q."""
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
