"""LoRA-SB's round 0: the sketch against numpy's SVD, exact byte counts, client sampling."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from fedsb.config import load_config
from fedsb.data.config import PartitionConfig
from fedsb.federated.aggregate import payload_bytes
from fedsb.federated.config import RunConfig, ServerConfig
from fedsb.federated.payload import SCALES, decode, encode_fixed
from fedsb.federated.round0 import (
    GRADIENTS,
    PROJECT,
    RANGE,
    SEED_BYTES,
    init_basis,
    round0_reply,
    sketch_width,
)
from fedsb.federated.rounds import (
    FederatedError,
    basis_newcomers,
    init_participants,
    sample_clients,
)
from fedsb.federated.task import build_task
from fedsb.models.adapters import matrix_shape
from fedsb.models.checkpoint import load_checkpoint
from fedsb.models.lora_sb_init import lora_sb_basis, lora_sb_layers
from fedsb.models.state import AdapterStateError
from fedsb.reporter import SilentReporter
from fedsb.runs import BASIS_FILE, CONFIG_FILE

from .conftest import read_rows

SKETCH = "init_source='sketch'"


@pytest.fixture(scope="module")
def task_cfg(workspace):
    cfg = workspace.config(SKETCH)
    return build_task(cfg, workspace.cache, SilentReporter()), cfg


def _low_rank_gradients(model, rank: int, clients: int, seed: int = 0) -> list[dict]:
    """Per client, a gradient of rank ``rank`` per layer, all in one common subspace."""
    gen = torch.Generator().manual_seed(seed)
    out: list[dict] = [{} for _ in range(clients)]
    for name, layer in lora_sb_layers(model).items():
        d_out, d_in = matrix_shape(layer.base_layer)
        u, v = torch.randn(d_out, rank, generator=gen), torch.randn(rank, d_in, generator=gen)
        for grads in out:
            mix = torch.randn(rank, rank, generator=gen)
            grads[name] = (u @ mix @ v).reshape(layer.base_layer.weight.shape)
    return out


def _ask_from(model, cfg, gradients, log=None):
    def ask(ids, stage, sent):
        if log is not None:
            log.append((stage, sorted(sent)))
        return [round0_reply(gradients[i], model, cfg, stage, sent) for i in ids]

    return ask


def test_the_sketch_recovers_the_top_subspace_of_a_low_rank_sum(task_cfg, workspace):
    task, cfg = task_cfg
    rank = 3  # every layer's gradient sum has rank 3 <= k: the range finder is exact
    grads = _low_rank_gradients(task.model, rank, 3)
    log: list = []
    init_basis(task, cfg, workspace.cache, _ask_from(task.model, cfg, grads, log), ids=[0, 1, 2])
    assert [stage for stage, _ in log] == [RANGE, PROJECT]
    for name, layer in lora_sb_layers(task.model).items():
        d_out, d_in = matrix_shape(layer.base_layer)
        total = sum(g[name] for g in grads).reshape(d_out, d_in).double().numpy()
        u, s, vh = np.linalg.svd(total)  # the reference: numpy's SVD of the true sum
        r = layer.rank
        b = layer.lora_B.weight.detach().reshape(d_out, r).double().numpy()
        a = layer.lora_A.weight.detach().reshape(r, d_in).double().numpy()
        R = layer.lora_R.weight.detach().double().numpy()
        step = b @ R @ a
        # ΔW ≈ −c·Σ G: the rank-r truncation, scaled to RMS lr over the whole matrix
        c = cfg.adapter.init_lr * math.sqrt(d_out * d_in) / np.linalg.norm(s[:rank])
        want = -c * (u[:, :r] * s[:r]) @ vh[:r]
        np.testing.assert_allclose(step, want, rtol=1e-3, atol=1e-5 * np.abs(want).max())
        np.testing.assert_allclose(b.T @ b, np.eye(r), atol=1e-5)  # B, A orthonormal
        np.testing.assert_allclose(a @ a.T, np.eye(r), atol=1e-5)


def test_sketch_bytes_are_the_seed_q_and_the_replies(task_cfg, workspace):
    task, cfg = task_cfg
    grads = _low_rank_gradients(task.model, 2, 3, seed=1)
    init = init_basis(task, cfg, workspace.cache, _ask_from(task.model, cfg, grads), ids=[0, 2])
    layers = lora_sb_layers(task.model)
    floats_up = floats_q = 0
    for layer in layers.values():
        (d_out, d_in), k = matrix_shape(layer.base_layer), sketch_width(layer, cfg)
        assert k == min(layer.rank + cfg.init_oversample, d_out, d_in)
        floats_up += d_out * k + k * d_in
        floats_q += d_out * k
    header = 2048  # each payload is safetensors: 4 bytes a float plus a small JSON header
    assert init["clients"] == 2
    assert 2 * 4 * floats_up < init["bytes_up"] < 2 * (4 * floats_up + 2 * header)
    basis = payload_bytes(lora_sb_basis(task.model))
    q_down = init["bytes_down"] - 2 * basis
    assert 2 * (SEED_BYTES + 4 * floats_q) < q_down < 2 * (SEED_BYTES + 4 * floats_q + header)
    full = sum(4 * m.base_layer.weight.numel() for m in layers.values())
    assert init["bytes_up"] < 2 * full  # cheaper than the summed gradients


def test_a_bad_round0_reply_names_the_client(task_cfg, workspace):
    task, cfg = task_cfg
    grads = _low_rank_gradients(task.model, 2, 3, seed=2)
    name = next(iter(grads[1]))
    grads[1][name] = grads[1][name][:1]  # a truncated gradient from client 1
    clients = replace(cfg, init_source="clients")
    ask = _ask_from(task.model, clients, grads)
    with pytest.raises(FederatedError, match=rf"^round 0: client 1: reply: key .{name}.: shape"):
        init_basis(task, clients, workspace.cache, ask, ids=[0, 1, 2])
    grads[1][name] = torch.full_like(grads[0][name], float("nan"))
    nan = r"^round 0: client 1: reply: key .*: \d+ NaN and 0 Inf"
    with pytest.raises(FederatedError, match=nan):
        init_basis(task, clients, workspace.cache, ask, ids=[0, 1, 2])


def test_a_client_refuses_a_malformed_q(task_cfg):
    task, cfg = task_cfg
    grads = _low_rank_gradients(task.model, 2, 1, seed=3)[0]
    name = next(iter(grads))
    with pytest.raises(AdapterStateError, match=r"^round 0: Q: (missing keys|key '.*': shape)"):
        round0_reply(grads, task.model, cfg, PROJECT, {name: torch.zeros(3, 3)})
    with pytest.raises(ValueError, match=r"unknown stage 'moon'"):
        round0_reply(grads, task.model, cfg, "moon", {})
    assert round0_reply(grads, task.model, cfg, GRADIENTS, {}) is grads


def test_round0_clients_follow_the_sampling():
    cfg = RunConfig(partition=PartitionConfig(clients=10))
    assert init_participants(cfg, 10) == list(range(10))  # fraction 1: everyone
    few = replace(cfg, server=ServerConfig(fraction=0.3))
    picked = init_participants(few, 10)
    assert len(picked) == 3 and picked == init_participants(few, 10)  # seeded
    two = replace(few, init_clients=2)
    assert len(init_participants(two, 10)) == 2


def test_basis_newcomers_count_each_client_once():
    cfg = RunConfig(partition=PartitionConfig(clients=20), server=ServerConfig(fraction=0.2))
    seen = set(init_participants(cfg, 20))
    for t in range(1, 8):
        ids = sample_clients(cfg, t, 20)
        assert basis_newcomers(cfg, t, ids, 20) == len(set(ids) - seen)
        seen |= set(ids)
    proxy = replace(cfg, init_source="proxy")
    assert basis_newcomers(proxy, 1, sample_clients(proxy, 1, 20), 20) == 4


def test_a_sampled_round0_counts_the_basis_once_per_client(workspace, tmp_path):
    out = tmp_path / "run"
    workspace.run(
        out, SKETCH, "partition.clients=4", "server.fraction=0.5", "rounds=3", "init_clients=1"
    )
    rows = read_rows(out)
    init, rounds = rows[0], rows[1:-1]
    basis = payload_bytes(load_checkpoint(out / BASIS_FILE)[0])
    assert init["init_clients"] == 1
    got = set(init_participants(load_config(RunConfig, out / CONFIG_FILE), 4))
    assert len(got) == 1
    total = init["cumulative_bytes"]
    for r in rounds:
        new = set(r["clients"]) - got
        assert r["basis_bytes"] == len(new) * basis
        got |= new
        total += r["round_bytes"]
        assert r["cumulative_bytes"] == total
    assert init["cumulative_bytes"] == init["bytes_up_per_client"] + init["bytes_down_per_client"]


def test_the_full_gradient_round0_sends_one_weight_sized_gradient_per_layer(workspace, tmp_path):
    out = tmp_path / "run"
    workspace.run(out, "init_source='clients'")
    init = read_rows(out)[0]
    basis, _ = load_checkpoint(out / BASIS_FILE)
    layers = {k.rsplit(".lora_", 1)[0] for k in basis}
    full = sum(
        basis[f"{n}.lora_B.weight"].shape[0] * basis[f"{n}.lora_A.weight"][0].numel()
        for n in layers
    )
    assert init["init_source"] == "clients" and init["init_clients"] == 3
    assert 4 * full < init["bytes_up_per_client"] < 4 * full + 2048
    assert init["bytes_down_per_client"] == payload_bytes(basis)  # B and A only
    assert init["cumulative_bytes"] == 3 * (
        init["bytes_up_per_client"] + init["bytes_down_per_client"]
    )


def test_an_int8_round0_sends_int8_replies_and_an_fp16_basis(task_cfg, workspace):
    """Under ``client.payload = 'int8'`` the replies are int8 (one scale per tensor), Q, B and A
    go in fp16, and the server keeps the basis exactly as the clients decode it."""
    task, cfg = task_cfg
    int8 = replace(cfg, client=replace(cfg.client, payload="int8"))
    grads = _low_rank_gradients(task.model, 3, 3, seed=4)
    log: list = []
    replies: list = []

    def ask(ids, stage, sent):
        log.append({k: v.dtype for k, v in sent.items()})
        out = [round0_reply(grads[i], task.model, int8, stage, sent) for i in ids]
        replies.extend(out)
        return out

    init = init_basis(task, int8, workspace.cache, ask, ids=[0, 1, 2])
    assert {t.dtype for r in replies for k, t in r.items() if k != SCALES} == {torch.int8}
    assert set(log[1].values()) == {torch.float16}  # Q
    assert init["bytes_up"] == sum(payload_bytes(r) for r in replies)
    basis = lora_sb_basis(task.model)
    for key, value in basis.items():  # fp16 values: every node decodes these very numbers
        assert torch.equal(value, value.half().float()), key
    half = {k: v.half() for k, v in basis.items()}
    q = {  # what Q holds, as computed from the shapes alone
        n: torch.zeros(matrix_shape(m.base_layer)[0], sketch_width(m, cfg), dtype=torch.float16)
        for n, m in lora_sb_layers(task.model).items()
    }
    assert init["bytes_down"] == 3 * (SEED_BYTES + payload_bytes(q) + payload_bytes(half))
    numbers = sum(t.numel() for r in replies for k, t in r.items() if k != SCALES)
    step = _steps(task.model)
    fp32 = init_basis(task, cfg, workspace.cache, _ask_from(task.model, cfg, grads), ids=[0, 1, 2])
    assert 4 * numbers < fp32["bytes_up"]  # the same numbers, 4 bytes each in fp32
    for name, exact in _steps(task.model).items():  # int8 moves the first step by ~1 %
        assert float((step[name] - exact).norm() / exact.norm()) < 0.05, name


def test_an_int8_basis_halves_b_and_a_and_every_node_decodes_the_same_bits(task_cfg, workspace):
    """``client.basis_payload = 'int8'``: Q, B and A in int8 (power-of-two scales)."""
    task, cfg = task_cfg
    int8 = replace(cfg, client=replace(cfg.client, payload="int8", basis_payload="int8"))
    grads = _low_rank_gradients(task.model, 3, 3, seed=4)
    sent_q: list = []

    def ask(ids, stage, sent):
        sent_q.append(sent)
        return [round0_reply(grads[i], task.model, int8, stage, sent) for i in ids]

    init = init_basis(task, int8, workspace.cache, ask, ids=[0, 1])
    assert {t.dtype for k, t in sent_q[1].items() if k != SCALES} == {torch.int8}  # Q
    basis = lora_sb_basis(task.model)
    wire = encode_fixed(basis, "int8")  # what a newcomer gets later, from the kept values
    kept = decode(wire, "int8")
    assert all(torch.equal(kept[k], basis[k]) for k in basis)  # the server's is the nodes'
    assert {t.dtype for k, t in wire.items() if k != SCALES} == {torch.int8}
    half = payload_bytes({k: v.half() for k, v in basis.items()})
    assert payload_bytes(wire) < 0.51 * half + 4096  # one byte a number, plus the header
    assert init["bytes_down"] == 2 * (SEED_BYTES + payload_bytes(sent_q[1]) + payload_bytes(wire))
    fp32_steps = _steps(task.model)
    init_basis(task, cfg, workspace.cache, _ask_from(task.model, cfg, grads), ids=[0, 1])
    for name, exact in _steps(task.model).items():  # int8's basis moves the first step a little
        assert float((fp32_steps[name] - exact).norm() / exact.norm()) < 0.05, name


def _steps(model) -> dict[str, torch.Tensor]:
    """B·R·A of every lora-sb layer: the first step round 0 sets."""
    out = {}
    for name, layer in lora_sb_layers(model).items():
        d_out, d_in = matrix_shape(layer.base_layer)
        b = layer.lora_B.weight.detach().reshape(d_out, -1)
        a = layer.lora_A.weight.detach().reshape(-1, d_in)
        out[name] = b @ layer.lora_R.weight.detach() @ a
    return out
