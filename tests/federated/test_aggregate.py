"""Server-side pure functions: payloads, update checks, aggregation rules, server optimisers."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from scipy.stats import trim_mean
from torch import nn

from fedsb.federated.aggregate import (
    aggregate,
    check_update,
    deserialize,
    method_keys_ok,
    payload_bytes,
    serialize,
    server_step,
    update_agreement,
    update_norm,
)
from fedsb.models.adapters import (
    adapted_layers,
    adapter_state,
    apply_adapters,
    load_adapter_state,
)
from fedsb.models.config import AdapterConfig
from fedsb.models.lora_sb_init import init_lora_sb
from fedsb.models.state import AdapterStateError

R_KEY = "body.fc.lora_R.weight"


def _states(n: int, seed: int = 0, shape=(3, 4)) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        {R_KEY: torch.randn(shape, generator=g), "head.bias": torch.randn(5, generator=g)}
        for _ in range(n)
    ]


def _np_stack(states, key):
    return np.stack([s[key].double().numpy() for s in states])


# -- payloads ------------------------------------------------------------------------------


def test_serialize_roundtrip_and_payload_size():
    state = {
        "a.lora_R.weight": torch.randn(4, 4),
        "head.weight": torch.randn(3, 8, dtype=torch.float64),
        "step": torch.arange(5),
    }
    blob = serialize(state)
    back = deserialize(blob)
    assert set(back) == set(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v)
    assert payload_bytes(state) == len(blob)
    # safetensors layout: u64 header length, JSON header, then the raw tensor bytes
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_len])
    assert set(header) - {"__metadata__"} == set(state)
    data = sum(v.numel() * v.element_size() for v in state.values())
    assert len(blob) == 8 + header_len + data


def test_serialize_takes_non_contiguous_tensors():
    t = torch.randn(4, 6).t()
    assert torch.equal(deserialize(serialize({"x": t}))["x"], t)


# -- update checks -------------------------------------------------------------------------


def test_check_update_reasons():
    ref = {R_KEY: torch.zeros(3, 3), "head.bias": torch.zeros(2)}
    good = {R_KEY: torch.ones(3, 3), "head.bias": torch.ones(2)}
    assert check_update(good, ref) is None
    assert check_update(good, ref, norm_bound=100.0) is None
    assert check_update({**good, "x.lora_A.weight": torch.ones(1)}, ref) == (
        "update: unexpected keys 'x.lora_A.weight'"
    )
    missing = check_update({R_KEY: torch.ones(3, 3)}, ref)
    assert missing == "update: missing keys 'head.bias'"
    shape = check_update({**good, "head.bias": torch.ones(3)}, ref)
    assert shape == "update: key 'head.bias': shape (3,), expected (2,)"
    dtype = check_update({**good, "head.bias": torch.ones(2, dtype=torch.float64)}, ref)
    assert dtype == "update: key 'head.bias': dtype torch.float64, expected torch.float32"
    nan = good[R_KEY].clone()
    nan[0, 1] = float("nan")
    assert check_update({**good, R_KEY: nan}, ref) == (
        f"update: key '{R_KEY}': 1 NaN and 0 Inf values"
    )
    inf = torch.tensor([1.0, -float("inf")])
    assert check_update({**good, "head.bias": inf}, ref) == (
        "update: key 'head.bias': 0 NaN and 1 Inf values"
    )
    assert "not a tensor" in check_update({**good, "head.bias": [1.0, 1.0]}, ref)


def test_check_update_norm_bound():
    ref = {R_KEY: torch.zeros(2, 2), "head.bias": torch.ones(3)}
    upd = {R_KEY: torch.full((2, 2), 1.5), "head.bias": torch.ones(3)}  # distance 3
    assert update_norm(upd, ref) == pytest.approx(3.0)
    assert check_update(upd, ref, norm_bound=3.5) is None
    assert check_update(upd, ref, norm_bound=3.0) is None  # at the bound is allowed
    assert check_update(upd, ref, norm_bound=2.0) == "update norm 3 exceeds the bound 2"
    assert check_update(upd, ref, norm_bound=0.0) is None  # 0 = no bound


# -- aggregation rules ---------------------------------------------------------------------


def test_weighted_mean_by_hand():
    a = {R_KEY: torch.tensor([[1.0, 2.0], [3.0, 4.0]])}
    b = {R_KEY: torch.tensor([[5.0, 6.0], [7.0, 8.0]])}
    c = {R_KEY: torch.tensor([[0.0, 0.0], [0.0, 10.0]])}
    out = aggregate("fedsb", [a, b, c], [1, 3, 4])
    # (1*a + 3*b + 4*c) / 8
    expected = torch.tensor([[16 / 8, 20 / 8], [24 / 8, (4 + 24 + 40) / 8]])
    assert torch.allclose(out[R_KEY], expected, rtol=0, atol=1e-6)
    assert out[R_KEY].dtype == torch.float32
    equal = aggregate("fedsb", [a, b], [2.0, 2.0])[R_KEY]
    assert torch.equal(equal, torch.tensor([[3.0, 4.0], [5.0, 6.0]]))
    only_b = aggregate("fedsb", [a, b], [0.0, 7.0])[R_KEY]
    assert torch.equal(only_b, b[R_KEY])


@pytest.mark.parametrize("n", [1, 2, 4, 5])
def test_median_matches_numpy(n):
    states = _states(n, seed=n)
    out = aggregate("fedsb", states, [1.0] * n, rule="median")
    for key in states[0]:
        ref = np.median(_np_stack(states, key), axis=0)
        np.testing.assert_allclose(out[key].numpy(), ref, rtol=1e-6, atol=1e-7)
        assert out[key].dtype == states[0][key].dtype
    # unweighted: the weights do not matter
    other = aggregate("fedsb", states, list(range(1, n + 1)), rule="median")
    assert all(torch.equal(out[k], other[k]) for k in out)


@pytest.mark.parametrize(("n", "trim"), [(5, 0.2), (4, 0.2), (10, 0.25), (7, 0.4), (3, 0.0)])
def test_trimmed_mean_matches_scipy(n, trim):
    states = _states(n, seed=10 + n)
    out = aggregate("fedsb", states, [1.0] * n, rule="trimmed-mean", trim=trim)
    for key in states[0]:
        ref = trim_mean(_np_stack(states, key), trim, axis=0)
        np.testing.assert_allclose(out[key].numpy(), ref, rtol=1e-6, atol=1e-7)


def test_robust_rules_ignore_one_huge_client_while_mean_does_not():
    states = _states(5, seed=3)
    states[2] = {k: v * 100 for k, v in states[2].items()}
    honest = np.concatenate([_np_stack(states[:2] + states[3:], R_KEY)])
    lo, hi = honest.min(axis=0), honest.max(axis=0)
    for rule in ("median", "trimmed-mean"):
        out = aggregate("fedsb", states, [1.0] * 5, rule=rule)[R_KEY].numpy()
        assert np.all((out >= lo - 1e-6) & (out <= hi + 1e-6)), rule
    mean = aggregate("fedsb", states, [1.0] * 5)[R_KEY].numpy()
    assert np.abs(mean).max() > 3 * max(np.abs(lo).max(), np.abs(hi).max())


def test_unknown_rule_and_bad_weights():
    states = _states(2)
    with pytest.raises(ValueError, match="unknown aggregation rule 'mode'"):
        aggregate("fedsb", states, [1, 1], rule="mode")
    with pytest.raises(ValueError, match="2 states but 3 weights"):
        aggregate("fedsb", states, [1, 1, 1])
    with pytest.raises(ValueError, match="positive sum"):
        aggregate("fedsb", states, [0, 0])
    with pytest.raises(ValueError, match="positive sum"):
        aggregate("fedsb", states, [2, -1])
    with pytest.raises(ValueError, match="no client states"):
        aggregate("fedsb", [], [])


@pytest.mark.parametrize(
    ("method", "key"),
    [
        ("fedsb", "body.fc.lora_A.weight"),
        ("fedsb", "body.fc.lora_B.weight"),
        ("ffa", "body.fc.lora_A.weight"),
        ("fedit", "body.fc.lora_R.weight"),
        ("head-only", "body.fc.lora_R.weight"),
        ("centralized", "body.fc.weight"),
    ],
)
def test_a_method_may_not_send_other_keys(method, key):
    states = [{key: torch.ones(2, 2), "head.weight": torch.ones(2, 2)}] * 2
    with pytest.raises(AdapterStateError, match=f"{method}: clients may not send \\['{key}'\\]"):
        aggregate(method, states, [1, 1])


def test_allowed_keys_per_method():
    keys = ["l.lora_R.weight", "l.lora_A.weight", "l.lora_B.weight", "l.weight", "head.bias"]
    assert method_keys_ok("fedsb", keys) == ["l.lora_A.weight", "l.lora_B.weight", "l.weight"]
    assert method_keys_ok("fedit", keys) == ["l.lora_R.weight", "l.weight"]
    assert method_keys_ok("ffa", keys) == ["l.lora_R.weight", "l.lora_A.weight", "l.weight"]
    assert method_keys_ok("fedavg", keys) == []
    assert method_keys_ok("head-only", keys) == keys[:4]


def test_clients_with_other_keys_are_refused():
    a = {R_KEY: torch.ones(2, 2)}
    b = {"other.lora_R.weight": torch.ones(2, 2)}
    with pytest.raises(AdapterStateError, match="client state 1 has other keys"):
        aggregate("fedsb", [a, b], [1, 1])


# -- exactness: fedsb averages updates exactly, fedit does not -----------------------------


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential()
        self.body.add_module("fc", nn.Linear(12, 9))
        self.head = nn.Linear(9, 3)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def _adapted(method: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model = apply_adapters(Toy(), AdapterConfig(method=method, rank=4, init_seed=1))
    return model, adapted_layers(model)["body.fc"]


def _client_states(model, n: int, seed: int):
    """n random client states (every trained tensor drawn anew), each with its delta W."""
    g = torch.Generator().manual_seed(seed)
    template = adapter_state(model)
    states, deltas = [], []
    layer = adapted_layers(model)["body.fc"]
    for _ in range(n):
        state = {k: torch.randn(v.shape, generator=g) for k, v in template.items()}
        load_adapter_state(model, state)
        states.append(state)
        deltas.append(layer.delta_weight().detach().clone())
    return states, deltas


def test_fedsb_mean_of_r_is_the_mean_of_the_updates():
    model, layer = _adapted("lora-sb")
    init_lora_sb(model, {"body.fc": torch.randn(9, 12)}, lr=1e-2)  # shared B and A
    assert set(adapter_state(model)) == {R_KEY, "head.weight", "head.bias"}
    states, deltas = _client_states(model, 4, seed=5)
    weights = [1.0, 2.0, 3.0, 4.0]
    load_adapter_state(model, aggregate("fedsb", states, weights))
    mean_delta = sum(w * d for w, d in zip(weights, deltas)) / sum(weights)
    got = layer.delta_weight().detach()
    b, a = layer.lora_B.weight, layer.lora_A.weight
    mean_r = sum(w * s[R_KEY] for w, s in zip(weights, states)) / sum(weights)
    assert torch.allclose(got, b @ mean_r @ a, rtol=0, atol=1e-5)
    assert torch.allclose(got, mean_delta, rtol=0, atol=1e-5)
    # the head is averaged as it is
    want_head = sum(w * s["head.weight"] for w, s in zip(weights, states)) / sum(weights)
    assert torch.allclose(model.head.weight, want_head, atol=1e-6)


def test_fedit_mean_of_factors_is_not_the_mean_of_the_updates():
    model, layer = _adapted("lora")
    states, deltas = _client_states(model, 4, seed=6)
    lora_keys = ("lora_A.weight", "lora_B.weight")
    assert all(k.endswith(lora_keys) or k[:5] == "head." for k in states[0])
    load_adapter_state(model, aggregate("fedit", states, [1.0] * 4))
    got = layer.delta_weight().detach()
    mean_delta = torch.stack(deltas).mean(0)
    # mean(B_i) mean(A_i) (what aggregating fedit gives) is far from mean(B_i A_i)
    ba = torch.stack([s["body.fc.lora_B.weight"] for s in states]).mean(0) @ torch.stack(
        [s["body.fc.lora_A.weight"] for s in states]
    ).mean(0)
    assert torch.allclose(got, layer.scaling * ba, atol=1e-5)
    error = (got - mean_delta).norm() / mean_delta.norm()
    assert error > 0.3


# -- server optimisers ---------------------------------------------------------------------


def test_avg_returns_the_aggregate():
    glob = {"head.bias": torch.zeros(3)}
    agg = {"head.bias": torch.tensor([1.0, 2.0, 3.0])}
    opt = {"m.head.bias": torch.ones(3)}
    new, new_opt = server_step(glob, agg, "avg", opt)
    assert torch.equal(new["head.bias"], agg["head.bias"])
    assert new["head.bias"] is not agg["head.bias"]
    assert new_opt == opt
    with pytest.raises(ValueError, match="unknown server optimizer 'sgd'"):
        server_step(glob, agg, "sgd", opt)


def test_fedadam_two_steps_match_a_hand_reference():
    lr, b1, b2, tau = 0.1, 0.9, 0.99, 1e-3
    x0 = np.array([0.5, -1.0, 2.0])
    aggs = [np.array([1.0, -1.5, 2.0]), np.array([0.0, 0.0, 3.0])]
    # reference (Reddi et al. 2021, Algorithm 2, FedAdam; no bias correction)
    x, m, v, ref = x0.copy(), np.zeros(3), np.zeros(3), []
    for agg in aggs:
        d = agg - x
        m = b1 * m + (1 - b1) * d
        v = b2 * v + (1 - b2) * d**2
        x = x + lr * m / (np.sqrt(v) + tau)
        ref.append(x.copy())
    glob = {"head.bias": torch.tensor(x0, dtype=torch.float64)}
    opt: dict[str, torch.Tensor] = {}
    for agg, want in zip(aggs, ref):
        step = {"head.bias": torch.tensor(agg)}
        glob, opt = server_step(glob, step, "fedadam", opt, lr, b1, b2, tau)
        np.testing.assert_allclose(glob["head.bias"].numpy(), want, rtol=1e-12, atol=1e-12)
    assert set(opt) == {"m.head.bias", "v.head.bias"}
    np.testing.assert_allclose(opt["m.head.bias"].numpy(), m, rtol=1e-12)
    np.testing.assert_allclose(opt["v.head.bias"].numpy(), v, rtol=1e-12)


def test_fedadam_keeps_the_dtype():
    glob = {"head.bias": torch.zeros(2)}
    new, _ = server_step(glob, {"head.bias": torch.ones(2)}, "fedadam", {}, lr=0.5)
    assert new["head.bias"].dtype == torch.float32
    # first step: m = 0.1 d, v = 0.01 d^2 -> lr * 0.1 / (0.1 + tau)
    assert torch.allclose(new["head.bias"], torch.full((2,), 0.5 * 0.1 / (0.1 + 1e-3)))


def test_fedavgm_is_avg_without_momentum_and_a_momentum_recursion_with_it():
    glob = {"head.bias": torch.tensor([0.0, 1.0], dtype=torch.float64)}
    aggs = [torch.tensor([1.0, 0.0]), torch.tensor([2.0, -1.0]), torch.tensor([2.5, 0.5])]
    plain, _ = server_step(glob, {"head.bias": aggs[0]}, "fedavgm", {}, lr=1.0, beta1=0.0)
    avg, _ = server_step(glob, {"head.bias": aggs[0]}, "avg", {})
    torch.testing.assert_close(plain["head.bias"], avg["head.bias"].double())
    x, m, state, opt = np.array([0.0, 1.0]), np.zeros(2), glob, {}
    for agg in aggs:  # the recursion by hand: m = b m + (agg - x), x += lr m
        m = 0.9 * m + (agg.numpy() - x)
        x = x + 0.5 * m
        state, opt = server_step(state, {"head.bias": agg}, "fedavgm", opt, lr=0.5, beta1=0.9)
        np.testing.assert_allclose(state["head.bias"].numpy(), x, rtol=1e-12)
    assert set(opt) == {"m.head.bias"}


# -- update agreement -----------------------------------------------------------------------


def _moved(
    ref: dict[str, torch.Tensor], deltas: list[torch.Tensor]
) -> list[dict[str, torch.Tensor]]:
    """Client states whose update, flattened over keys a and b, is each of ``deltas``."""
    return [{"a": ref["a"] + d[:3].reshape(3), "b": ref["b"] + d[3:].reshape(2, 2)} for d in deltas]


def test_update_agreement_is_one_for_parallel_updates_and_zero_for_cancelling_ones():
    ref = {"a": torch.randn(3), "b": torch.randn(2, 2)}
    d = torch.randn(7, dtype=torch.float64)
    assert update_agreement(_moved(ref, [d, 2 * d, 0.5 * d]), [1, 1, 1], ref) == pytest.approx(1.0)
    assert update_agreement(_moved(ref, [d, -d]), [5, 5], ref) == pytest.approx(0.0, abs=1e-6)
    # unequal weights: |0.75 d - 0.25 d| / (0.75 |d| + 0.25 |d|) = 0.5
    assert update_agreement(_moved(ref, [d, -d]), [3, 1], ref) == pytest.approx(0.5, rel=1e-6)


def test_update_agreement_of_orthogonal_equal_updates_is_one_over_sqrt_k():
    ref = {"a": torch.zeros(3), "b": torch.zeros(2, 2)}
    eye = torch.eye(7, dtype=torch.float64)
    k = 4
    got = update_agreement(_moved(ref, [eye[i] * 3 for i in range(k)]), [1] * k, ref)
    assert got == pytest.approx(1 / k**0.5, rel=1e-6)


def test_update_agreement_against_numpy_on_random_updates():
    rng = np.random.default_rng(0)
    ref = {"a": torch.zeros(3), "b": torch.zeros(2, 2)}
    deltas = rng.normal(size=(5, 7))
    w = rng.uniform(1, 10, size=5)
    expect = np.linalg.norm(np.average(deltas, axis=0, weights=w)) / np.average(
        np.linalg.norm(deltas, axis=1), weights=w
    )
    states = _moved(ref, [torch.tensor(d, dtype=torch.float32) for d in deltas])
    assert update_agreement(states, list(w), ref) == pytest.approx(expect, rel=1e-5)
