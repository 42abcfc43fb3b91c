"""Model and adapter configuration (frozen dataclasses, loaded from TOML like every config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import check_number

ADAPTED_METHODS = ("lora-sb", "lora", "ffa-lora")  # the methods that wrap layers
METHODS = (*ADAPTED_METHODS, "full", "head-only")
HEAD_MODES = ("train", "frozen", "adapt")


@dataclass(frozen=True)
class ModelConfig:
    """A backbone over (C, H, W) images; C, H, W and the class count come from the data."""

    arch: Literal["resnet", "vit"] = "resnet"
    # ResNet: a stride-2 stem, then one stage per width (stride 2 between stages), GroupNorm
    # four stages (1.23 M parameters): the fourth, at 2 x 2, adds capacity for 30 % more time,
    # and puts LoRA-SB at r = 16 under 1 % of the parameters (measured in the README)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: tuple[int, ...] = (1, 1, 1, 1)  # residual blocks per stage
    groups: int = 8  # GroupNorm groups (Opacus cannot train through BatchNorm)
    # ViT: patch embedding + pre-norm transformer blocks with explicit q/k/v/out projections.
    # patch 8 (16 tokens at 32x32): patch 4 (64 tokens) costs 4x the time on CPU (~3 ms per
    # sample per training step on 2 cores) for no accuracy gain on the source domain
    patch: int = 8
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise ValueError("widths and blocks must be non-empty and of equal length")
        for key in ("widths", "blocks"):
            for i, n in enumerate(getattr(self, key)):
                check_number(f"{key}[{i}]", n, 1)
        for key in ("groups", "patch", "dim", "depth", "heads"):
            check_number(key, getattr(self, key), 1)
        check_number("mlp_ratio", self.mlp_ratio, 0, open_low=True)
        if int(self.dim * self.mlp_ratio) < 1:
            raise ValueError(f"mlp_ratio: dim * mlp_ratio must be >= 1, got {self.mlp_ratio!r}")
        check_number("dropout", self.dropout, 0, 1, open_high=True)
        if any(w % self.groups for w in self.widths):
            raise ValueError(f"every width must be divisible by groups={self.groups}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")


@dataclass(frozen=True)
class AdapterConfig:
    """Which layers to adapt, how, and how LoRA-SB initialises its fixed B and A."""

    # "" (a run's config only): chosen by the enclosing config (a federated run: by its method)
    method: Literal["", "lora-sb", "lora", "ffa-lora", "full", "head-only"] = "lora-sb"
    rank: int = 16
    # fnmatch patterns over module names (Linear and Conv2d); the classifier head never
    # matches (what it does is `head` below)
    targets: tuple[str, ...] = ("*",)
    alpha: float = 16.0  # lora / ffa-lora scale s = alpha / rank (LoRA-SB uses s = 1)
    init_samples: int = 512  # LoRA-SB: samples whose summed gradient gives B and A
    init_lr: float = 1e-3  # LoRA-SB: eta of the simulated first step dW = -eta * sign(sum g)
    init_seed: int = 0  # seeds random A (ffa-lora, lora) and the init batch order
    # the classifier: "train" (every weight, the default), "frozen" (the pretrained head as is),
    # or "adapt" (wrapped like the targets, rank min(rank, classes)): what it costs per round
    # is its trained scalars, 2,827 for the default head against 3,072 for every R together
    head: Literal["train", "frozen", "adapt"] = "train"

    def __post_init__(self) -> None:
        if self.method not in ("", *METHODS):
            raise ValueError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        check_number("rank", self.rank, 1)
        check_number("alpha", self.alpha, 0, open_low=True)
        check_number("init_samples", self.init_samples, 1)
        check_number("init_lr", self.init_lr, 0, open_low=True)
        check_number("init_seed", self.init_seed, 0)
        if not self.targets:
            raise ValueError("targets: give at least one pattern")
        if self.head not in HEAD_MODES:
            raise ValueError(f"head {self.head!r} is not one of {', '.join(HEAD_MODES)}")
        if self.head != "train" and self.method in ("full", "head-only"):
            raise ValueError(f"head = {self.head!r} needs an adapter method, not {self.method!r}")
