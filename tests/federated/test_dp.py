"""Sample-level DP-SGD on the client and the privacy accounting of a run."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from fedsb.errors import ConfigError
from fedsb.federated import dp as dpacc
from fedsb.federated.client import client_update
from fedsb.federated.config import DPConfig

from .conftest import fedsb_task, read_rows

# The accountant's search for sigma takes ~2 s at a rate below 1 (noise_multiplier is cached),
# so the tests below share one: the small run's 60 records, batch 16, 4 steps x 3 rounds.
TARGET, Q, STEPS = 3.0, 16 / 60, 12


@pytest.fixture(scope="module")
def task(workspace):
    return fedsb_task(workspace)


def _distance(a, b) -> float:
    return sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in a) ** 0.5


def test_dp_noise_is_really_added(task):
    """Full-batch steps (batch_size >= n, so Poisson rate 1): every seed sees the same data in
    every step, so without DP two seeds end (up to float summation order) at the same state;
    with DP they differ by as much as the update itself."""
    t, cfg, glob = task
    data = t.units[0]
    plain = replace(cfg, client=replace(cfg.client, batch_size=len(data) + 4, local_epochs=3))
    private = replace(plain, dp=DPConfig(epsilon=8.0))
    runs = {}
    for name, c in (("plain", plain), ("dp", private)):
        runs[name] = [client_update(t.model, glob, data, c, 1, seed=s) for s in (1, 2, 1)]
    (p1, _), (p2, _), _ = runs["plain"]
    (d1, m1), (d2, _), (d1_again, _) = runs["dp"]
    assert m1["dp_sample_rate"] == 1.0 and m1["dp_steps"] == 3 and m1["dp_sigma"] > 0.5
    update = _distance(d1, glob)
    assert _distance(p1, p2) < 1e-4 * update  # same data, no noise: the same state
    assert _distance(d1, d2) > 0.2 * update  # the noise moves the state
    assert _distance(d1, d1_again) == 0.0  # the noise is seeded
    for k in glob:
        assert torch.isfinite(d1[k]).all() and d1[k].dtype == glob[k].dtype


def test_model_is_plain_again_after_a_private_update(task):
    t, cfg, glob = task
    before, _ = client_update(t.model, glob, t.units[1], cfg, 1, seed=4)
    private = replace(cfg, rounds=3, dp=DPConfig(epsilon=TARGET))
    _, metrics = client_update(t.model, glob, t.units[1], private, 1, seed=4)
    assert metrics["dp_sample_rate"] == pytest.approx(Q) and metrics["dp_steps"] == STEPS // 3
    assert not any(hasattr(p, "grad_sample") for p in t.model.parameters())
    after, _ = client_update(t.model, glob, t.units[1], cfg, 1, seed=4)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_epsilon_grows_with_steps():
    dp = DPConfig(epsilon=4.0)
    eps = [dpacc.epsilon(dp, 1.0, 0.1, s) for s in (0, 1, 10, 100, 1000)]
    assert eps[0] == 0.0
    assert all(a < b for a, b in zip(eps, eps[1:]))


def test_noise_multiplier_is_larger_for_smaller_epsilon():
    sigmas = [dpacc.noise_multiplier(DPConfig(epsilon=e), 1.0, 6) for e in (0.5, 1.0, 4.0, 16.0)]
    assert all(a > b > 0 for a, b in zip(sigmas, sigmas[1:]))


@pytest.mark.parametrize(("target", "q", "steps"), [(TARGET, Q, STEPS), (8.0, 1.0, 6)])
def test_noise_multiplier_reaches_the_target_epsilon(target, q, steps):
    dp = DPConfig(epsilon=target)
    sigma = dpacc.noise_multiplier(dp, q, steps)
    spent = dpacc.epsilon(dp, sigma, q, steps)
    assert target - 0.05 <= spent <= target
    assert dpacc.epsilon(dp, sigma, q, steps // 2) < spent


def test_sample_rate_and_steps():
    assert dpacc.sample_rate(16, 60) == pytest.approx(16 / 60)
    assert dpacc.sample_rate(64, 60) == 1.0
    assert dpacc.steps_per_round(16, 60, 2) == 8  # ceil(60 / 16) = 4 per epoch
    assert dpacc.steps_per_round(64, 60, 3) == 3


def test_run_with_dp_reports_epsilon_per_round(workspace, tmp_path):
    target = TARGET
    result = workspace.run(tmp_path / "run", "rounds=3", f"dp.epsilon={target}")
    rows = read_rows(tmp_path / "run")
    rounds = [r for r in rows if r["stage"] == "round"]
    assert len(rounds) == 3
    eps = [r["dp_epsilon"] for r in rounds]
    assert all(a < b for a, b in zip(eps, eps[1:]))
    # every client takes part in every round: the last round spends the whole budget
    assert target - 0.05 <= eps[-1] <= target + 1e-6
    assert all(r["dp_sigma"] > 0 for r in rounds)
    assert 0.0 <= result.test.accuracy <= 1.0
    assert "dp_epsilon" not in rows[0]  # init row: nothing spent yet


def test_dp_is_refused_for_full_fine_tuning(workspace):
    with pytest.raises(ConfigError, match="dp: method 'fedavg' is not supported"):
        workspace.config("method='fedavg'", "dp.epsilon=1.0")


def test_poisson_batches_are_seeded_and_sample_each_record_at_rate_q():
    def draw(n, q, steps, seed):
        return list(dpacc.poisson_batches(n, q, steps, torch.Generator().manual_seed(seed)))

    a, b, c = draw(400, 0.25, 50, 3), draw(400, 0.25, 50, 3), draw(400, 0.25, 50, 4)
    assert len(a) == 50 and all(torch.equal(x, y) for x, y in zip(a, b))
    assert any(not torch.equal(x, y) for x, y in zip(a, c))
    assert all(bool((x.diff() > 0).all()) and x.max() < 400 for x in a)  # distinct records
    share = sum(len(x) for x in a) / (400 * 50)
    assert 0.24 < share < 0.26  # binomial: std 0.003
    assert any(len(x) == 0 for x in draw(4, 0.05, 20, 0))  # an empty batch can happen


def _linear_step(private: bool, clip: float) -> torch.Tensor:
    """One full-batch step (q = 1) of a linear model through the training loop."""
    import torch.nn.functional as F

    from fedsb.data.imageset import ImageSet
    from fedsb.training.loop import run_epoch

    g = torch.Generator().manual_seed(0)
    data = ImageSet(
        torch.randint(0, 255, (12, 1, 4, 4), generator=g, dtype=torch.uint8),
        torch.randint(0, 3, (12,), generator=g),
        torch.zeros(12),
        ("a", "b", "c"),
    )
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    start = model[1].weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    batches, loss = [torch.arange(12)], lambda z, y: F.cross_entropy(z, y)
    if not private:
        run_epoch(model, data, opt, batches, loss)
    else:
        with dpacc.private(model, opt, 0.0, clip, 1.0, 12, g) as (gsm, dp_opt):
            run_epoch(gsm, data, dp_opt, batches, loss)
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())
    return model[1].weight.detach() - start


def test_private_wraps_the_same_loop_clipping_per_sample_gradients():
    """Without noise and with a clip no gradient reaches, the private step is the plain one;
    with a small clip each record moves the weights by at most lr * clip / batch."""
    plain = _linear_step(private=False, clip=0.0)
    assert torch.allclose(_linear_step(private=True, clip=1e6), plain, atol=1e-6)
    clipped = _linear_step(private=True, clip=1e-3)
    assert float(clipped.norm()) <= 0.5 * 1e-3 + 1e-9 < float(plain.norm())
