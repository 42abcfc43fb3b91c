"""IQCNN: a plain 1-D CNN on raw IQ, the baseline the image stacks are benchmarked against.

The design is the usual VGG-style AMC network (O'Shea et al. 2018): six blocks of
Conv1d -> GroupNorm -> GELU -> MaxPool(2), narrow while the sequence is long and widening as it
shortens (compute sits early, parameters late), then global average pooling and a Linear
``head``. GroupNorm rather than BatchNorm, so the baseline can be trained with Opacus too.
Defaults: 218,027 parameters for 11 classes (the default image ResNet has 1.23 M); at
L = 1024 one training step costs ~2x the ResNet's on 32x32 images. Of the variants tried (five
blocks 32..256 or 64..256 wide, longer kernels), none beat this one on the source domain within
noise, and it is the cheapest.

Inputs are (B, 2, L) float: row 0 is I, row 1 is Q. Every record is scaled to unit RMS
(mean |z|^2 = 1) inside the model, so raw generator output, ``iq_to_tensor`` output and
records at any gain give the same logits. Any L >= 2^len(widths) works (global pooling);
L >= 128 is the intended range.

Module names: ``blocks.{i}.conv``, ``blocks.{i}.norm`` and ``head``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-12


def iq_to_tensor(iq: np.ndarray) -> torch.Tensor:
    """Complex records (N, L) -> float32 (N, 2, L) with rows I, Q, each record at unit RMS."""
    iq = np.asarray(iq)
    if iq.ndim != 2:
        raise ValueError(f"expected complex records of shape (N, L), got {iq.shape}")
    power = np.mean(np.abs(iq) ** 2, axis=1, keepdims=True)  # (N, 1)
    z = iq / np.sqrt(power + EPS)
    return torch.from_numpy(np.stack([z.real, z.imag], axis=1).astype(np.float32))  # (N, 2, L)


def unit_rms(x: torch.Tensor) -> torch.Tensor:
    """Scale each (2, L) record so that mean(I^2 + Q^2) = 1."""
    power = x.pow(2).sum(dim=1, keepdim=True).mean(dim=2, keepdim=True)  # (B, 1, 1)
    return x * torch.rsqrt(power + EPS)


class ConvBlock1d(nn.Module):
    """Conv1d (same padding, no bias) -> GroupNorm -> GELU -> MaxPool1d(2): halves L."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.norm = nn.GroupNorm(groups, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Conv, norm, GELU, max-pool: (B, c_in, L) -> (B, c_out, L // 2)."""
        h = F.gelu(self.norm(self.conv(x)))  # (B, c_out, L)
        return F.max_pool1d(h, 2)  # (B, c_out, L // 2)


class IQCNN(nn.Module):
    """1-D CNN over (B, 2, L) IQ: conv blocks, global average pool, ``head`` -> (B, classes)."""

    def __init__(
        self,
        num_classes: int = 11,
        widths: tuple[int, ...] = (32, 48, 64, 96, 128, 256),
        kernels: tuple[int, ...] = (7, 5, 5, 5, 5, 3),
        groups: int = 8,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(widths) != len(kernels) or not widths:
            raise ValueError("widths and kernels must be non-empty and of equal length")
        chans = (2, *widths)
        self.blocks = nn.Sequential(
            *[ConvBlock1d(chans[i], chans[i + 1], k, groups) for i, k in enumerate(kernels)]
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, w_last) of unit-RMS IQ (B, 2, L); ValueError for any other shape."""
        if x.ndim != 3 or x.shape[1] != 2:
            raise ValueError(f"expected IQ of shape (B, 2, L), got {tuple(x.shape)}")
        h = self.blocks(unit_rms(x))  # (B, w_last, L / 2^n)
        return h.mean(dim=2)  # (B, w_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) of IQ (B, 2, L)."""
        return self.head(self.drop(self.features(x)))  # (B, num_classes)
