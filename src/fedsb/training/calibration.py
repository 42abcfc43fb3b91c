"""Temperature scaling (Guo et al., 2017), centrally or federated, by safeguarded Newton.

With β = 1/T the validation NLL f(β) = mean_i [logsumexp(β z_i) − β z_{i,y_i}] is convex:
f'(β) = mean_i (E_p[z_i] − z_{i,y_i}) and f''(β) = mean_i Var_p(z_i) ≥ 0, p = softmax(β z_i).
So the minimiser is the root of f', found by Newton steps kept inside a bracket (bisection when a
step leaves it). Each step needs only the three sums (n, Σf, Σf', Σf'') at the current β: a
client computes them on its own validation logits, the server adds them up and takes the step.
Clients never send logits or labels, and the federated fit takes exactly the steps of the
central fit on the union of the validation sets (a test checks this).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

#: The temperature is searched in [T_MIN, T_MAX].
T_MIN, T_MAX = 0.05, 20.0


@dataclass(frozen=True)
class TemperatureStats:
    """Sums over one client's validation set at one β: what it sends per calibration step."""

    count: float
    nll: float  # Σ f_i
    grad: float  # Σ f_i'
    hess: float  # Σ f_i''

    def __add__(self, other: TemperatureStats) -> TemperatureStats:
        return TemperatureStats(
            self.count + other.count,
            self.nll + other.nll,
            self.grad + other.grad,
            self.hess + other.hess,
        )

    def as_dict(self) -> dict[str, float]:
        """The four sums as a dict keyed by field name."""
        return {"count": self.count, "nll": self.nll, "grad": self.grad, "hess": self.hess}


def total(stats: Iterable[TemperatureStats]) -> TemperatureStats:
    """Sum of several clients' statistics at one β (all zero when there are none)."""
    out = TemperatureStats(0.0, 0.0, 0.0, 0.0)
    for s in stats:
        out = out + s
    return out


def temperature_stats(logits, labels, beta: float) -> TemperatureStats:
    """(n, Σ NLL, Σ dNLL/dβ, Σ d²NLL/dβ²) of softmax(β·logits) against labels."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or y.shape != (z.shape[0],):
        raise ValueError(f"logits must be (N, K) and labels (N,), got {z.shape} and {y.shape}")
    if not y.size:
        return TemperatureStats(0.0, 0.0, 0.0, 0.0)
    bz = beta * z
    top = bz.max(1, keepdims=True)
    e = np.exp(bz - top)
    sums = e.sum(1)
    p = e / sums[:, None]
    zy = z[np.arange(y.size), y]
    lse = top[:, 0] + np.log(sums)
    mean_z = (p * z).sum(1)
    var_z = np.maximum((p * z * z).sum(1) - mean_z**2, 0.0)
    return TemperatureStats(
        float(y.size),
        float(np.sum(lse - beta * zy)),
        float(np.sum(mean_z - zy)),
        float(var_z.sum()),
    )


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature with the steps used, mean NLL before and after, and its history."""

    temperature: float
    steps: int  # statistics rounds used (one per evaluated β)
    nll_before: float  # mean validation NLL at T = 1
    nll_after: float  # at the fitted T
    history: tuple[tuple[float, float], ...]  # (T, mean NLL) per step

    def as_dict(self) -> dict:
        """The fit as JSON-ready fields (``history`` as [T, NLL] pairs)."""
        return {
            "temperature": self.temperature,
            "steps": self.steps,
            "nll_before": self.nll_before,
            "nll_after": self.nll_after,
            "history": [list(h) for h in self.history],
        }


def fit_temperature(
    stats_at: Callable[[float], TemperatureStats], max_steps: int = 30, tol: float = 1e-7
) -> TemperatureFit:
    """Minimise the validation NLL over T ∈ [T_MIN, T_MAX].

    ``stats_at(β)`` returns the summed statistics at β (a local computation, or one federated
    round).
    """
    lo, hi = 1.0 / T_MAX, 1.0 / T_MIN  # bracket in β
    beta, history = 1.0, []
    first = None
    for _ in range(max_steps):
        s = stats_at(beta)
        if s.count <= 0:
            raise ValueError("temperature scaling needs at least one validation example")
        history.append((1.0 / beta, s.nll / s.count))
        first = first if first is not None else s.nll / s.count
        g, h = s.grad / s.count, s.hess / s.count
        if g > 0:
            hi = beta  # NLL increases with β: the minimum is at a smaller β
        else:
            lo = beta
        newton = beta - g / h if h > 1e-12 else math.nan
        nxt = newton if lo < newton < hi else math.sqrt(lo * hi)
        if abs(nxt - beta) <= tol * beta or hi - lo <= tol * beta:
            beta = nxt
            break
        beta = nxt
    beta = min(max(beta, 1.0 / T_MAX), 1.0 / T_MIN)
    final = stats_at(beta)
    history.append((1.0 / beta, final.nll / final.count))
    return TemperatureFit(1.0 / beta, len(history), first, final.nll / final.count, tuple(history))


def fit_temperature_central(logits, labels, **kw) -> TemperatureFit:
    """Temperature scaling on one validation set of logits."""
    return fit_temperature(lambda b: temperature_stats(logits, labels, b), **kw)
