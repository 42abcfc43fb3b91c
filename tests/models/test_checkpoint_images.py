"""load_backbone compares image configs with defaults filled in: a backbone saved before the
front-end existed still loads (as front-end off), and only as that."""

from __future__ import annotations

import pytest

from fedsb.config import apply_overrides, to_dict
from fedsb.errors import ConfigError, DataError
from fedsb.models.backbones import build_backbone
from fedsb.models.checkpoint import images_meta, load_backbone, save_checkpoint
from fedsb.models.config import ModelConfig
from fedsb.training.config import FinetuneConfig

from ..overrides import FRONTEND_OFF

MODEL = ModelConfig(widths=(8,), blocks=(1,))
CFG = apply_overrides(
    FinetuneConfig(),
    [
        "data.images.size=16",
        "data.images.channels='spectrogram'",
        "data.generator.length=256",
        "data.classes='bpsk,qpsk,gfsk'",
        *FRONTEND_OFF,  # off: what a backbone saved before it had
    ],
)


def backbone_file(tmp_path, images: dict):
    model = build_backbone(MODEL, 1, 3, 16)
    meta = {
        "kind": "backbone",
        "model": to_dict(MODEL),
        "in_channels": 1,
        "image_size": 16,
        "class_names": ["bpsk", "qpsk", "gfsk"],
        "images": images,
        "length": 256,
    }
    return save_checkpoint(tmp_path / "model.safetensors", model.state_dict(), meta)


def test_a_backbone_saved_before_the_frontend_loads_as_frontend_off(tmp_path):
    old = to_dict(CFG.data.images)
    del old["frontend"]
    path = backbone_file(tmp_path, old)
    model, meta = load_backbone(path, CFG)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert images_meta(meta, path) == to_dict(CFG.data.images)


def test_the_frontend_setting_must_match(tmp_path):
    old = to_dict(CFG.data.images)
    del old["frontend"]
    path = backbone_file(tmp_path, old)
    on = apply_overrides(CFG, ["data.images.frontend.recentre=true"])
    with pytest.raises(ConfigError, match=r"model\.safetensors: the backbone was trained on other"):
        load_backbone(path, on)
    trained_on = backbone_file(tmp_path, to_dict(on.data.images))
    assert load_backbone(trained_on, on)[1]["images"]["frontend"]["recentre"] is True
    with pytest.raises(ConfigError, match="trained on other images") as err:
        load_backbone(trained_on, CFG)
    # the message says what to pass, and passing it loads the backbone
    flags = str(err.value).split("to match it, ")[1].split()
    assert flags == ["--set", "data.images.frontend.recentre=true"]
    assert load_backbone(trained_on, apply_overrides(CFG, flags[1::2]))[0] is not None


def test_an_invalid_images_entry_is_a_data_error(tmp_path):
    bad = to_dict(CFG.data.images) | {"frontend": {"occupancy": 2.0}}
    path = backbone_file(tmp_path, bad)
    with pytest.raises(
        DataError, match=r"metadata 'images': frontend\.occupancy: must be in \(0, 1\], got 2\.0"
    ):
        load_backbone(path, CFG)
