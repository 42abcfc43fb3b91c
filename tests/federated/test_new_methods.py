"""FedEx-LoRA (fedex), FLoRA (flora) and FedSA-LoRA (fedsa) end to end on the tiny workspace:
each round's bytes down and up are the serialized sizes of what the method sends (computed here
from the layer shapes), the saved files hold the folded W0 or the clients' mean B, fedsa's B
stays per client and survives a resume, and fedex gives the embedded engine's numbers on the
Flower simulation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save
from torch import nn

from fedsb.federated.engines import run_federated
from fedsb.federated.progress import split_prefixed
from fedsb.federated.task import build_task
from fedsb.models.adapters import adapted_layers
from fedsb.models.checkpoint import load_checkpoint
from fedsb.reporter import SilentReporter
from fedsb.runs import ADAPTER_FILE, MODEL_FILE, STATE_FILE

from .conftest import Workspace, read_rows
from .engine_compare import assert_same_tensors, close, flower_run

RANK, ALPHA = 4, 16.0
NEW = ("fedex", "flora", "fedsa")
SAMPLED = ("server.fraction=0.6",)  # 2 of the 3 clients per round: one keeps its old B


def _shapes(ws: Workspace, name: str) -> dict[str, dict[str, tuple[int, ...]]]:
    """Key -> shape of each part a round can carry, from the backbone's layer shapes alone.

    A (r, in, kh, kw) and B (out, r, 1, 1) of each adapted conv (r = min(rank, out, in·kh·kw)),
    its dense W0, and the head.
    """
    model = build_task(ws.config(f"method='{name}'"), ws.cache, SilentReporter()).model
    parts: dict[str, dict[str, tuple[int, ...]]] = {"A": {}, "B": {}, "W": {}, "head": {}}
    for layer_name, layer in adapted_layers(model).items():
        base = layer.base_layer
        assert isinstance(base, nn.Conv2d)  # the tiny ResNet adapts convolutions only
        out, cin, kh, kw = base.weight.shape
        r = min(RANK, out, cin * kh * kw)
        parts["A"][f"{layer_name}.lora_A.weight"] = (r, cin, kh, kw)
        parts["B"][f"{layer_name}.lora_B.weight"] = (out, r, 1, 1)
        parts["W"][f"{layer_name}.base_layer.weight"] = (out, cin, kh, kw)
    parts["head"] = {"head.weight": tuple(model.head.weight.shape), "head.bias": (3,)}
    return parts


def _size(shapes: dict[str, tuple[int, ...]]) -> int:
    """The safetensors size of float32 tensors of these shapes: 4 bytes each plus the header."""
    blob = st_save({k: torch.zeros(s) for k, s in shapes.items()})
    numel = sum(math.prod(s) for s in shapes.values())
    assert 8 + 4 * numel < len(blob) < 8 + 4 * numel + 100 * len(shapes)  # the header aside
    return len(blob)


#: method -> (parts sent down, parts sent up, parts trained)
PAYLOAD = {
    "fedex": (("A", "B", "W", "head"), ("A", "B", "head"), ("A", "B", "head")),
    "flora": (("W", "head"), ("A", "B", "head"), ("A", "B", "head")),
    "fedsa": (("A", "head"), ("A", "head"), ("A", "B", "head")),
}


def _join(parts: dict, names: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    return {k: v for n in names for k, v in parts[n].items()}


@pytest.fixture(scope="module")
def runs(workspace, tmp_path_factory) -> dict[str, Path]:
    """Each new method, 3 clients x 2 rounds on the embedded engine."""
    root = tmp_path_factory.mktemp("new-methods")
    for name in NEW:
        workspace.run(root / name, f"method='{name}'")
    return {name: root / name for name in NEW}


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[0]


@pytest.mark.parametrize("name", NEW)
def test_rows_are_complete_and_finite(runs, name):
    rows = read_rows(runs[name])
    assert [r["stage"] for r in rows] == ["init", "round", "round", "final"]
    for r in rows:
        assert 0 <= r["test_acc"] <= 1 and math.isfinite(r["test_loss"])
    for r in rows[1:3]:
        assert r["accepted"] == [0, 1, 2] and r["dropped"] == {}
        assert math.isfinite(r["train_loss"]) and 0 < r["update_agreement"] < 1
    assert rows[-1]["test_acc"] == rows[-2]["test_acc"]
    assert ("global_model_test_acc" in rows[-1]) == (name == "fedsa")


@pytest.mark.parametrize("name", NEW)
def test_bytes_are_the_serialized_payloads(workspace, runs, name):
    parts = _shapes(workspace, name)
    down_parts, up_parts, trained_parts = PAYLOAD[name]
    down, up = _size(_join(parts, down_parts)), _size(_join(parts, up_parts))
    rows = read_rows(runs[name])
    init, rounds, final = rows[0], rows[1:3], rows[-1]
    assert init["bytes_up_per_client"] == init["bytes_down_per_client"] == 0  # no round 0
    total = init["cumulative_bytes"]
    assert total == 0
    for r in rounds:
        assert r["bytes_down_per_client"] == down, "down"
        assert r["bytes_up_per_client"] == up, "up"
        assert r["round_bytes"] == 3 * (down + up)
        total += r["round_bytes"]
        assert r["cumulative_bytes"] == total
        assert r["params_per_client"] == sum(math.prod(s) for s in _join(parts, up_parts).values())
    steps = json.loads((runs[name] / "evaluation.json").read_text())["calibration"]["steps"]
    assert final["calibration_bytes_per_client"] == down + 40 * steps  # the final state + sums
    assert final["total_bytes"] == total + 3 * final["calibration_bytes_per_client"]
    trained = _join(parts, trained_parts)
    assert final["trained_parameters"] == sum(math.prod(s) for s in trained.values())


def test_the_dense_downlink_is_what_fedex_and_flora_pay(runs):
    """fedex sends fedit's factors plus a dense W0 per layer; flora sends W0 but no factors."""
    fedex, flora, fedsa = (read_rows(runs[n])[1] for n in NEW)
    assert fedex["bytes_down_per_client"] > flora["bytes_down_per_client"]
    assert flora["bytes_down_per_client"] > 4 * fedex["bytes_up_per_client"]
    assert fedex["bytes_up_per_client"] == flora["bytes_up_per_client"]
    assert fedsa["bytes_up_per_client"] < fedex["bytes_up_per_client"]


@pytest.mark.parametrize("name", ("fedex", "flora"))
def test_saved_model_is_the_folded_w0_plus_the_global_factors(workspace, runs, name):
    adapter = _tensors(runs[name] / ADAPTER_FILE)
    merged = _tensors(runs[name] / MODEL_FILE)
    state = split_prefixed(_tensors(runs[name] / STATE_FILE), "global.")
    assert adapter.keys() == state.keys()
    layer = "stages.1.0.conv2"
    w0 = adapter[f"{layer}.base_layer.weight"]
    pretrained = _tensors(workspace.pre / MODEL_FILE)[f"{layer}.weight"]
    assert not torch.equal(w0, pretrained)  # the server folded the clients' updates into it
    want = w0.double()
    if name == "fedex":
        b, a = adapter[f"{layer}.lora_B.weight"], adapter[f"{layer}.lora_A.weight"]
        want = (
            want
            + (ALPHA / RANK)
            * (b.reshape(32, RANK) @ a.reshape(RANK, -1)).reshape(w0.shape).double()
        )
    else:
        assert not any(".lora_" in k for k in adapter)  # new factors every round: none kept
    torch.testing.assert_close(merged[f"{layer}.weight"].double(), want, rtol=0, atol=1e-6)


class _Stop(Exception):
    """Stands in for a kill after a round's checkpoint."""


class Snapshots:
    """The checkpoint after every round of a run, and the round's sampled clients."""

    def __init__(self, path: Path):
        self.path, self.after = path, []

    def __call__(self, row: dict) -> None:
        state, _ = load_checkpoint(self.path / STATE_FILE)
        self.after.append((row["clients"], state))


def test_fedsa_keeps_each_clients_b_and_never_sends_it(workspace, tmp_path):
    out = tmp_path / "fedsa"
    snaps = Snapshots(out)
    cfg = workspace.config("method='fedsa'", "rounds=3", *SAMPLED)
    run_federated(cfg, out, cache_dir=workspace.cache, on_round=snaps)
    assert all(len(clients) == 2 for clients, _ in snaps.after)
    key = "stages.1.0.conv2.lora_B.weight"
    previous = None
    for clients, state in snaps.after:
        assert not any(k.startswith("global.") and "lora_B" in k for k in state)
        kept = {c: state[f"personal.{c}.{key}"] for c in range(3)}
        if previous is None:  # round 1: the sampled clients trained theirs, the other is 0
            assert all((float(kept[c].abs().sum()) > 0) == (c in clients) for c in range(3))
        else:
            for c in range(3):
                assert torch.equal(kept[c], previous[c]) == (c not in clients), c
        previous = kept
    assert not torch.equal(previous[0], previous[1])  # personal: not one B for all
    # the global model (saved adapter) has the clients' example-weighted mean B
    adapter = _tensors(out / ADAPTER_FILE)
    n = [len(u) for u in build_task(cfg, workspace.cache, SilentReporter()).units]
    mean = sum(w * previous[c].double() for c, w in enumerate(n)) / sum(n)
    torch.testing.assert_close(adapter[key].double(), mean, rtol=0, atol=1e-6)


def _comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.parametrize("name", NEW)
def test_resumed_run_ends_bit_identical(workspace, tmp_path, name):
    """Stopped after round 2's checkpoint and resumed: the rows, the final adapter and the
    checkpoint (fedsa: every client's B) are those of the uninterrupted run."""
    overrides = (f"method='{name}'", "rounds=4", *SAMPLED)
    reference = tmp_path / "reference"
    workspace.run(reference, *overrides)

    def stop(row: dict) -> None:
        if row["round"] == 2:
            raise _Stop

    out = tmp_path / "resumed"
    with pytest.raises(_Stop):
        run_federated(workspace.config(*overrides), out, cache_dir=workspace.cache, on_round=stop)
    kept = [k for k in _tensors(out / STATE_FILE) if k.startswith("personal.")]
    assert bool(kept) == (name == "fedsa")
    run_federated(None, out, cache_dir=workspace.cache, resume=True)
    assert _comparable(read_rows(out)) == _comparable(read_rows(reference))
    for file in (ADAPTER_FILE, STATE_FILE):
        a, b = _tensors(out / file), _tensors(reference / file)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), file


# -- Flower ----------------------------------------------------------------------------------


def test_fedex_on_flower_gives_the_embedded_numbers(workspace, runs, tmp_path):
    pytest.importorskip("flwr.simulation")
    pytest.importorskip("ray")
    flower = tmp_path / "flower"
    flower_run(workspace, flower, "method='fedex'")
    local = runs["fedex"]
    close(read_rows(local), read_rows(flower), "metrics")
    for name in (ADAPTER_FILE, STATE_FILE):
        a, b = _tensors(local / name), _tensors(flower / name)
        assert any("base_layer" in k for k in a), name
        assert_same_tensors(a, b, name)
    ev_l, ev_f = (json.loads((d / "evaluation.json").read_text()) for d in (local, flower))
    close(ev_l, ev_f, "evaluation")
