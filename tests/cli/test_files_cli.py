"""``--data``: pretrain, fine-tune and federate on the user's files, through the CLI."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from fedsb.io import save_records
from fedsb.models.checkpoint import load_checkpoint
from fedsb.signals import GeneratorConfig, generate

from ..overrides import FRONTEND_OFF, set_flags
from .test_data_cli import run

IMAGES = [
    "--set",
    "data.images.size=16",
    "--set",
    "data.images.channels=['spectrogram', 'constellation_comp']",
    *set_flags(FRONTEND_OFF),  # in the tiny backbones and their runs alike
]
TINY_MODEL = ["--set", "model.widths=[16, 32]", "--set", "model.blocks=[1, 1]"]
FAST = ["--set", "train.epochs=2", "--set", "train.batch_size=32", "--set", "train.threads=1"]
FED = ["--rounds", "1", "--set", "threads=1", "--set", "adapter.rank=2"]
FED += ["--set", "adapter.init_samples=32", "--set", "client.batch_size=16"]


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> Path:
    """Two sites, each an npz of 512-sample records (two 256-sample windows each)."""
    root = tmp_path_factory.mktemp("sites")
    for i, name in enumerate(("site_a", "site_b")):
        cfg = GeneratorConfig(length=512, snr_db=(5.0, 20.0))
        records = generate(cfg, "bpsk,qpsk,gfsk", 40, seed=10 + i, workers=0)
        (root / name).mkdir()
        save_records(records, root / name / f"{name}.npz")
    return root


@pytest.fixture(scope="module")
def backbone(sites, tmp_path_factory) -> Path:
    """A backbone pretrained on the files of both sites (CLI, tiny model)."""
    out = tmp_path_factory.mktemp("pre") / "pre"
    argv = ["pretrain", "--data", str(sites / "site_a"), "--data", str(sites / "site_b")]
    code, _, err = _run([*argv, "--length", "256", *IMAGES, *TINY_MODEL, *FAST, "--out", str(out)])
    assert code == 0, err
    return out


def _run(argv: list[str]) -> tuple[int, str, str]:
    capsys = _Capture()
    return run(argv, capsys)


class _Capture:
    """A stand-in for capsys in module fixtures (pytest's capsys is function-scoped)."""

    def readouterr(self):
        class Out:
            out = err = ""

        return Out()


def test_pretraining_reads_the_files_with_their_own_classes(backbone, sites):
    _, meta = load_checkpoint(backbone / "model.safetensors")
    assert meta["class_names"] == ["bpsk", "qpsk", "gfsk"] and meta["length"] == 256
    config = tomllib.loads((backbone / "config.toml").read_text())
    assert config["data"]["source"] == "files"
    assert config["data"]["paths"] == [str(sites / "site_a"), str(sites / "site_b")]
    rows = [json.loads(line) for line in (backbone / "metrics.jsonl").read_text().splitlines()]
    test = [r for r in rows if r.get("stage") == "test"][0]
    assert test["test_acc"] > 1 / 3  # better than chance on the held-out windows


def test_finetune_on_one_site(backbone, sites, tmp_path, capsys):
    out = tmp_path / "ft"
    argv = ["finetune", "--data", str(sites / "site_a"), "--pretrained", str(backbone)]
    argv += ["--length", "256", *IMAGES, "--set", "train.epochs=1", "--out", str(out)]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    assert "lora-sb" in stdout and (out / "model.safetensors").exists()


def test_run_partitions_by_directory(backbone, sites, tmp_path, capsys):
    common = ["run", "--data", str(sites / "*" / "*.npz"), "--partition-by", "directory"]
    common += ["--length", "256", "--set", f"pretrained='{backbone}'", *IMAGES, *FED]
    code, stdout, err = run([*common, "--dry-run"], capsys)
    assert code == 0, err
    assert "2 clients" in stdout and "site_a" in stdout and "site_b" in stdout
    out = tmp_path / "fed"
    code, _, err = run([*common, "--out", str(out)], capsys)
    assert code == 0, err
    rows = json.loads((out / "partition.json").read_text())
    assert [r["profile"].rsplit("/", 1)[-1] for r in rows] == ["site_a", "site_b"]
    assert all(r["records"] > 0 and r["val"] > 0 and r["test"] > 0 for r in rows)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pretrain", "--data", "nowhere/*.npz", "--out", "x"], "nowhere/\\*.npz: matches no file"),
        (["pretrain", "--val-data", "v.npz", "--out", "x"], "source = 'generator'"),
        (["run", "--test-data", "t.npz", "--dry-run"], "source = 'generator'"),
    ],
)
def test_bad_data_options_are_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err


def test_records_shorter_than_the_backbone_are_refused(backbone, sites, tmp_path, capsys):
    argv = ["finetune", "--data", str(sites / "site_a"), "--pretrained", str(backbone)]
    code, _, err = run([*argv, "--length", "1024", *IMAGES, "--out", str(tmp_path / "f")], capsys)
    assert code == 2 and "pretrained on 256-sample records, not 1024" in err, err


def _recording(root: Path, classes: str, seed: int) -> Path:
    """An npz of 512-sample records of ``classes`` (two 256-sample windows each)."""
    cfg = GeneratorConfig(length=512, snr_db=(5.0, 20.0))
    path = root / f"{classes.replace(',', '_')}.npz"
    save_records(generate(cfg, classes, 40, seed=seed, workers=0), path)
    return path


def test_files_of_fewer_classes_give_a_head_of_those_in_the_backbones_order(
    backbone, tmp_path, capsys
):
    """A 3-class backbone fine-tuned or federated on files of 2 classes keeps 2 head rows."""
    data = _recording(tmp_path, "gfsk,qpsk", seed=21)
    common = ["--data", str(data), "--length", "256", *IMAGES]
    ft = ["finetune", *common, "--pretrained", str(backbone), "--set", "train.epochs=1"]
    fed = ["run", *common, "--set", f"pretrained='{backbone}'", *FED, "--clients", "2"]
    for name, argv in (("ft", ft), ("fed", fed)):
        code, out, err = run([*argv, "--out", str(tmp_path / name)], capsys)
        assert code == 0, err
        state, meta = load_checkpoint(tmp_path / name / "model.safetensors")
        assert meta["class_names"] == ["qpsk", "gfsk"]  # the backbone's order, not the files'
        assert meta["backbone_classes"] == ["bpsk", "qpsk", "gfsk"]
        assert state["head.weight"].shape[0] == 2
        config = tomllib.loads((tmp_path / name / "config.toml").read_text())
        assert config["data"]["classes"] == "qpsk,gfsk"  # settled: a resume reads the same
        assert "the files hold 2 of the backbone's 3 classes" in out + err


def test_files_of_classes_the_backbone_lacks_are_refused_in_one_line(backbone, tmp_path, capsys):
    mixed, foreign = _recording(tmp_path, "bpsk,8psk", 22), _recording(tmp_path, "8psk", 23)
    argv = ["finetune", "--pretrained", str(backbone), "--length", "256", *IMAGES]
    code, _, err = run([*argv, "--data", str(mixed), "--out", str(tmp_path / "a")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "the files hold classes the backbone lacks: 8psk (it knows bpsk, qpsk, gfsk" in err
    assert "--drop-unknown leaves those records out" in err
    code, _, err = run([*argv, "--data", str(foreign), "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "none of the files' classes (8psk) is among the backbone's (bpsk, qpsk, gfsk)" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    dropped = [*argv, "--data", str(mixed), "--drop-unknown", "--set", "train.epochs=1"]
    code, _, err = run([*dropped, "--out", str(tmp_path / "c")], capsys)
    assert code == 0, err
    _, meta = load_checkpoint(tmp_path / "c" / "model.safetensors")
    assert meta["class_names"] == ["bpsk"]
