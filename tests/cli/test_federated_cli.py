"""`fedsb run` / `fedsb federate`: dry run, a tiny end-to-end run, resume, bad input (exit 2)."""

from __future__ import annotations

import json

import pytest

from fedsb.cli import main

from ..overrides import FRONTEND_OFF, set_flags
from .test_data_cli import run

TINY = [
    "--set", "data.classes='bpsk,qpsk,gfsk'",
    "--set", "data.generator.length=256",
    "--set", "data.images.size=16",
    "--set", "data.images.channels='spectrogram,constellation_comp'",
    *set_flags(FRONTEND_OFF),  # in both the tiny backbone and its runs
]  # fmt: skip
TINY_RUN = [
    *TINY,
    "--set", "partition.records_per_client=40",
    "--set", "partition.val_per_class=2",
    "--set", "partition.test_per_class=6",
    "--set", "adapter.rank=4",
    "--set", "adapter.init_samples=24",
    "--set", "client.batch_size=16",
    "--set", "threads=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """A tiny pretrained backbone made with `fedsb pretrain` (the run dir is the spec)."""
    root = tmp_path_factory.mktemp("fedcli")
    argv = [
        "pretrain", "--out", str(root / "pre"), "--cache", str(root / "cache"), *TINY,
        "--set", "data.per_class=16", "--set", "val_per_class=4", "--set", "test_per_class=4",
        "--set", "train.epochs=1", "--set", "train.batch_size=16", "--set", "train.threads=1",
        "--set", "model.widths=[8, 16]", "--set", "model.blocks=[1, 1]",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code in (0, None)
    return root


def test_dry_run_prints_the_client_by_class_table(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["federate", "--dry-run", "--clients", "4", *TINY], capsys)
    assert code == 0
    assert "partition: 4 clients" in out
    for name in ("bpsk", "qpsk", "gfsk", "SNR dB", "channel"):
        assert name in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1", "2", "3"]
    assert all(int(r[4]) == sum(int(c) for c in r[1:4]) for r in rows)  # total = sum of counts
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_run_writes_the_run_dir_and_refuses_to_overwrite_it(backbone, capsys):
    out = backbone / "fed"
    argv = [
        "run", "--out", str(out), "--cache", str(backbone / "cache"), "--clients", "3",
        "--rounds", "2", "--set", f"pretrained='{backbone / 'pre'}'", *TINY_RUN,
    ]  # fmt: skip
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    assert "rounds" in stdout and "accuracy % per SNR" in stdout
    for name in ("config.toml", "partition.json", "metrics.jsonl", "state.safetensors",
                 "adapter.safetensors", "model.safetensors"):  # fmt: skip
        assert (out / name).exists(), name
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows] == ["init", "round", "round", "final"]
    assert "agreement" in stdout and f"{rows[1]['update_agreement']:.2f}" in stdout
    # a second run into the same directory would mix two runs: refused, nothing changed
    before = (out / "metrics.jsonl").read_bytes()
    code, _, err = run(argv, capsys)
    assert code == 2 and "already holds a run" in err and len(err.strip().splitlines()) == 1
    assert (out / "metrics.jsonl").read_bytes() == before
    # resuming a finished run trains nothing more and ends with the same rows
    code, _, err = run(["run", "--resume", str(out), "--cache", str(backbone / "cache")], capsys)
    assert code == 0, err
    again = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in again] == ["init", "round", "round", "final"]
    assert again[-1]["test_acc"] == rows[-1]["test_acc"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--out", "x", "--method", "bogus"], "'bogus' is not one of"),
        (["run", "--dry-run", "--set", "server.min_clients=20"], "exceeds partition.clients"),
        (["run", "--dry-run", "--set", "attack.clients=[12]"], "not client ids"),
        (["run", "--dry-run", "--set", "server.aggregation='mode'"], "'mode' is not one of"),
        (
            ["run", "--dry-run", "--set", "partition.dirichlet_alpha=-1"],
            "partition.dirichlet_alpha: must be >= 0, got -1.0",
        ),
        (["run", "--dry-run", "--dp-epsilon", "-2"], "dp.epsilon: must be >= 0, got -2.0"),
        (["run", "--dry-run", "--engine", "spark"], "engine: 'spark' is not one of"),
        (["run"], "--out is required"),
        (["run", "--resume", "nowhere"], "nothing to resume"),
        (["run", "--resume", "nowhere", "--method", "fedit"], "drop other options"),
    ],
)
def test_bad_federated_input_is_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0], err
