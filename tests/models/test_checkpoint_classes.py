"""A backbone fine-tunes on a subset of its classes: the head keeps those rows, in the run's
order, and their logits are the full model's."""

from __future__ import annotations

import pytest
import torch

from fedsb.config import apply_overrides, to_dict
from fedsb.errors import ConfigError
from fedsb.models.backbones import build_backbone
from fedsb.models.checkpoint import load_backbone, save_checkpoint
from fedsb.models.config import ModelConfig
from fedsb.training.config import FinetuneConfig

MODEL = ModelConfig(widths=(8,), blocks=(1,))
NAMES = ["bpsk", "qpsk", "gfsk", "ook", "8psk"]
BASE = [
    "data.images.size=16",
    "data.images.channels='spectrogram'",
    "data.generator.length=256",
]


def cfg(*extra: str) -> FinetuneConfig:
    return apply_overrides(FinetuneConfig(), [*BASE, *extra])


@pytest.fixture
def backbone(tmp_path):
    torch.manual_seed(0)
    model = build_backbone(MODEL, 1, len(NAMES), 16).eval()
    meta = {
        "kind": "backbone",
        "model": to_dict(MODEL),
        "in_channels": 1,
        "image_size": 16,
        "class_names": NAMES,
        "images": to_dict(cfg().data.images),
        "length": 256,
    }
    return model, save_checkpoint(tmp_path / "model.safetensors", model.state_dict(), meta)


def test_a_subset_keeps_those_logits_in_the_runs_order(backbone):
    full, path = backbone
    model, meta = load_backbone(path, cfg("data.classes='8psk,bpsk,gfsk'"))
    assert meta["class_names"] == ["8psk", "bpsk", "gfsk"]
    assert meta["backbone_classes"] == NAMES
    assert model.head.out_features == 3
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        want = full(x)[:, [4, 0, 2]]
        got = model.eval()(x)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)  # a 3-row GEMM may round apart


def test_the_same_classes_leave_the_model_as_it_is(backbone):
    _, path = backbone
    model, meta = load_backbone(path, cfg(f"data.classes='{','.join(NAMES)}'"))
    assert model.head.out_features == len(NAMES)
    assert "backbone_classes" not in meta


def test_files_with_found_classes_keep_every_backbone_class(backbone, tmp_path):
    _, path = backbone
    files = cfg("data.source='files'", f"data.paths=['{tmp_path}']", "data.classes='found'")
    model, meta = load_backbone(path, files)
    assert meta["class_names"] == NAMES and model.head.out_features == len(NAMES)


def test_a_class_the_backbone_never_saw_is_named(backbone):
    _, path = backbone
    with pytest.raises(ConfigError, match=r"data\.classes: 16qam, wbfm not among the model's"):
        load_backbone(path, cfg("data.classes='bpsk,16qam,wbfm'"))
