"""`fedsb model info`, `pretrain`, `finetune`: output and bad input (exit code 2, one line)."""

from __future__ import annotations

import pytest

from .test_data_cli import run


def test_model_info_lists_layers_and_every_method(capsys):
    code, out, _ = run(["model", "info", "--rank", "4"], capsys)
    assert code == 0
    assert "stem.conv" in out and "head" in out
    for method in ("lora-sb", "lora", "ffa-lora", "full", "head-only"):
        assert method in out
    assert "1,230,667" in out  # the default ResNet, as the README states


def test_model_info_counts_an_adapted_head(capsys):
    code, out, _ = run(["model", "info", "--set", "adapter.head='adapt'"], capsys)
    assert code == 0 and "head adapt" in out
    assert "3,193" in out  # 12 R of 16 x 16 + the head's 11 x 11 R
    assert "1,230,667" in out  # full trains every weight whatever the head mode


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["finetune", "--method", "bogus", "--out", "x"], "'bogus' is not one of"),
        (["finetune", "--pretrained", "nowhere.bin", "--out", "x"], "expected a run directory"),
        (
            ["finetune", "--pretrained", "missing_dir/model.safetensors", "--out", "x"],
            "no such checkpoint",
        ),
        (["pretrain", "--out", "x", "--set", "model.arch='cnn'"], "model.arch: 'cnn'"),
        (
            ["pretrain", "--out", "x", "--set", "train.epochs=0"],
            "train.epochs: must be >= 1, got 0",
        ),
        (["model", "info", "--config", "missing.toml"], "missing.toml"),
    ],
)
def test_bad_training_input_is_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0], err


def test_pretrain_without_config_starts_from_the_default_backbones_preset(
    capsys, monkeypatch, tmp_path
):
    """So a backbone of one's own fits finetune's and run's default images (no --set needed)."""
    import fedsb.training.pretrain as pretraining
    from fedsb.config import load_config
    from fedsb.federated.config import RunConfig
    from fedsb.training.config import FinetuneConfig, PretrainConfig

    seen = []

    def stop(cfg, *args, **kwargs):
        seen.append(cfg)
        raise SystemExit(0)

    monkeypatch.setattr(pretraining, "pretrain", stop)
    code, _, _ = run(["pretrain", "--out", str(tmp_path / "p"), "--set", "data.seed=3"], capsys)
    assert code == 0 and len(seen) == 1
    preset = load_config(PretrainConfig, "pretrain-broad", ["data.seed=3"])
    assert seen[0] == preset and seen[0] != load_config(PretrainConfig, "pretrain", ["data.seed=3"])
    assert seen[0].data.images == FinetuneConfig().data.images == RunConfig().data.images
