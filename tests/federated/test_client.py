"""The client update: what it trains, what it returns, its seeding and its learning rate."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from fedsb.federated.client import client_init_gradients, client_seed, client_update, round_lr
from fedsb.models.adapters import adapter_state

from .conftest import fedsb_task


@pytest.fixture(scope="module")
def task(workspace):
    return fedsb_task(workspace)


def _full_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_only_trained_tensors_change(task):
    t, cfg, glob = task
    before = _full_state(t.model)
    trained = set(glob)
    state, metrics = client_update(t.model, glob, t.units[0], cfg, 1, seed=7)
    after = _full_state(t.model)
    assert set(state) == set(adapter_state(t.model)) == trained
    assert all(k.endswith("lora_R.weight") or k.startswith("head.") for k in state)
    frozen = [k for k in before if k not in trained]
    assert any(k.endswith("lora_A.weight") for k in frozen)  # B and A are there, and frozen
    for k in frozen:
        assert torch.equal(before[k], after[k]), k
    for k in trained:
        assert state[k].dtype == glob[k].dtype and state[k].shape == glob[k].shape
        assert not torch.equal(state[k], glob[k]), k  # every trained tensor moved
        assert torch.equal(state[k], after[k])
    assert metrics["num-examples"] == len(t.units[0])
    assert metrics["lr"] == round_lr(cfg, 1)
    assert 0.0 <= metrics["train_acc"] <= 1.0 and metrics["train_loss"] > 0


def test_global_state_is_not_modified(task):
    t, cfg, glob = task
    copy = {k: v.clone() for k, v in glob.items()}
    client_update(t.model, glob, t.units[1], cfg, 1, seed=3)
    assert all(torch.equal(copy[k], glob[k]) for k in glob)


def test_same_seed_same_state_other_seed_other_state(task):
    t, cfg, glob = task
    a, _ = client_update(t.model, glob, t.units[0], cfg, 1, seed=11)
    b, _ = client_update(t.model, glob, t.units[0], cfg, 1, seed=11)
    c, _ = client_update(t.model, glob, t.units[0], cfg, 1, seed=12)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_nothing_carries_over_between_clients_on_one_model(task):
    t, cfg, glob = task
    alone, m_alone = client_update(t.model, glob, t.units[2], cfg, 2, seed=5)
    # client 0 trains on the same model object first, from another global state
    other = {k: v + 0.05 for k, v in glob.items()}
    client_update(t.model, other, t.units[0], cfg, 1, seed=9)
    after, m_after = client_update(t.model, glob, t.units[2], cfg, 2, seed=5)
    assert all(torch.equal(alone[k], after[k]) for k in alone)
    assert m_alone["train_loss"] == m_after["train_loss"]


def test_round_lr_is_a_cosine_over_the_rounds(workspace):
    cfg = workspace.config("rounds=4", "client.lr=0.01", "client.full_lr=0.002")
    got = [round_lr(cfg, r) for r in range(1, 5)]
    want = [0.01 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert got == pytest.approx(want, rel=1e-12)
    assert got == pytest.approx([0.01, 0.0085355339, 0.005, 0.0014644661])
    fedavg = workspace.config("rounds=4", "client.full_lr=0.002", "method='fedavg'")
    assert round_lr(fedavg, 1) == 0.002 and round_lr(fedavg, 3) == pytest.approx(0.001)


def test_client_seed_is_a_function_of_run_round_and_client():
    seeds = {client_seed(0, r, c) for r in range(1, 30) for c in range(50)}
    assert len(seeds) == 29 * 50
    assert client_seed(3, 2, 1) == client_seed(3, 2, 1)
    assert client_seed(3, 2, 1) != client_seed(4, 2, 1)
    assert all(0 <= s < 2**63 - 1 for s in seeds)


def test_init_gradients_are_seeded_and_shaped_like_the_base_weights(task):
    t, cfg, _ = task
    a = client_init_gradients(t.model, t.units[0], 20, 8, seed=1)
    b = client_init_gradients(t.model, t.units[0], 20, 8, seed=1)
    c = client_init_gradients(t.model, t.units[0], 20, 8, seed=2)
    params = dict(t.model.named_parameters())
    assert set(a) and all(params[f"{k}.base_layer.weight"].shape == v.shape for k, v in a.items())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize(
    "method, adapter_rate", [("fedsb", 1e-2), ("fedit", 3e-3), ("ffa", 3e-3), ("fedavg", 2e-3)]
)
def test_the_head_and_the_adapters_take_their_own_rates(workspace, method, adapter_rate):
    """LoRA factors diverge at fedsb's rate and full weights need a smaller one; the head takes
    client.lr in every method, so methods differ only in what the adapters do."""
    from fedsb.federated.client import param_groups
    from fedsb.federated.task import adapted_model
    from fedsb.reporter import SilentReporter
    from fedsb.training.pretrain import resolve_pretrained

    cfg = workspace.config(f"method='{method}'", "client.lora_lr=0.003", "client.full_lr=0.002")
    model, _ = adapted_model(cfg, resolve_pretrained(cfg.pretrained, None, SilentReporter()))
    groups = param_groups(model, cfg, 1)
    trained = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trained
    head = {id(p) for p in model.head.parameters()}
    (adapters,) = [g for g in groups if {id(p) for p in g["params"]}.isdisjoint(head)]
    (head_group,) = [g for g in groups if {id(p) for p in g["params"]} == head]
    assert adapters["lr"] == pytest.approx(adapter_rate)
    assert head_group["lr"] == pytest.approx(1e-2)
    apart = replace(cfg, client=replace(cfg.client, head_lr=4e-3))  # fedsb's R tuned apart
    rates = {id(g["params"][0]) in head: g["lr"] for g in param_groups(model, apart, 1)}
    assert rates == {False: pytest.approx(adapter_rate), True: 4e-3}


def test_log_prior_is_the_smoothed_class_share():
    from fedsb.federated.client import log_prior

    got = log_prior(torch.tensor([0, 0, 0, 2]), 4)  # counts 3, 0, 1, 0 -> +1 each over 8
    assert torch.allclose(got, torch.tensor([4 / 8, 1 / 8, 2 / 8, 1 / 8]).log())


def test_logit_adjustment_trains_on_shifted_logits(task):
    """tau * log(prior) is added to the logits: the loss equals cross-entropy of the shifted
    logits, and the classes a client barely holds are pushed down less than by plain CE."""
    from dataclasses import replace

    from fedsb.federated.client import local_loss, log_prior

    t, cfg, glob = task
    logits, y = torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), torch.arange(5) % 4
    shift = 0.7 * log_prior(y, 4)
    want = torch.nn.functional.cross_entropy(logits + shift, y)
    assert torch.allclose(local_loss(logits, y, cfg, shift), want)
    assert torch.equal(
        local_loss(logits, y, cfg, None), torch.nn.functional.cross_entropy(logits, y)
    )

    data = t.units[0]
    counts = torch.bincount(data.labels, minlength=len(data.class_names))
    rare = counts.argmin()  # the class this client holds least of
    x, y = data.batch(torch.arange(len(data)))
    shift = log_prior(data.labels, len(data.class_names))
    push = {}
    for name, s in (("plain", None), ("adjusted", shift)):
        z = torch.zeros(len(y), len(data.class_names), requires_grad=True)
        local_loss(z, y, cfg, s).backward()
        push[name] = float(z.grad[:, rare].sum())  # > 0: the loss pushes the rare logit down
    assert 0 < push["adjusted"] < 0.1 * push["plain"], (counts.tolist(), push)
    la = replace(cfg, client=replace(cfg.client, logit_adjust=1.0))
    a, _ = client_update(t.model, glob, data, la, 1, seed=5)
    b, _ = client_update(t.model, glob, data, cfg, 1, seed=5)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_proximal_term_keeps_the_update_near_the_global_state(task):
    from dataclasses import replace

    from fedsb.federated.aggregate import update_norm
    from fedsb.federated.client import proximal

    a, b = [torch.ones(2, 2)], [torch.zeros(2, 2)]
    assert float(proximal(a, b, 0.5)) == pytest.approx(0.5 * 0.5 * 4)
    t, cfg, glob = task
    far = {}
    for mu in (0.0, 100.0):
        prox = replace(cfg, client=replace(cfg.client, prox_mu=mu))
        state, _ = client_update(t.model, glob, t.units[0], prox, 1, seed=5)
        far[mu] = update_norm(state, glob)
    assert far[100.0] < 0.7 * far[0.0], far


def test_prox_mu_and_logit_adjust_with_dp_are_refused(workspace):
    from fedsb.errors import ConfigError

    with pytest.raises(ConfigError, match="prox_mu cannot be combined with dp"):
        workspace.config("client.prox_mu=0.1", "dp.epsilon=1.0")
    with pytest.raises(ConfigError, match="logit_adjust cannot be combined with dp"):
        workspace.config("client.logit_adjust=1.0", "dp.epsilon=1.0")


def test_an_adapted_head_trains_at_the_adapter_rate(workspace):
    from fedsb.federated.client import param_groups
    from fedsb.federated.task import adapted_model
    from fedsb.reporter import SilentReporter
    from fedsb.training.pretrain import resolve_pretrained

    cfg = workspace.config("method='fedit'", "adapter.head='adapt'", "client.lora_lr=0.003")
    model, _ = adapted_model(cfg, resolve_pretrained(cfg.pretrained, None, SilentReporter()))
    (group,) = param_groups(model, cfg, 1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in group["params"]} >= {"head.lora_A.weight", "head.lora_B.weight"}
    assert group["lr"] == pytest.approx(3e-3)


def test_sgd_client_takes_a_plain_gradient_step(task):
    """One batch, one epoch: the SGD client's update is exactly -lr * the batch gradient."""
    from dataclasses import replace

    import torch.nn.functional as F

    from fedsb.models.adapters import load_adapter_state

    t, cfg, glob = task
    cfg = replace(cfg, client=replace(cfg.client, optimizer="sgd", batch_size=8, lr=0.05))
    data = t.units[0].subset(torch.arange(8))
    state, _ = client_update(t.model, glob, data, cfg, 1, seed=3)
    load_adapter_state(t.model, glob)
    x, y = data.batch(torch.arange(8))
    t.model.zero_grad()
    F.cross_entropy(t.model(x), y).backward()
    params = dict(t.model.named_parameters())
    for k in glob:
        want = glob[k] - round_lr(cfg, 1) * params[k].grad
        assert torch.allclose(state[k], want, atol=1e-6), k
    t.model.zero_grad()
    with pytest.raises(ValueError, match="optimizer 'adam' is not adamw or sgd"):
        replace(cfg.client, optimizer="adam")
