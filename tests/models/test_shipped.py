"""The shipped backbone: found by its preset's hash, loadable, and used only for that hash."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from fedsb.config import config_hash, load_config, save_config
from fedsb.errors import DataError
from fedsb.models import shipped
from fedsb.models.checkpoint import load_backbone, load_checkpoint, save_checkpoint
from fedsb.reporter import SilentReporter
from fedsb.runs import CONFIG_FILE, MODEL_FILE
from fedsb.signals import resolve_classes
from fedsb.training import pretrain as pretrain_module
from fedsb.training.config import PretrainConfig

BROAD = load_config(PretrainConfig, "pretrain-broad")


def _no_pretraining(*args, **kwargs):
    raise AssertionError("pretrained although a backbone is shipped for this hash")


def test_the_default_backbone_is_shipped_for_the_broad_preset_and_only_for_it():
    assert shipped.shipped_hashes() == [config_hash(BROAD)]
    path = shipped.shipped_backbone(config_hash(BROAD))
    assert path is not None and path.stat().st_size < 8_000_000  # "a few MB"
    # a pretrain run: its saved config is the preset, so proxy data and evaluate read it
    assert load_config(PretrainConfig, path.parent / CONFIG_FILE) == BROAD


def test_the_shipped_backbone_is_the_preset_s_model_with_its_classes_and_images():
    path = shipped.shipped_backbone(config_hash(BROAD))
    state, meta = load_checkpoint(path)
    assert meta["kind"] == "backbone" and meta["config_hash"] == config_hash(BROAD)
    assert meta["class_names"] == list(resolve_classes("wide25"))
    assert meta["length"] == BROAD.data.generator.length
    assert meta["images"]["frontend"]["recentre"] and meta["images"]["frontend"]["gate"]
    model, _ = load_backbone(path, BROAD)
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    # calibrated as `fedsb pretrain` calibrates: the temperature of its run's last row
    rows = [json.loads(x) for x in (path.parent / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["stage"] == "calibration" and rows[-1]["temperature"] == meta["temperature"]
    assert rows[-1]["nll_after"] <= rows[-1]["nll_before"]


def test_an_empty_cache_uses_the_shipped_backbone_without_pretraining(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrain_module, "pretrain", _no_pretraining)
    got = pretrain_module.resolve_pretrained("pretrain-broad", tmp_path, SilentReporter())
    assert got == shipped.shipped_backbone(config_hash(BROAD))
    assert not (tmp_path / "pretrain").exists()  # nothing written to the cache


def test_a_changed_preset_pretrains_instead(tmp_path, monkeypatch):
    calls = []

    def fake_pretrain(cfg, run, *args, **kwargs):
        calls.append(config_hash(cfg))
        return type("Result", (), {"checkpoint": run / "model.safetensors"})()

    monkeypatch.setattr(pretrain_module, "pretrain", fake_pretrain)
    toml = tmp_path / "broad.toml"
    changed = replace(BROAD, data=replace(BROAD.data, per_class=10))
    save_config(changed, toml)
    got = pretrain_module.resolve_pretrained(str(toml), tmp_path, SilentReporter())
    assert calls == [config_hash(changed)] != [config_hash(BROAD)]
    assert got.parent == tmp_path / "pretrain" / config_hash(changed)


def test_a_shipped_file_whose_metadata_names_another_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path)
    (tmp_path / "0123456789abcdef").mkdir()
    save_checkpoint(tmp_path / "0123456789abcdef" / MODEL_FILE, {"w": torch.zeros(1)},
                    {"config_hash": "fedcba9876543210"})  # fmt: skip
    with pytest.raises(DataError, match="pretrained from config 'fedcba9876543210', not"):
        shipped.shipped_backbone("0123456789abcdef")
    assert shipped.shipped_backbone("ffffffffffffffff") is None
