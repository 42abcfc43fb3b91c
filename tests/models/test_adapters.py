"""Adapter layers, wrapping, parameter counts, adapter state, merging and Opacus compatibility."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from opacus import GradSampleModule
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from torch import nn

from fedsb.errors import ConfigError, FedsbError
from fedsb.models.adapters import (
    AdaptedLayer,
    adapted_layers,
    adapter_state,
    apply_adapters,
    count_trainable,
    expected_trainable,
    load_adapter_state,
    merge,
    trainable_count_formula,
    trainable_parameters,
)
from fedsb.models.config import METHODS, AdapterConfig
from fedsb.models.state import AdapterStateError

ADAPTED = ("lora-sb", "lora", "ffa-lora")


class ToyMLP(nn.Module):
    """Two adaptable Linear layers and a head."""

    SHAPES = {"fc1": (10, 12), "fc2": (8, 10)}  # (d_out, d_in)
    HEAD = 8 * 4 + 4

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(12, 10), nn.Linear(10, 8), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    @staticmethod
    def inputs(n: int = 6, seed: int = 1) -> torch.Tensor:
        return torch.randn(n, 12, generator=torch.Generator().manual_seed(seed))


class ToyConv(nn.Module):
    """Two Conv2d (one strided and dilated, one reflect-padded), a Linear, and a head."""

    SHAPES = {"conv1": (8, 27), "conv2": (6, 72), "fc": (5, 6)}  # conv d_in = in·kh·kw
    HEAD = 5 * 4 + 4

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")
        self.conv2 = nn.Conv2d(8, 6, 3, stride=2, padding=2, dilation=2)
        self.fc, self.head = nn.Linear(6, 5), nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x)))).mean((2, 3))
        return self.head(torch.relu(self.fc(h)))

    @staticmethod
    def inputs(n: int = 6, seed: int = 1) -> torch.Tensor:
        return torch.randn(n, 3, 7, 7, generator=torch.Generator().manual_seed(seed))


TOYS = (ToyMLP, ToyConv)


def make(toy: type[nn.Module], method: str, rank: int = 3, seed: int = 0, **kw: object):
    """(plain model, adapted deep copy) with fixed base weights."""
    torch.manual_seed(seed)
    plain = toy()
    cfg = AdapterConfig(method=method, rank=rank, **kw)  # type: ignore[arg-type]
    return plain, apply_adapters(copy.deepcopy(plain), cfg)


def randomise_adapters(model: nn.Module, seed: int = 5) -> None:
    """Give every adapter factor (trained or not) nonzero values, so ΔW != 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in adapted_layers(model).values():
            for m in (layer.lora_A, layer.lora_B, layer.lora_R):
                if m is not None:
                    m.weight.copy_(0.3 * torch.randn(m.weight.shape, generator=g))


@pytest.mark.parametrize("toy", TOYS)
@pytest.mark.parametrize("method", ADAPTED)
def test_adapted_model_starts_at_base_model(toy: type[nn.Module], method: str) -> None:
    # lora/ffa-lora: B = 0; lora-sb before init_lora_sb: B = A = R = 0. Exact equality.
    plain, model = make(toy, method)
    x = toy.inputs()  # type: ignore[attr-defined]
    assert torch.equal(model(x), plain(x))
    for layer in adapted_layers(model).values():
        assert torch.count_nonzero(layer.delta_weight()) == 0


@pytest.mark.parametrize("toy", TOYS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rank", [1, 3, 7, None])
def test_trainable_counts_match_formulas(
    toy: type[nn.Module], method: str, rank: int | None
) -> None:
    shapes = list(toy.SHAPES.values())  # type: ignore[attr-defined]
    rank = rank or max(min(s) for s in shapes)  # None: the widest target (clips the others)
    plain, model = make(toy, method, rank)
    head = toy.HEAD  # type: ignore[attr-defined]
    total = sum(p.numel() for p in plain.parameters())
    by_hand = {
        "lora-sb": head + sum(min(rank, o, i) ** 2 for o, i in shapes),
        "lora": head + sum(min(rank, o, i) * (o + i) for o, i in shapes),
        "ffa-lora": head + sum(min(rank, o, i) * o for o, i in shapes),
        "full": total,
        "head-only": head,
    }[method]
    assert trainable_count_formula(shapes, head, method, rank, total) == by_hand
    cfg = AdapterConfig(method=method, rank=rank)  # type: ignore[arg-type]
    assert expected_trainable(plain, cfg) == by_hand
    assert count_trainable(model) == by_hand
    assert sum(p.numel() for p in trainable_parameters(model)) == by_hand


@pytest.mark.parametrize("method", METHODS)
def test_only_intended_parameters_train(method: str) -> None:
    _, model = make(ToyConv, method, rank=2)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    suffix = {"lora-sb": ("lora_R",), "lora": ("lora_A", "lora_B"), "ffa-lora": ("lora_B",)}
    if method == "full":
        assert trained == {n for n, _ in model.named_parameters()}
        return
    layers = [] if method == "head-only" else list(ToyConv.SHAPES)
    want = {f"{n}.{s}.weight" for n in layers for s in suffix.get(method, ())}
    assert trained == want | {"head.weight", "head.bias"}
    assert set(adapter_state(model)) == trained


@pytest.mark.parametrize("toy", TOYS)
@pytest.mark.parametrize("method", ADAPTED)
@pytest.mark.parametrize("head", ["frozen", "adapt"])
def test_head_modes_train_what_they_say(toy: type[nn.Module], method: str, head: str) -> None:
    plain, model = make(toy, method, rank=3, head=head)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not trained & {"head.weight", "head.bias", "head.base_layer.weight"}
    head_out, head_in = plain.head.weight.shape
    if head == "adapt":  # the head is one more adapted layer, rank clipped by the classes
        assert isinstance(model.head, AdaptedLayer) and model.head.rank == min(3, head_out)
        assert any(n.startswith("head.lora_") for n in trained)
    else:
        assert type(model.head) is nn.Linear and not any(n.startswith("head.") for n in trained)
    shapes = list(toy.SHAPES.values()) + ([(head_out, head_in)] if head == "adapt" else [])
    by_hand = trainable_count_formula(shapes, 0, method, 3)
    assert count_trainable(model) == by_hand
    assert expected_trainable(plain, AdapterConfig(method=method, rank=3, head=head)) == by_hand
    x = toy.inputs()  # type: ignore[attr-defined]
    assert torch.equal(model(x), plain(x))  # still starts at the base model
    randomise_adapters(model)
    assert torch.allclose(merge(model)(x), model(x), atol=1e-5)


def test_head_mode_errors() -> None:
    with pytest.raises(ValueError, match="head 'big' is not one of train, frozen, adapt"):
        AdapterConfig(head="big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="head = 'frozen' needs an adapter method, not 'full'"):
        AdapterConfig(method="full", head="frozen")


def test_rank_is_clipped_per_layer_and_scaling_uses_it() -> None:
    _, model = make(ToyConv, "lora", rank=8, alpha=12.0)  # 8: conv1's min(d_out, d_in)
    layers = adapted_layers(model)
    assert {n: m.rank for n, m in layers.items()} == {"conv1": 8, "conv2": 6, "fc": 5}
    assert layers["fc"].scaling == pytest.approx(12.0 / 5)
    assert layers["conv2"].lora_A.weight.shape == (6, 8, 3, 3)
    assert layers["conv2"].lora_B.weight.shape == (6, 6, 1, 1)


def test_targets_select_layers_and_never_the_head() -> None:
    _, model = make(ToyConv, "lora-sb", targets=("conv*",))
    assert set(adapted_layers(model)) == {"conv1", "conv2"}
    assert type(model.fc) is nn.Linear and type(model.head) is nn.Linear
    with pytest.raises(ValueError, match="matches targets"):
        make(ToyConv, "lora-sb", targets=("head", "nothing*"))


@pytest.mark.parametrize("method", ADAPTED)
@pytest.mark.parametrize(("toy", "widest"), [(ToyMLP, 10), (ToyConv, 8)])
def test_rank_above_every_target_is_a_config_error(
    toy: type[nn.Module], widest: int, method: str
) -> None:
    message = (
        rf"\Aadapter\.rank: {widest + 1} is larger than every target layer allows "
        rf"\(at most {widest} here: min\(d_out, d_in\) of the widest target\)\Z"
    )
    with pytest.raises(ConfigError, match=message):
        make(toy, method, rank=widest + 1)
    with pytest.raises(ConfigError, match=message):
        expected_trainable(toy(), AdapterConfig(method=method, rank=widest + 1))
    assert make(toy, method, rank=widest)[1] is not None  # the widest itself is fine
    # the rank is checked against the chosen targets, not the whole model
    with pytest.raises(ConfigError, match=r"adapter\.rank: 6 .* \(at most 5 here"):
        make(ToyConv, method, rank=6, targets=("fc",))


@pytest.mark.parametrize("method", ["full", "head-only"])
def test_methods_without_adapters_ignore_the_rank(method: str) -> None:
    plain, model = make(ToyConv, method, rank=100000)
    assert count_trainable(model) == expected_trainable(plain, AdapterConfig(method=method))


def test_targets_matching_nothing_are_a_config_error_listing_the_layers() -> None:
    message = (
        r"\Aadapter\.targets: no nn\.Linear/nn\.Conv2d layer matches targets \['nosuch\*'\] "
        r"\(head excluded; layers: 'conv1', 'conv2', 'fc'\)\Z"
    )
    with pytest.raises(ConfigError, match=message):
        make(ToyConv, "lora-sb", targets=("nosuch*",))
    with pytest.raises(ValueError, match=message):  # still a ValueError for older callers
        expected_trainable(ToyConv(), AdapterConfig(targets=("nosuch*",)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rank": 0}, r"\Arank: must be >= 1, got 0\Z"),
        ({"rank": -4}, r"\Arank: must be >= 1, got -4\Z"),
        ({"alpha": 0.0}, r"\Aalpha: must be > 0, got 0\.0\Z"),
        ({"alpha": float("nan")}, r"\Aalpha: must be > 0, got nan\Z"),
        ({"alpha": float("inf")}, r"\Aalpha: must be finite, got inf\Z"),
        ({"init_samples": 0}, r"\Ainit_samples: must be >= 1, got 0\Z"),
        ({"init_lr": 0.0}, r"\Ainit_lr: must be > 0, got 0\.0\Z"),
        ({"init_seed": -1}, r"\Ainit_seed: must be >= 0, got -1\Z"),
    ],
)
def test_adapter_config_refuses_bad_numbers(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdapterConfig(**kwargs)


def test_apply_adapters_errors() -> None:
    with pytest.raises(ValueError, match="method 'bogus' is not one of"):
        make(ToyMLP, "bogus")
    _, model = make(ToyMLP, "lora")
    with pytest.raises(ValueError, match="already has adapters"):
        apply_adapters(model, AdapterConfig(method="lora"))
    with pytest.raises(ValueError, match="no 'head'"):
        apply_adapters(nn.Sequential(nn.Linear(3, 3)), AdapterConfig())
    grouped = nn.Module()
    grouped.dw, grouped.head = nn.Conv2d(4, 4, 3, groups=4), nn.Linear(4, 2)
    with pytest.raises(ValueError, match="'dw' is a Conv2d with groups=4"):
        apply_adapters(grouped, AdapterConfig())
    with pytest.raises(ValueError, match="groups=2"):
        AdaptedLayer(nn.Conv2d(4, 4, 3, groups=2), "lora", 2, 2.0)


@pytest.mark.parametrize("method", ["lora", "ffa-lora"])
def test_random_a_is_seeded_and_independent_of_global_rng(method: str) -> None:
    def a_weights(init_seed: int, global_seed: int) -> list[torch.Tensor]:
        torch.manual_seed(0)
        plain = ToyConv()
        torch.manual_seed(global_seed)
        state = torch.get_rng_state()
        apply_adapters(plain, AdapterConfig(method=method, rank=3, init_seed=init_seed))  # type: ignore[arg-type]
        assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
        return [m.lora_A.weight.detach().clone() for m in adapted_layers(plain).values()]

    first = a_weights(7, 1)
    assert all(torch.equal(a, b) for a, b in zip(first, a_weights(7, 99)))
    assert not any(torch.equal(a, b) for a, b in zip(first, a_weights(8, 1)))
    bound = 1 / 27**0.5  # kaiming_uniform(a=√5) on conv1: U(±1/√fan_in), fan_in = 3·3·3
    assert first[0].abs().max() <= bound and first[0].std() > bound / 4


@pytest.mark.parametrize("method", METHODS)
def test_adapter_state_keys_shapes_and_round_trip(method: str) -> None:
    _, model = make(ToyMLP, method, rank=3)
    state = adapter_state(model)
    expected = {n: p.shape for n, p in model.named_parameters() if p.requires_grad}
    assert {k: v.shape for k, v in state.items()} == expected
    if method == "lora-sb":
        assert state["fc1.lora_R.weight"].shape == (3, 3)
    g = torch.Generator().manual_seed(3)
    sent = {k: torch.randn(v.shape, generator=g) for k, v in state.items()}
    _, fresh = make(ToyMLP, method, rank=3)
    load_adapter_state(fresh, sent)
    got = adapter_state(fresh)
    assert all(torch.equal(got[k], sent[k]) for k in sent)
    got["head.weight"].add_(1.0)  # a detached clone: the model is not affected
    assert torch.equal(fresh.head.weight, sent["head.weight"])
    if method == "lora":  # every factor travels, so the function is restored too
        x = ToyMLP.inputs()
        load_adapter_state(model, sent)
        assert torch.equal(model(x), fresh(x))


BAD_STATES = [
    ("missing", "missing keys 'fc1.lora_R.weight'"),
    ("extra", "unexpected keys 'x.y'"),
    ("shape", "shape (3, 4), expected (3, 3)"),
    ("dtype", "dtype torch.float64"),
    ("nan", "1 NaN and 0 Inf"),
    ("inf", "0 NaN and 1 Inf"),
    ("type", "not a tensor"),
]


@pytest.mark.parametrize(("case", "message"), BAD_STATES)
def test_load_adapter_state_errors_name_the_key(case: str, message: str) -> None:
    _, model = make(ToyMLP, "lora-sb", rank=3)
    before = adapter_state(model)
    state: dict[str, object] = {k: v + 1 for k, v in before.items()}
    key = "fc1.lora_R.weight"
    if case == "missing":
        del state[key]
    elif case == "extra":
        state["x.y"], key = torch.zeros(1), "x.y"
    elif case == "shape":
        state[key] = torch.zeros(3, 4)
    elif case == "dtype":
        state[key] = torch.zeros(3, 3, dtype=torch.float64)
    elif case == "nan":
        state[key] = torch.zeros(3, 3)
        state[key][1, 2] = float("nan")  # type: ignore[index]
    elif case == "inf":
        state[key] = torch.zeros(3, 3)
        state[key][0, 0] = float("inf")  # type: ignore[index]
    else:
        state[key] = [[0.0] * 3] * 3
    with pytest.raises(AdapterStateError, match=repr(key)) as err:
        load_adapter_state(model, state)  # type: ignore[arg-type]
    assert message in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, FedsbError)
    after = adapter_state(model)  # nothing was copied
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_load_adapter_state_non_strict_allows_missing_keys() -> None:
    _, model = make(ToyMLP, "lora-sb", rank=3)
    load_adapter_state(model, {"head.bias": torch.ones(4)}, strict=False)
    assert torch.equal(model.head.bias, torch.ones(4))
    with pytest.raises(AdapterStateError, match="unexpected keys 'fc1.lora_A.weight'"):
        load_adapter_state(model, {"fc1.lora_A.weight": torch.ones(3, 12)}, strict=False)


@pytest.mark.parametrize("toy", TOYS)
@pytest.mark.parametrize("method", METHODS)
def test_merge_keeps_logits_and_removes_adapters(toy: type[nn.Module], method: str) -> None:
    _, model = make(toy, method, rank=3)
    randomise_adapters(model)
    with torch.no_grad():
        model.head.bias.add_(0.5)
    x = toy.inputs()  # type: ignore[attr-defined]
    before = model(x)
    merged = merge(model)
    assert not adapted_layers(merged)
    for name in toy.SHAPES:  # type: ignore[attr-defined]
        assert type(getattr(merged, name)) is type(getattr(toy(), name))
    torch.testing.assert_close(merged(x), before, atol=1e-5, rtol=0)
    assert torch.equal(model(x), before)  # the original keeps its adapters and values
    assert len(adapted_layers(model)) == (len(toy.SHAPES) if method in ADAPTED else 0)  # type: ignore[attr-defined]
    assert all(torch.isfinite(p).all() for p in merged.parameters())


def test_merge_rejects_non_finite_weights() -> None:
    _, model = make(ToyConv, "lora-sb", rank=2)
    randomise_adapters(model)
    with torch.no_grad():
        model.conv2.lora_R.weight[0, 0] = float("inf")
    with pytest.raises(AdapterStateError, match="'conv2'"):
        merge(model)


@pytest.mark.filterwarnings("ignore:Full backward hook:UserWarning")
def test_opacus_per_sample_gradients_of_lora_r_sum_to_the_gradient() -> None:
    # Conv adapter: R is applied to A(x) viewed as (N, H·W, r); Opacus's Linear sampler
    # (einsum over the extra dim) must give per-sample grads that sum to the batch gradient.
    _, model = make(ToyConv, "lora-sb", rank=3)
    randomise_adapters(model)
    reference = copy.deepcopy(model)
    x, y = ToyConv.inputs(8), torch.arange(8) % 4
    F.cross_entropy(reference(x), y, reduction="sum").backward()
    gsm = GradSampleModule(model, loss_reduction="sum")
    F.cross_entropy(gsm(x), y, reduction="sum").backward()
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"conv1.lora_R.weight", "conv2.lora_R.weight", "fc.lora_R.weight"} <= names
    ref = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad_sample.shape == (8, *p.shape)
            torch.testing.assert_close(p.grad_sample.sum(0), ref[name].grad, atol=1e-5, rtol=1e-5)
    # each sample's gradient is that sample's own gradient (not a share of the batch's)
    single = copy.deepcopy(reference)
    single.zero_grad()
    F.cross_entropy(single(x[2:3]), y[2:3], reduction="sum").backward()
    torch.testing.assert_close(
        model.conv2.lora_R.weight.grad_sample[2],
        single.conv2.lora_R.weight.grad,
        atol=1e-5,
        rtol=1e-5,
    )


@pytest.mark.filterwarnings("ignore:Full backward hook:UserWarning")
def test_opacus_ghost_clipping_norms_for_conv_lora_r() -> None:
    # Ghost clipping's Linear norm sampler handles 2-D and 3-D inputs only; the conv adapter's
    # (N, H·W, r) view keeps R inside that. Norms must equal the per-sample gradient norms.
    _, model = make(ToyConv, "lora-sb", rank=3)
    randomise_adapters(model)
    x, y = ToyConv.inputs(5), torch.arange(5) % 4
    plain = copy.deepcopy(model)
    gsm = GradSampleModule(plain, loss_reduction="sum")
    F.cross_entropy(gsm(x), y, reduction="sum").backward()
    ghost = GradSampleModuleFastGradientClipping(
        model, loss_reduction="sum", max_grad_norm=1.0, use_ghost_clipping=True
    )
    F.cross_entropy(ghost(x), y, reduction="sum").backward()
    for name in ("conv1", "conv2", "fc"):
        want = getattr(plain, name).lora_R.weight.grad_sample.flatten(1).norm(dim=1)
        got = getattr(model, name).lora_R.weight._norm_sample
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
