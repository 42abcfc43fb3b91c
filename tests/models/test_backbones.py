"""Backbones: shapes, gradient flow, adapter-facing names, attention math, Opacus, counting."""

from __future__ import annotations

import copy
import fnmatch
import math

import pytest
import torch
from torch import nn

from fedsb.models.backbones import (
    Attention,
    ResNet,
    ViT,
    build_backbone,
    count_parameters,
    parameter_summary,
)
from fedsb.models.config import ModelConfig

ARCHS = ("resnet", "vit")
CLASSES = 11


def build(arch: str, channels: int = 8, size: int = 32, **kw: object) -> nn.Module:
    return build_backbone(ModelConfig(arch=arch, **kw), channels, CLASSES, size)  # type: ignore[arg-type]


def images(n: int, channels: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3, 8])
def test_output_and_feature_shapes(arch: str, size: int, channels: int) -> None:
    model = build(arch, channels, size).eval()
    x = images(2, channels, size)
    with torch.no_grad():
        logits, feats = model(x), model.features(x)
    assert logits.shape == (2, CLASSES)
    assert feats.shape == (2, model.head.in_features)
    assert torch.isfinite(logits).all()
    # head is the classifier: logits are head(features)
    torch.testing.assert_close(logits, model.head(feats))


def test_resnet_stem_halves_the_image_and_stages_halve_again() -> None:
    cfg = ModelConfig()
    model = build("resnet")
    x = images(2)
    assert model.stem(x).shape == (2, cfg.widths[0], 16, 16)
    h = torch.relu(model.stem(x))
    for i, stage in enumerate(model.stages):
        h = stage(h)
        assert h.shape == (2, cfg.widths[i], 16 >> i, 16 >> i)


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_every_parameter(arch: str) -> None:
    model = build(arch, size=16)
    model(images(4, size=16)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("arch", ARCHS)
def test_no_batchnorm_and_no_buffers(arch: str) -> None:
    model = build(arch)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert list(model.buffers()) == []  # nothing batch-dependent or stateful to carry


def test_resnet_convs_are_plain_and_named() -> None:
    model = build("resnet", widths=(16, 32), blocks=(2, 1), groups=4)
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert all(type(m) is nn.Conv2d and m.groups == 1 for m in convs.values())
    assert set(convs) == {
        "stem.conv",
        "stages.0.0.conv1",
        "stages.0.0.conv2",
        "stages.0.1.conv1",
        "stages.0.1.conv2",
        "stages.1.0.conv1",
        "stages.1.0.conv2",
        "stages.1.0.shortcut.conv",
    }
    assert type(model.head) is nn.Linear and model.head.out_features == CLASSES


def test_vit_module_names_for_adapter_patterns() -> None:
    cfg = ModelConfig(arch="vit")
    model = build("vit")
    modules = dict(model.named_modules())
    hidden = int(cfg.dim * cfg.mlp_ratio)
    for i in range(cfg.depth):
        for proj in ("q", "k", "v", "out"):
            m = modules[f"blocks.{i}.attn.{proj}"]
            assert type(m) is nn.Linear and m.weight.shape == (cfg.dim, cfg.dim)
        assert modules[f"blocks.{i}.mlp.fc1"].weight.shape == (hidden, cfg.dim)
        assert modules[f"blocks.{i}.mlp.fc2"].weight.shape == (cfg.dim, hidden)
    names = list(modules)
    assert len(fnmatch.filter(names, "blocks.*.attn.*")) == 4 * cfg.depth
    assert len(fnmatch.filter(names, "blocks.*.mlp.fc*")) == 2 * cfg.depth
    assert type(modules["patch_embed"]) is nn.Conv2d
    assert modules["patch_embed"].kernel_size == (cfg.patch, cfg.patch)
    assert type(model.head) is nn.Linear and model.head.in_features == cfg.dim


def test_attention_matches_softmax_qkt_v_by_hand() -> None:
    torch.manual_seed(0)
    dim, heads, n = 8, 2, 5
    attn = Attention(dim, heads).eval()
    x = torch.randn(2, n, dim)
    d = dim // heads
    q, k, v = attn.q(x), attn.k(x), attn.v(x)  # (B, N, D)
    outs = []
    for h in range(heads):
        qh, kh, vh = (t[..., h * d : (h + 1) * d] for t in (q, k, v))  # (B, N, d)
        weights = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1)  # (B, N, N)
        outs.append(weights @ vh)
    expected = attn.out(torch.cat(outs, dim=-1))
    torch.testing.assert_close(attn(x), expected, atol=1e-6, rtol=1e-5)


def test_vit_rejects_size_not_divisible_by_patch_and_unknown_arch() -> None:
    with pytest.raises(ValueError, match="divisible"):
        build("vit", size=30)
    with pytest.raises(ValueError, match="arch"):
        build("convnext")


@pytest.mark.parametrize("arch", ARCHS)
def test_opacus_validator_finds_no_errors(arch: str) -> None:
    from opacus.validators import ModuleValidator

    assert ModuleValidator.validate(build(arch), strict=False) == []


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # inputs need no grad
@pytest.mark.parametrize("arch", ARCHS)
def test_opacus_per_sample_gradients_match_single_sample_backward(arch: str) -> None:
    from opacus import GradSampleModule

    small = dict(widths=(8, 16), blocks=(1, 1), groups=4, dim=16, depth=1, heads=2)
    torch.manual_seed(0)
    model = build(arch, channels=3, size=16, **small)
    x = images(3, channels=3, size=16)
    reference = copy.deepcopy(model)
    expected = []
    for i in range(len(x)):
        reference.zero_grad()
        reference(x[i : i + 1]).sum().backward()
        expected.append({n: p.grad.clone() for n, p in reference.named_parameters()})
    gsm = GradSampleModule(model, loss_reduction="sum")
    gsm(x).sum().backward()
    for name, p in model.named_parameters():
        for i in range(len(x)):
            torch.testing.assert_close(p.grad_sample[i], expected[i][name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_builds_are_deterministic_under_a_seed(arch: str) -> None:
    torch.manual_seed(0)
    a = build(arch).state_dict()
    torch.manual_seed(0)
    b = build(arch).state_dict()
    torch.manual_seed(1)
    c = build(arch).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_summary_and_count_add_up(arch: str) -> None:
    model = build(arch)
    total = sum(p.numel() for p in model.parameters())
    rows = parameter_summary(model)
    assert count_parameters(model) == total == sum(r[2] for r in rows)
    assert len({r[0] for r in rows}) == len(rows)
    head = sum(p.numel() for p in model.head.parameters())
    assert ("head", "Linear", head, head) in rows
    model.requires_grad_(False)
    model.head.requires_grad_(True)
    frozen = parameter_summary(model)
    assert count_parameters(model, trainable_only=True) == head == sum(r[3] for r in frozen)
    assert sum(r[2] for r in frozen) == total


def test_default_sizes_are_in_budget() -> None:
    resnet, vit = build("resnet"), build("vit")
    assert isinstance(resnet, ResNet) and isinstance(vit, ViT)
    # the range is 0.2-3 M; the defaults were measured to pretrain in < 5 min
    assert count_parameters(resnet) == 1_230_667
    assert 200_000 <= count_parameters(vit) <= 900_000


def test_package_exports_resolve_and_config_import_stays_torch_free() -> None:
    import subprocess
    import sys

    import fedsb.models as models

    for name in models.__all__:
        assert getattr(models, name) is not None, name
    assert models.build_backbone is build_backbone
    with pytest.raises(AttributeError):
        models.no_such_thing  # noqa: B018
    code = "import sys, fedsb.models.config; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
