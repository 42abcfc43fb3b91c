"""The LoRA baselines' server side on hand-made client states: FedEx-LoRA's residual and FLoRA's
stacking are exact (the global effective weights are the weighted mean of the clients'), FedSA's
server averages A and never sees a B; what each method's global state, upload and kept tensors
are; the config refuses what a method cannot do; the checkpoint keeps the clients' B."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fedsb.config import apply_overrides
from fedsb.errors import ConfigError, DataError
from fedsb.federated.aggregate import aggregate_round
from fedsb.federated.config import RunConfig
from fedsb.federated.methods import METHODS
from fedsb.federated.progress import Progress, Totals, load_progress, save_progress
from fedsb.federated.states import (
    initial_global,
    initial_personal,
    layer_scalings,
    load_global,
    split_update,
    upload_reference,
)
from fedsb.models.adapters import adapted_layers, adapter_state, apply_adapters
from fedsb.models.checkpoint import save_checkpoint
from fedsb.models.config import AdapterConfig

LAYERS = ("body.fc", "body.conv")
WEIGHTS = [1.0, 2.0, 3.0, 4.0]


class Toy(nn.Module):
    """A conv (its kernel is a (out, in·k·k) matrix) and a Linear, then the head."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Module()
        self.body.conv = nn.Conv2d(2, 5, 3, padding=1)
        self.body.fc = nn.Linear(5 * 4 * 4, 9)
        self.head = nn.Linear(9, 3)

    def forward(self, x):
        h = torch.relu(self.body.conv(x)).flatten(1)
        return self.head(torch.relu(self.body.fc(h)))


def _model() -> nn.Module:
    torch.manual_seed(0)
    cfg = AdapterConfig(method="lora", rank=3, alpha=6.0, init_seed=1, targets=LAYERS)
    return apply_adapters(Toy(), cfg)


def _clients(model: nn.Module, n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """n random client uploads: every trained tensor (A, B, head) drawn anew."""
    g = torch.Generator().manual_seed(seed)
    template = adapter_state(model)
    return [{k: torch.randn(v.shape, generator=g) for k, v in template.items()} for _ in range(n)]


def _effective(model: nn.Module, state: dict, fed_name: str) -> dict[str, torch.Tensor]:
    """W0 + s·B·A of every adapted layer once ``state`` is loaded (the merged weight)."""
    other = copy.deepcopy(model)
    load_global(other, METHODS[fed_name], state)
    return {
        n: layer.merged(n).weight.detach().double() for n, layer in adapted_layers(other).items()
    }


def _client_effective(model: nn.Module, upload: dict) -> dict[str, torch.Tensor]:
    """A client's own effective weights: the pretrained W0 plus its s·B_i·A_i."""
    base = {k: v for k, v in initial_global(model, METHODS["fedex"]).items() if "base_layer" in k}
    return _effective(model, {**upload, **base}, "fedex")


def _weighted_mean(per_client: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    total = sum(WEIGHTS)
    return {k: sum(w * e[k] for w, e in zip(WEIGHTS, per_client)) / total for k in per_client[0]}


def test_fedex_global_effective_weights_are_the_mean_of_the_clients():
    model = _model()
    fed = METHODS["fedex"]
    glob = initial_global(model, fed)
    assert {k for k in glob if k.endswith(".base_layer.weight")} == {
        f"{n}.base_layer.weight" for n in LAYERS
    }
    uploads = _clients(model, 4, seed=3)
    new = aggregate_round("fedex", uploads, WEIGHTS, glob, layer_scalings(model))
    assert set(new) == set(glob)
    # A and B are FedIT's weighted means, the head too
    for key in ("body.fc.lora_A.weight", "body.conv.lora_B.weight", "head.weight"):
        want = sum(w * u[key] for w, u in zip(WEIGHTS, uploads)) / sum(WEIGHTS)
        torch.testing.assert_close(new[key], want, rtol=0, atol=1e-6)
    want = _weighted_mean([_client_effective(model, u) for u in uploads])
    got = _effective(model, new, "fedex")
    for n in LAYERS:
        torch.testing.assert_close(got[n], want[n], rtol=0, atol=2e-5)
    # without the residual (FedIT) the same means are far from exact
    fedit = _effective(model, {**new, **{k: glob[k] for k in glob if "base_layer" in k}}, "fedex")
    assert max(float((fedit[n] - want[n]).abs().max()) for n in LAYERS) > 0.1


def test_flora_stacked_update_is_folded_exactly_and_the_factors_start_fresh():
    model = _model()
    fed = METHODS["flora"]
    glob = initial_global(model, fed)
    assert not any(".lora_" in k for k in glob)  # the clients draw new factors every round
    uploads = _clients(model, 4, seed=4)
    new = aggregate_round("flora", uploads, WEIGHTS, glob, layer_scalings(model))
    assert set(new) == set(glob)
    want = _weighted_mean([_client_effective(model, u) for u in uploads])
    got = _effective(model, new, "flora")  # B = 0 in the global model: W0' alone
    for n in LAYERS:
        torch.testing.assert_close(got[n], want[n], rtol=0, atol=2e-5)
    # the paper's stacking: B = [p_1 B_1 .. p_K B_K], A = [A_1; ..; A_K], s B A = W0' - W0
    p = [w / sum(WEIGHTS) for w in WEIGHTS]
    layer = adapted_layers(model)["body.conv"]
    b = torch.cat([pi * u["body.conv.lora_B.weight"].reshape(5, 3) for pi, u in zip(p, uploads)], 1)
    a = torch.cat([u["body.conv.lora_A.weight"].reshape(3, -1) for u in uploads], 0)
    w0 = glob["body.conv.base_layer.weight"].reshape(5, -1)
    stacked = layer.scaling * (b.double() @ a.double())
    fold = new["body.conv.base_layer.weight"].reshape(5, -1).double() - w0.double()
    torch.testing.assert_close(fold, stacked, rtol=0, atol=2e-5)


def test_flora_reference_is_the_rounds_fresh_factors():
    model = _model()
    fed = METHODS["flora"]
    glob = initial_global(model, fed)
    one, again, other = (upload_reference(model, fed, glob, s) for s in (7, 7, 8))
    assert set(one) == set(adapter_state(model))
    assert all(float(one[k].abs().sum()) == 0 for k in one if k.endswith("lora_B.weight"))
    assert torch.equal(one["body.fc.lora_A.weight"], again["body.fc.lora_A.weight"])
    assert not torch.equal(one["body.fc.lora_A.weight"], other["body.fc.lora_A.weight"])


def test_fedsa_server_averages_a_and_never_holds_a_b():
    model = _model()
    fed = METHODS["fedsa"]
    glob = initial_global(model, fed)
    assert glob and not any(k.endswith("lora_B.weight") for k in glob)
    kept = initial_personal(model, fed)
    assert set(kept) == {f"{n}.lora_B.weight" for n in LAYERS}
    assert all(float(v.abs().sum()) == 0 for v in kept.values())  # B starts at 0, as LoRA
    trained = _clients(model, 4, seed=5)
    splits = [split_update(fed, t) for t in trained]
    for (sent, b), t in zip(splits, trained):
        assert set(sent) == set(glob) and set(b) == set(kept)
        assert all(b[k] is t[k] for k in b)  # the client keeps exactly what it trained
    uploads = [s for s, _ in splits]
    new = aggregate_round("fedsa", uploads, WEIGHTS, glob, layer_scalings(model))
    assert set(new) == set(glob)
    want = sum(w * u["body.fc.lora_A.weight"] for w, u in zip(WEIGHTS, uploads)) / sum(WEIGHTS)
    torch.testing.assert_close(new["body.fc.lora_A.weight"], want, rtol=0, atol=1e-6)
    with pytest.raises(Exception, match="clients may not send"):
        aggregate_round("fedsa", trained, WEIGHTS, glob, layer_scalings(model))


def test_config_refuses_what_a_method_cannot_do():
    with pytest.raises(
        ConfigError,
        match=r"^engine: 'flower' cannot run method 'fedsa': each client keeps its own B "
        r"between rounds; .*use engine = 'local'$",
    ):
        apply_overrides(RunConfig(), ["method='fedsa'", "engine='flower'"])
    for name in ("fedex", "flora"):
        with pytest.raises(
            ConfigError,
            match=rf"^server\.aggregation: 'median' cannot be used with method '{name}' \(it "
            r"folds the exact weighted mean .*\); use 'mean'$",
        ):
            apply_overrides(RunConfig(), [f"method='{name}'", "server.aggregation='median'"])
    ok = apply_overrides(RunConfig(), ["method='fedsa'", "server.aggregation='median'"])
    assert ok.adapter.method == "lora"
    assert apply_overrides(RunConfig(), ["method='fedex'", "engine='flower'"]).engine == "flower"


def test_checkpoint_keeps_each_clients_b(tmp_path):
    path = tmp_path / "state.safetensors"
    personal = {0: {"l.lora_B.weight": torch.ones(2, 1)}, 2: {"l.lora_B.weight": torch.zeros(2, 1)}}
    glob = {"l.lora_A.weight": torch.arange(3.0).reshape(1, 3)}
    save_progress(path, Progress(glob, {}, 3, Totals(5.0, (0, 0, 0)), personal))
    back = load_progress(path)
    assert back.done == 3 and set(back.personal) == {0, 2}
    for c in personal:
        assert torch.equal(back.personal[c]["l.lora_B.weight"], personal[c]["l.lora_B.weight"])
    assert torch.equal(back.global_state["l.lora_A.weight"], glob["l.lora_A.weight"])
    assert load_progress(path).personal.keys() == personal.keys()
    bad = {"global.x": torch.zeros(1), "personal.one.l.lora_B.weight": torch.zeros(1)}
    meta = {"kind": "federated-state", "round": 1, "totals": {"bytes": 0, "dp_steps": [0]}}
    save_checkpoint(path, bad, meta)
    with pytest.raises(
        DataError, match=r"key 'personal\.one\.l\.lora_B\.weight' is not personal\.<client>\.<key>"
    ):
        load_progress(path)
