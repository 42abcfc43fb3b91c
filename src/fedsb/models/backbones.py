"""Vision backbones over stacked radio-signal images (B, C, S, S): a small ResNet and a small ViT.

Both are built for differentially private, adapter-based federated fine-tuning, which decides
most of the design:

* No BatchNorm anywhere (GroupNorm / LayerNorm instead): Opacus needs per-sample gradients,
  and batch statistics mix samples.
* Every weight matrix an adapter may wrap is a plain ``nn.Linear`` or ``nn.Conv2d`` (groups=1)
  with a stable module name; the classifier is always an ``nn.Linear`` named ``head``.
* No buffers, and every parameter lives in a module Opacus has a grad sampler for, except the
  ViT position embedding, which is its own tiny leaf module (Opacus handles it via functorch).

Module names, for fnmatch targeting (``*`` also matches dots)::

    ResNet  stem.conv, stem.norm
            stages.{i}.{j}.conv1, .norm1, .conv2, .norm2     block j of stage i
            stages.{i}.0.shortcut.conv, .shortcut.norm       first block of stage i > 0 only
            head
    ViT     patch_embed (Conv2d C -> dim, kernel = stride = patch), pos_embed
            blocks.{i}.norm1, blocks.{i}.attn.{q,k,v,out}
            blocks.{i}.norm2, blocks.{i}.mlp.{fc1,fc2}
            norm, head

e.g. ``blocks.*.attn.*`` (all attention projections), ``blocks.*.mlp.*``, ``stages.*.conv*``.
Every backbone has ``forward(x) -> (B, num_classes)`` logits and ``features(x) -> (B, D)``, the
pooled penultimate features that ``head`` maps to logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

# ----------------------------------------------------------------------------------------------
# ResNet


class ConvNorm(nn.Module):
    """Conv2d (no bias: the GroupNorm shift replaces it) followed by GroupNorm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False)
        self.norm = nn.GroupNorm(groups, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """GroupNorm of the bias-free convolution of ``x``."""
        return self.norm(self.conv(x))


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; a strided block projects the shortcut with a 1x1 conv."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.shortcut = (
            ConvNorm(c_in, c_out, 1, stride, groups) if stride != 1 or c_in != c_out else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU of the two convs plus the shortcut (projected when the block is strided)."""
        h = F.relu(self.norm1(self.conv1(x)))  # (B, c_out, H/stride, W/stride)
        h = self.norm2(self.conv2(h))
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(h + skip)


class ResNet(nn.Module):
    """Stride-2 stem, one stage per width (stride 2 between stages), global average pool, head."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, ...] = (32, 64, 128),
        blocks: tuple[int, ...] = (1, 1, 1),
        groups: int = 8,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.stem = ConvNorm(in_channels, widths[0], 3, 2, groups)
        stages, c_in = [], widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks)):
            stride = 1 if i == 0 else 2
            stage = [
                BasicBlock(c_in if j == 0 else width, width, stride if j == 0 else 1, groups)
                for j in range(n)
            ]
            stages.append(nn.Sequential(*stage))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled features (B, w_last) of images (B, C, S, S)."""
        h = F.relu(self.stem(x))  # (B, w0, S/2, S/2)
        h = self.stages(h)  # (B, w_last, S/2^n, S/2^n)
        return h.mean(dim=(2, 3))  # (B, w_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) of images (B, C, S, S)."""
        return self.head(self.drop(self.features(x)))  # (B, num_classes)


# ----------------------------------------------------------------------------------------------
# ViT


class PositionEmbedding(nn.Module):
    """A learned (1, N, D) table added to the tokens; its own leaf module so Opacus can reach it."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (B, N, D) plus the learned positions."""
        return x + self.weight  # (B, N, D)


class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v, out Linears (each adapter-targetable)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head self-attention over tokens: (B, N, D) -> (B, N, D)."""
        B, N, D = x.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(B, N, h, D // h).transpose(1, 2)  # (B, h, N, D/h)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, h, N, D/h)
        return self.out(y.transpose(1, 2).reshape(B, N, D))  # (B, N, D)


class MLP(nn.Module):
    """fc1 -> GELU -> fc2, the transformer feed-forward."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """fc1, GELU, fc2 and dropout over tokens (B, N, D)."""
        return self.drop(self.fc2(F.gelu(self.fc1(x))))  # (B, N, D)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens after the pre-norm attention and MLP residual steps."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))  # (B, N, D)


class ViT(nn.Module):
    """Conv patch embedding, learned positions, pre-norm blocks, mean pooling over tokens, head.

    Mean pooling instead of a CLS token: one trainable tensor fewer outside a standard layer,
    and on ~20k small images it trains at least as well.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        patch: int = 4,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image size {image_size} is not divisible by patch {patch}")
        tokens = (image_size // patch) ** 2
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.pos_embed = PositionEmbedding(tokens, dim)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Token-mean features (B, D) of images (B, C, S, S)."""
        h = self.patch_embed(x)  # (B, D, S/p, S/p)
        h = self.pos_embed(h.flatten(2).transpose(1, 2))  # (B, N, D)
        h = self.norm(self.blocks(h))  # (B, N, D)
        return h.mean(dim=1)  # (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) of images (B, C, S, S)."""
        return self.head(self.features(x))  # (B, num_classes)


# ----------------------------------------------------------------------------------------------
# Building and inspecting


def build_backbone(
    cfg: ModelConfig, in_channels: int, num_classes: int, image_size: int
) -> nn.Module:
    """The backbone ``cfg.arch`` for (in_channels, image_size, image_size) inputs."""
    if cfg.arch == "resnet":
        return ResNet(in_channels, num_classes, cfg.widths, cfg.blocks, cfg.groups, cfg.dropout)
    if cfg.arch == "vit":
        return ViT(
            in_channels,
            num_classes,
            image_size,
            cfg.patch,
            cfg.dim,
            cfg.depth,
            cfg.heads,
            cfg.mlp_ratio,
            cfg.dropout,
        )
    raise ValueError(f"unknown arch {cfg.arch!r}: expected 'resnet' or 'vit'")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (shared parameters counted once) parameters, optionally only trainable ones."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_summary(model: nn.Module) -> list[tuple[str, str, int, int]]:
    """(name, type, parameters, trainable) per module that owns parameters directly.

    Rows sum to ``count_parameters``: a parameter shared between modules is listed once, under
    the first module that owns it. The root module is named ``""``.
    """
    rows, seen = [], set()
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        if not own:
            continue
        seen.update(id(p) for p in own)
        total = sum(p.numel() for p in own)
        trainable = sum(p.numel() for p in own if p.requires_grad)
        rows.append((name, type(module).__name__, total, trainable))
    return rows
