"""Temperature scaling: the fitted T minimises the validation NLL, federated equals central."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from fedsb.evaluation import metrics as m
from fedsb.training.calibration import (
    T_MAX,
    fit_temperature,
    fit_temperature_central,
    temperature_stats,
    total,
)


def _overconfident(n: int, true_t: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose calibrated temperature is ``true_t``: labels ~ softmax(z / true_t)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6)) * 4
    p = m.softmax(z, true_t)
    labels = (rng.random((n, 1)) > p.cumsum(1)).sum(1)
    return z, labels


def _mean_nll(z, y, t: float) -> float:
    return m.nll(m.softmax(z, t), y)


def test_stats_are_the_nll_and_its_derivatives_in_beta():
    z, y = _overconfident(500, 2.0, 0)
    beta, h = 0.7, 1e-5
    s = temperature_stats(z, y, beta)
    f = lambda b: temperature_stats(z, y, b).nll  # noqa: E731
    assert s.count == 500
    assert s.nll / 500 == pytest.approx(_mean_nll(z, y, 1 / beta), rel=1e-10)
    assert s.grad == pytest.approx((f(beta + h) - f(beta - h)) / (2 * h), rel=1e-6)
    g = lambda b: temperature_stats(z, y, b).grad  # noqa: E731
    assert s.hess == pytest.approx((g(beta + h) - g(beta - h)) / (2 * h), rel=1e-6)


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_matches_a_scalar_minimiser_and_recovers_the_true_temperature(true_t):
    z, y = _overconfident(20000, true_t, 1)
    fit = fit_temperature_central(z, y)
    ref = minimize_scalar(
        lambda log_t: _mean_nll(z, y, np.exp(log_t)),
        bounds=(-3, 3),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert fit.temperature == pytest.approx(np.exp(ref.x), rel=1e-4)
    assert fit.temperature == pytest.approx(true_t, rel=0.05)
    assert fit.nll_after <= fit.nll_before + 1e-12
    assert fit.steps <= 12


def test_scaling_lowers_ece_of_an_overconfident_model():
    z, y = _overconfident(5000, 3.0, 2)
    fit = fit_temperature_central(z, y)
    assert m.ece(m.softmax(z, fit.temperature), y) < 0.5 * m.ece(m.softmax(z), y)


def test_federated_fit_takes_the_steps_of_the_central_fit():
    """Clients send four sums per step; the server adds them: same iterates as on the union."""
    z, y = _overconfident(3000, 1.8, 3)
    clients = np.array_split(np.arange(3000), [400, 1900, 2100])
    sent = []

    def federated(beta: float):
        stats = [temperature_stats(z[i], y[i], beta) for i in clients]
        sent.extend(s.as_dict() for s in stats)
        return total(stats)

    fed = fit_temperature(federated)
    central = fit_temperature_central(z, y)
    assert fed.temperature == pytest.approx(central.temperature, rel=1e-12)
    assert [h[0] for h in fed.history] == pytest.approx([h[0] for h in central.history])
    assert all(set(s) == {"count", "nll", "grad", "hess"} for s in sent)
    assert len(sent) == 4 * fed.steps


def test_a_bound_is_returned_when_the_optimum_lies_beyond_it():
    z = np.array([[5.0, 0.0], [5.0, 0.0]])
    y = np.array([1, 1])  # always confidently wrong: the flatter the better
    assert fit_temperature_central(z, y).temperature == pytest.approx(T_MAX, rel=1e-6)


def test_empty_validation_set_is_an_error():
    with pytest.raises(ValueError, match="at least one validation example"):
        fit_temperature_central(np.zeros((0, 3)), np.zeros(0, dtype=int))
