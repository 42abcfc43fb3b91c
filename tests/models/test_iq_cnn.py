"""IQCNN baseline: shapes, IQ preprocessing, gain invariance, Opacus, and fitting a tiny task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedsb.models.backbones import count_parameters, parameter_summary
from fedsb.models.iq_cnn import IQCNN, iq_to_tensor


def tones(n: int, length: int, freq: float, seed: int) -> np.ndarray:
    """n complex tones at ``freq`` cycles/sample, random phase and amplitude, light noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    amp = rng.uniform(0.1, 10.0, (n, 1))
    noise = 0.05 * (rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length)))
    return (amp * (np.exp(1j * (2 * np.pi * freq * t + phase)) + noise)).astype(np.complex64)


@pytest.mark.parametrize("length", [128, 1024])
def test_shapes(length: int) -> None:
    model = IQCNN(num_classes=11).eval()
    x = torch.randn(3, 2, length)
    with torch.no_grad():
        logits, feats = model(x), model.features(x)
    assert logits.shape == (3, 11)
    assert feats.shape == (3, model.head.in_features)
    assert type(model.head) is nn.Linear


def test_rejects_non_iq_input() -> None:
    with pytest.raises(ValueError, match=r"\(B, 2, L\)"):
        IQCNN()(torch.randn(2, 3, 128))


def test_iq_to_tensor_stacks_i_q_at_unit_rms() -> None:
    rng = np.random.default_rng(0)
    iq = (rng.standard_normal((4, 256)) + 1j * rng.standard_normal((4, 256))).astype(np.complex64)
    iq *= np.array([[0.01], [1.0], [3.0], [100.0]], dtype=np.float32)
    x = iq_to_tensor(iq)
    assert x.shape == (4, 2, 256) and x.dtype == torch.float32
    rms = x.pow(2).sum(dim=1).mean(dim=1).sqrt()  # sqrt(mean(I^2 + Q^2)) per record
    torch.testing.assert_close(rms, torch.ones(4))
    scale = np.sqrt(np.mean(np.abs(iq) ** 2, axis=1, keepdims=True))
    np.testing.assert_allclose(x[:, 0].numpy(), (iq / scale).real, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x[:, 1].numpy(), (iq / scale).imag, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        iq_to_tensor(iq[0])


def test_model_normalises_gain_itself() -> None:
    torch.manual_seed(0)
    model = IQCNN().eval()
    x = torch.randn(2, 2, 128)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(37.0 * x), atol=1e-5, rtol=1e-4)


def test_size_and_counts() -> None:
    model = IQCNN(num_classes=11)
    total = count_parameters(model)
    assert 150_000 <= total <= 500_000
    assert sum(r[2] for r in parameter_summary(model)) == total
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def test_opacus_validator_finds_no_errors() -> None:
    from opacus.validators import ModuleValidator

    assert ModuleValidator.validate(IQCNN(), strict=False) == []


def test_fits_positive_vs_negative_tone() -> None:
    torch.manual_seed(0)
    x = torch.cat([iq_to_tensor(tones(64, 128, 0.1, 1)), iq_to_tensor(tones(64, 128, -0.1, 2))])
    y = torch.cat([torch.zeros(64, dtype=torch.long), torch.ones(64, dtype=torch.long)])
    model = IQCNN(num_classes=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean().item() == 1.0
