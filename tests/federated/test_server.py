"""The server loop end to end: metrics rows, measured communication, checkpoints, run directories,
worker processes and the server optimiser."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import fedsb.federated.engine_local as engine_local
import fedsb.models.checkpoint as checkpoint
from fedsb.federated.aggregate import parameter_count, payload_bytes
from fedsb.federated.engines import run_federated
from fedsb.federated.progress import Progress, Totals, save_progress, split_prefixed
from fedsb.federated.round0 import SEED_BYTES
from fedsb.federated.server import FederatedError, prepare
from fedsb.models.checkpoint import load_checkpoint
from fedsb.runs import ADAPTER_FILE, BASIS_FILE, STATE_FILE, RunDir

from .conftest import read_rows

RANK = 4


def _global(path: Path) -> dict[str, torch.Tensor]:
    state, _ = load_checkpoint(path / STATE_FILE)
    return split_prefixed(state, "global.")


def _adapter(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path / ADAPTER_FILE)[0]


def _stray_files(path: Path) -> list[str]:
    """Temporary files of atomic writes (hidden files or *.tmp) left in the run directory."""
    return sorted(p.name for p in path.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def _without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


class Recorded:
    """A run plus what was observed while it ran."""

    def __init__(self, path: Path):
        self.path = path
        self.blobs: list[int] = []  # sizes of every blob the engine serialised, in order
        self.after_round: list[dict] = []  # per round: checkpoint round, state, stray files

    def on_round(self, row: dict) -> None:
        state, meta = load_checkpoint(self.path / STATE_FILE)
        self.after_round.append(
            {"row": row["round"], "meta": meta, "state": state, "stray": _stray_files(self.path)}
        )


def _recorded_run(workspace, path: Path, *overrides: str) -> Recorded:
    rec = Recorded(path)
    real = engine_local.serialize

    def serialize(state):
        blob = real(state)
        rec.blobs.append(len(blob))
        return blob

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine_local, "serialize", serialize)
        cfg = workspace.config(*overrides)
        run_federated(cfg, path, cache_dir=workspace.cache, on_round=rec.on_round)
    return rec


@pytest.fixture(scope="module")
def small(workspace, tmp_path_factory) -> Recorded:
    """3 clients x 2 rounds, sequential engine, every serialised payload and checkpoint seen."""
    return _recorded_run(workspace, tmp_path_factory.mktemp("server") / "small")


@pytest.fixture(scope="module")
def six_clients(workspace, tmp_path_factory) -> Recorded:
    """Twice the clients, half the records each: the same payloads per client."""
    path = tmp_path_factory.mktemp("server") / "six"
    return _recorded_run(workspace, path, "partition.clients=6", "partition.records_per_client=30")


# -- metrics rows --------------------------------------------------------------------------


def test_rows_have_the_init_round_and_final_stages(small):
    rows = read_rows(small.path)
    assert [r["stage"] for r in rows] == ["init", "round", "round", "final"]
    assert [r["round"] for r in rows] == [0, 1, 2, 2]
    for r in rows:
        assert 0.0 <= r["test_acc"] <= 1.0 and math.isfinite(r["test_loss"])
        assert r["test_acc_by_snr"] and all(0 <= a <= 1 for a in r["test_acc_by_snr"].values())
    for r in rows[1:3]:
        assert r["clients"] == r["accepted"] == [0, 1, 2] and r["dropped"] == {}
        assert math.isfinite(r["train_loss"]) and 0 <= r["train_acc"] <= 1
        assert r["lr"] > 0 and r["seconds"] > 0
        assert 0.0 < r["update_agreement"] <= 1.0  # three different clients: never parallel
        assert r["update_agreement"] < 1.0 - 1e-6
    # the cosine schedule: round 2 of 2 takes a smaller step than round 1
    assert rows[2]["lr"] < rows[1]["lr"]
    # the final row scores the state of the last round again
    assert rows[-1]["test_acc"] == rows[-2]["test_acc"]
    assert rows[-1]["test_loss"] == pytest.approx(rows[-2]["test_loss"], rel=1e-6)
    assert len(rows[-1]["client_test_acc"]) == 3


def test_round_bytes_are_the_serialised_payloads(small):
    rows = read_rows(small.path)
    rounds = [r for r in rows if r["stage"] == "round"]
    # per round the engine serialised the global state once (down) and each client's answer (up)
    assert len(small.blobs) == 4 * len(rounds)
    for i, r in enumerate(rounds):
        down, *ups = small.blobs[4 * i : 4 * i + 4]
        assert r["bytes_down_per_client"] == down
        assert r["bytes_up_per_client"] == sum(ups) / len(ups)
        assert r["round_bytes"] == down * len(r["clients"]) + sum(ups)
    # ... which is the safetensors size of the global state: header + 4 bytes per parameter
    glob = _global(small.path)
    assert rounds[0]["bytes_down_per_client"] == payload_bytes(glob)
    assert rounds[0]["bytes_up_per_client"] == payload_bytes(glob)
    assert payload_bytes(glob) > 4 * parameter_count(glob)
    assert payload_bytes(glob) < 4 * parameter_count(glob) + 2048  # the JSON header is small


def test_cumulative_bytes_are_the_running_sum(small):
    rows = read_rows(small.path)
    init, rounds, final = rows[0], rows[1:-1], rows[-1]
    n = len(rounds[0]["clients"])  # every client sent its round-0 gradients
    assert init["cumulative_bytes"] == n * (
        init["bytes_up_per_client"] + init["bytes_down_per_client"]
    )
    total = init["cumulative_bytes"]
    for r in rounds:
        total += r["round_bytes"]
        assert r["cumulative_bytes"] == total
    # after the last round: the final exchanges (if any), e.g. federated calibration
    extra = final.get("calibration_bytes_per_client", 0.0) * n
    assert final["total_bytes"] == total + extra
    per_round = [r["bytes_up_per_client"] + r["bytes_down_per_client"] for r in rounds]
    assert final["bytes_per_round_per_client"] == pytest.approx(sum(per_round) / len(rounds))


def test_init_bytes_are_the_sketch_up_and_q_and_the_basis_down(small):
    init = read_rows(small.path)[0]
    basis, _ = load_checkpoint(small.path / BASIS_FILE)
    assert init["init_source"] == "sketch" and init["init_clients"] == 3
    # each client sent G·Ω (d_out x k) and Qᵀ·G (k x d_in) per adapted base weight, where the
    # basis holds B (d_out x r) and A (r x d_in), k = r + init_oversample at most min(d_out, d_in)
    layers = {k.rsplit(".lora_", 1)[0] for k in basis}
    up = q = 0
    for n in layers:
        d_out, d_in = basis[f"{n}.lora_B.weight"].shape[0], basis[f"{n}.lora_A.weight"][0].numel()
        k = min(RANK + 8, d_out, d_in)
        up, q = up + k * (d_out + d_in), q + d_out * k
    assert 4 * up < init["bytes_up_per_client"] < 4 * up + 2 * 2048  # two safetensors payloads
    down = init["bytes_down_per_client"] - payload_bytes(basis) - SEED_BYTES  # then Q went down
    assert 4 * q < down < 4 * q + 2048
    full = sum(
        basis[f"{n}.lora_B.weight"].shape[0] * basis[f"{n}.lora_A.weight"][0].numel()
        for n in layers
    )
    assert init["bytes_up_per_client"] < 4 * full  # less than the summed gradients would be


def test_params_count_is_r_squared_per_layer_plus_the_head(small):
    rows = read_rows(small.path)
    glob = _global(small.path)
    r_keys = [k for k in glob if k.endswith(".lora_R.weight")]
    assert r_keys and set(glob) == {*r_keys, "head.weight", "head.bias"}
    assert all(glob[k].shape == (RANK, RANK) for k in r_keys)
    expected = len(r_keys) * RANK**2 + glob["head.weight"].numel() + glob["head.bias"].numel()
    assert all(r["params_per_client"] == expected for r in rows if r["stage"] == "round")
    assert rows[-1]["trained_parameters"] == expected == parameter_count(_adapter(small.path))


def test_fedsb_communication_does_not_depend_on_the_client_count(small, six_clients):
    a, b = read_rows(small.path), read_rows(six_clients.path)
    for ra, rb in zip(a[:-1], b[:-1]):  # init and every round
        for key in ("bytes_up_per_client", "bytes_down_per_client"):
            assert ra[key] == rb[key] > 0, key
    for ra, rb in zip(a[1:-1], b[1:-1]):
        assert ra["params_per_client"] == rb["params_per_client"]
        # the round total grows with the clients, linearly
        assert rb["round_bytes"] * 3 == ra["round_bytes"] * 6
    assert a[-1]["bytes_per_round_per_client"] == b[-1]["bytes_per_round_per_client"]


# -- checkpoints and run directories -------------------------------------------------------


def test_checkpoint_after_each_round_is_complete_and_leaves_no_temp_files(small):
    assert [s["row"] for s in small.after_round] == [1, 2]
    for snap in small.after_round:
        assert snap["stray"] == []
        assert snap["meta"]["kind"] == "federated-state"
        assert snap["meta"]["round"] == snap["row"]
        assert (
            snap["meta"]["totals"]["bytes"]
            == read_rows(small.path)[snap["row"]]["cumulative_bytes"]
        )
        keys = set(split_prefixed(snap["state"], "global."))
        assert keys == set(_adapter(small.path))
    # the global state moved from round 1 to round 2, and the last checkpoint is the adapter
    first, last = (s["state"] for s in small.after_round)
    assert any(not torch.equal(first[k], last[k]) for k in first)
    final = _adapter(small.path)
    assert all(torch.equal(last[f"global.{k}"], v) for k, v in final.items())
    assert _stray_files(small.path) == []


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    glob = {"head.bias": torch.arange(3.0)}
    save_progress(run.path / STATE_FILE, Progress(glob, {}, 1, Totals(10.0, (0,))))

    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\x00" * 10)  # a torn write: then the disk fills up
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", broken)
    with pytest.raises(OSError, match="No space left"):
        later = Progress({"head.bias": torch.zeros(3)}, {}, 2, Totals(20.0, (0,)))
        save_progress(run.path / STATE_FILE, later)
    state, meta = load_checkpoint(run.path / STATE_FILE)
    assert meta["round"] == 1 and torch.equal(state["global.head.bias"], torch.arange(3.0))


def test_prepare_refuses_to_overwrite_a_run(workspace, tmp_path):
    cfg = workspace.config()
    fresh = tmp_path / "fresh"
    assert prepare(fresh, cfg, resume=False)[0] is cfg
    for name in ("metrics.jsonl", STATE_FILE):
        used = tmp_path / f"used-{name}"
        used.mkdir()
        (used / name).write_text("x")
        with pytest.raises(FederatedError, match="already holds a run; pass --resume"):
            prepare(used, cfg, resume=False)
        assert [p.name for p in used.iterdir()] == [name]


def test_resume_needs_a_run_to_resume(workspace, tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(FederatedError, match="nothing to resume"):
        run_federated(None, missing, cache_dir=workspace.cache, resume=True)
    assert not missing.exists()  # nothing was created
    half = tmp_path / "half"  # killed before its first checkpoint: config but no state
    RunDir(half).save_config(workspace.config())
    with pytest.raises(FederatedError, match=f"{half}: nothing to resume .*{STATE_FILE}"):
        prepare(half, None, resume=True)


# -- engine and server optimiser -----------------------------------------------------------


def test_worker_processes_give_the_sequential_results(workspace, small, tmp_path):
    pooled = tmp_path / "pooled"
    workspace.run(pooled, "workers=2")
    assert _without_timing(read_rows(pooled)) == _without_timing(read_rows(small.path))
    a, b = _adapter(pooled), _adapter(small.path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fedadam_runs_keeps_its_state_and_differs_from_avg(workspace, small, tmp_path):
    lr, b1, b2, tau = 0.05, 0.9, 0.99, 1e-3
    rec = _recorded_run(
        workspace, tmp_path / "adam", "server.optimizer='fedadam'", f"server.lr={lr}"
    )
    rows = read_rows(rec.path)
    assert [r["stage"] for r in rows] == ["init", "round", "round", "final"]
    assert all(math.isfinite(r["test_loss"]) for r in rows)
    (s1, s2) = (s["state"] for s in rec.after_round)
    keys = list(split_prefixed(s2, "global."))
    assert set(s2) == {f"{p}.{k}" for k in keys for p in ("global", "opt.m", "opt.v")}
    # round 2 applied Adam with the stored moments: x2 = x1 + lr m2 / (sqrt(v2) + tau)
    for k in keys:
        m, v = s2[f"opt.m.{k}"], s2[f"opt.v.{k}"]
        assert m.dtype == v.dtype == torch.float64
        want = s1[f"global.{k}"].double() + lr * m / (v.sqrt() + tau)
        assert torch.allclose(s2[f"global.{k}"].double(), want, rtol=1e-5, atol=1e-6), k
        # and the moments are the running averages of the pseudo-gradients of rounds 1 and 2
        m1, v1 = s1[f"opt.m.{k}"], s1[f"opt.v.{k}"]
        d2 = (m - b1 * m1) / (1 - b1)
        assert torch.allclose(v, b2 * v1 + (1 - b2) * d2**2, rtol=1e-6, atol=1e-12), k
    adam, avg = _adapter(rec.path), _adapter(small.path)
    assert any(not torch.allclose(adam[k], avg[k], atol=1e-4) for k in adam)
    assert read_rows(small.path)[1]["test_loss"] != rows[1]["test_loss"]


def test_an_adapted_head_sends_its_r_instead_of_its_weights(workspace, small, tmp_path):
    """adapter.head = 'adapt': the head is one more LoRA-SB layer, so a round sends every R
    (the head's r = min(rank, classes)) and no head weight, and costs less than the default."""
    run = workspace.run(tmp_path / "adapt", "adapter.head='adapt'", "rounds=1").run
    glob = _global(run)
    assert "head.weight" not in glob and "head.bias" not in glob
    basis, _ = load_checkpoint(run / BASIS_FILE)
    classes = basis["head.lora_B.weight"].shape[0]
    r = min(RANK, classes)
    assert glob["head.lora_R.weight"].shape == (r, r)
    assert all(k.endswith(".lora_R.weight") for k in glob)
    adapted = [r for r in read_rows(run) if r["stage"] == "round"][0]
    default = [r for r in read_rows(small.path) if r["stage"] == "round"][0]
    assert adapted["params_per_client"] == parameter_count(glob)
    assert adapted["bytes_up_per_client"] < default["bytes_up_per_client"]


def test_one_client_fedsb_averages_nothing_away(workspace, tmp_path):
    """With every record on one client, averaging is the identity: each round's mean update is
    the client's own (what separates clients at 10 is the averaging)."""
    one = ("partition.clients=1", "server.min_clients=1", "partition.records_per_client=120")
    workspace.run(tmp_path / "fed", *one)
    rows = [r for r in read_rows(tmp_path / "fed") if r.get("stage") == "round"]
    assert [r["update_agreement"] for r in rows] == pytest.approx([1.0, 1.0])
