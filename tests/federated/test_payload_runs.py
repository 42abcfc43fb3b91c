"""``client.payload`` end to end on the tiny workspace: the rows count the bytes of the tensors
really sent (computed here from the shapes and dtypes alone), int8's residuals are kept per
client in the checkpoint and survive a resume, a faulty int8 client is refused with one line,
and the Flower simulation gives the embedded engine's numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

from fedsb.federated.engines import run_federated
from fedsb.federated.progress import split_prefixed
from fedsb.models.checkpoint import load_checkpoint
from fedsb.runs import ADAPTER_FILE, STATE_FILE

from .conftest import fedsb_task, read_rows
from .engine_compare import assert_same_tensors, close, flower_run

KINDS = ("fp32", "fp16", "int8")
# SGD: AdamW's first step, lr * g / (|g| + eps), turns a gradient near 0 into +-lr on either
# side of a last-bit difference (the engines' float32 sums, or fp16's rounding of the start),
# so two runs may differ by a whole step where SGD's step, linear in g, differs by the rounding
BASE = ("rounds=3", "client.optimizer='sgd'")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "int8": torch.int8}
# int8 sends its basis (round 0's Q, B and A) in int8 too, so both engines meet both bases
BASIS = {"fp32": (), "fp16": (), "int8": ("client.basis_payload='int8'",)}


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[0]


@pytest.fixture(scope="module")
def runs(workspace, tmp_path_factory) -> dict[str, Path]:
    """fedsb, 3 clients x 3 rounds (SGD), in each precision, on the embedded engine."""
    root = tmp_path_factory.mktemp("payload")
    for kind in KINDS:
        workspace.run(root / kind, f"client.payload='{kind}'", *BASIS[kind], *BASE)
    return {kind: root / kind for kind in KINDS}


def _wire_size(shapes: dict[str, torch.Size], kind: str) -> int:
    """Serialized size of tensors of these shapes in ``kind``, + int8's one scale per tensor."""
    tensors = {k: torch.zeros(s, dtype=DTYPES[kind]) for k, s in shapes.items()}
    if kind == "int8":
        tensors["payload.scales"] = torch.zeros(len(shapes))
    return len(st_save(tensors))


@pytest.mark.parametrize("kind", KINDS)
def test_the_rows_count_the_bytes_on_the_wire(runs, kind):
    shapes = {
        k: v.shape for k, v in split_prefixed(_tensors(runs[kind] / STATE_FILE), "global.").items()
    }
    size = _wire_size(shapes, kind)  # fedsb sends every key of its global state, both ways
    numel = sum(math.prod(s) for s in shapes.values())
    per_number = {"fp32": 4, "fp16": 2, "int8": 1}[kind]
    assert per_number * numel < size < per_number * numel + 8 + 100 * (len(shapes) + 1)
    rows = read_rows(runs[kind])
    total = rows[0]["cumulative_bytes"]
    for row in rows[1:-1]:
        assert row["bytes_down_per_client"] == row["bytes_up_per_client"] == size
        assert row["round_bytes"] == 3 * 2 * size + row.get("basis_bytes", 0)
        total += row["round_bytes"]
        assert row["cumulative_bytes"] == total
        assert row["accepted"] == [0, 1, 2] and row["params_per_client"] == numel


def test_lower_precision_moves_the_model_about_as_fp32_does(workspace, runs):
    """The drift from fp32's final state is a small part of how far fp32 moved the model."""
    start = fedsb_task(workspace, *BASE)[2]
    final = {k: split_prefixed(_tensors(p / STATE_FILE), "global.") for k, p in runs.items()}

    def dist(a: dict, b: dict) -> float:
        return math.sqrt(sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in a))

    moved = dist(final["fp32"], start)
    assert moved > 0
    assert dist(final["fp16"], final["fp32"]) < 0.01 * moved
    assert dist(final["int8"], final["fp32"]) < 0.05 * moved  # measured: 0.12 % and 0.5 %
    accuracy = {k: read_rows(p)[-1]["test_acc"] for k, p in runs.items()}
    assert abs(accuracy["int8"] - accuracy["fp32"]) <= 0.05, accuracy


def test_int8_clients_keep_their_residuals_in_the_checkpoint(runs):
    state = _tensors(runs["int8"] / STATE_FILE)
    glob = split_prefixed(state, "global.")
    for client in range(3):
        kept = split_prefixed(state, f"personal.{client}.")
        assert set(kept) == {f"ef.{k}" for k in glob}, client
        for key, value in kept.items():
            assert (
                value.shape == glob[key.removeprefix("ef.")].shape and torch.isfinite(value).all()
            )
        assert any(bool(v.abs().max() > 0) for v in kept.values())
    for kind in ("fp32", "fp16"):  # nothing to keep
        assert not any(k.startswith("personal.") for k in _tensors(runs[kind] / STATE_FILE))
    assert "global_model_test_acc" not in read_rows(runs["int8"])[-2]  # no personal model


def test_a_resumed_int8_run_ends_bit_identical(workspace, tmp_path):
    """Sampled clients (2 of 3): a client without a residual yet, and residuals resumed."""
    overrides = ("client.payload='int8'", "rounds=4", "server.fraction=0.6")
    reference = tmp_path / "reference"
    workspace.run(reference, *overrides)

    class Stop(Exception):
        pass

    def stop(row: dict) -> None:
        if row["round"] == 2:
            raise Stop

    out = tmp_path / "resumed"
    with pytest.raises(Stop):
        run_federated(workspace.config(*overrides), out, cache_dir=workspace.cache, on_round=stop)
    run_federated(None, out, cache_dir=workspace.cache, resume=True)
    comparable = [
        [{k: v for k, v in r.items() if k != "seconds"} for r in read_rows(run)]
        for run in (out, reference)
    ]
    assert comparable[0] == comparable[1]
    for file in (ADAPTER_FILE, STATE_FILE):
        a, b = _tensors(out / file), _tensors(reference / file)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), file
        assert file == ADAPTER_FILE or any(".ef." in k for k in a)


def test_a_faulty_int8_client_is_left_out_with_one_line(workspace, tmp_path):
    out = tmp_path / "nan"
    workspace.run(out, "client.payload='int8'", "attack.kind='nan'", "attack.clients=[1]")
    rows = read_rows(out)
    n_keys = len(split_prefixed(_tensors(out / STATE_FILE), "global."))
    for row in rows[1:-1]:
        assert row["accepted"] == [0, 2]
        assert row["dropped"] == {
            "1": f"int8 update: key 'payload.scales': {n_keys} NaN and 0 Inf values"
        }
    kept = split_prefixed(_tensors(out / STATE_FILE), "personal.1.")
    assert kept and all(torch.equal(v, torch.zeros_like(v)) for v in kept.values())  # reset


@pytest.mark.parametrize(("name", "keys"), [("flora", ("head.",)), ("fedsa", ("head.", "lora_A"))])
def test_only_tensors_that_start_from_the_global_state_keep_a_residual(
    workspace, tmp_path, name, keys
):
    """flora's factors are new every round: a residual of last round's would be noise."""
    out = tmp_path / name
    workspace.run(out, f"method='{name}'", "client.payload='int8'")
    kept = split_prefixed(_tensors(out / STATE_FILE), "personal.0.")
    ef = [k for k in kept if k.startswith("ef.")]
    assert ef and all(any(s in k for s in keys) for k in ef), ef
    assert ("lora_A" in str(ef)) == (name == "fedsa")
    assert any("lora_B" in k for k in kept) == (name == "fedsa")  # fedsa's own B beside them


# -- Flower ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ("fp16", "int8"))
def test_flower_gives_the_embedded_numbers(workspace, runs, tmp_path, kind):
    """The nodes keep their residuals in their Context: same rows, states and calibration.

    SGD (``BASE``): the engines' float32 sums differ in the last bits. A node that lost its
    residual would be off by up to half a step per round (~1e-4 here), beyond the tolerance.
    """
    pytest.importorskip("flwr.simulation")
    pytest.importorskip("ray")
    local, flower = runs[kind], tmp_path / "flower"
    flower_run(workspace, flower, f"client.payload='{kind}'", *BASIS[kind], *BASE)
    rows_l, rows_f = read_rows(local), read_rows(flower)
    assert "global_model_test_acc" not in rows_l[-1]  # residuals are not a client's model
    close(rows_l, rows_f, "metrics")
    assert_same_tensors(_tensors(local / ADAPTER_FILE), _tensors(flower / ADAPTER_FILE))
    glob = [split_prefixed(_tensors(d / STATE_FILE), "global.") for d in (local, flower)]
    assert_same_tensors(*glob)
    ev_l, ev_f = (json.loads((d / "evaluation.json").read_text()) for d in (local, flower))
    close(ev_l, ev_f, "evaluation")
