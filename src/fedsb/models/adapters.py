"""Low-rank adapters (LoRA, FFA-LoRA, LoRA-SB) around frozen Linear/Conv2d layers, and their state.

Every adapted layer keeps its frozen ``base_layer`` (W0) and adds a low-rank update beside it, as
PEFT does, so the federated payload is only the small trained tensors:

* ``lora-sb`` (Ponkshe et al., arXiv 2411.19557; Fed-SB, Singhal et al., arXiv 2502.15436):
  y = W0 x + s·B R A x with B (d_out×r) and A (r×d_in) frozen, only R (r×r) trained, s = 1.
  B, A and R0 come from the SVD of a simulated first update (see ``lora_sb_init``); until then they
  are zero, so the layer computes W0 x. R is an ``nn.Linear(r, r, bias=False)`` named ``lora_R`` so
  Opacus computes its per-sample gradients with its native Linear sampler. Because B and A are the
  same on every client, the mean of R over clients is the exact mean of the updates B R_i A.
* ``lora`` (Hu et al., arXiv 2106.09685): y = W0 x + s·B A x, s = alpha/r, A Kaiming-uniform
  (a = √5, as PEFT), B = 0, both trained, so training starts exactly at W0.
* ``ffa-lora`` (Sun et al., arXiv 2403.12313): as ``lora`` with A frozen, only B trained.
* ``full``: nothing wrapped, every parameter trains. ``head-only``: only ``head`` trains.

The classifier ``head`` is not among the targets. By default (``head = "train"``) it trains fully
in every method; ``"frozen"`` keeps the pretrained head; ``"adapt"`` wraps it like a target (for
lora-sb: an r×r R with r = min(rank, classes), 121 scalars instead of 2,827 for 11 classes).

Conv2d (groups = 1 only): the weight's matrix view is (out, in·kh·kw), the matrix that multiplies
unfolded patches. A is a Conv2d(in, r) with the base kernel/stride/padding/dilation (A's rows are
kernels), R mixes the r channels at each position (applied channels-last as a Linear over a
(N, H·W, r) view, which both Opacus's per-sample and ghost-clipping Linear samplers accept), and B
is a 1×1 Conv2d(r, out). Then B∘R∘A is the conv with kernel (B·R·A).reshape(out, in, kh, kw).

Rank clipping: a layer whose matrix view has min(d_out, d_in) < rank gets rank min(d_out, d_in)
(a larger rank adds no expressiveness, only redundant parameters); ``AdaptedLayer.rank`` holds the
rank used and ``trainable_count_formula`` clips the same way. For lora/ffa-lora s = alpha/r uses it.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import skip_init

from ..errors import ConfigError
from .config import ADAPTED_METHODS, METHODS, AdapterConfig
from .state import AdapterStateError, load_checked, name_list

HEAD = "head"
# Exact types: subclasses such as MultiheadAttention's out_proj are read by weight, not called.
_BASE_TYPES = (nn.Linear, nn.Conv2d)


class AdapterConfigError(ConfigError, ValueError):
    """``adapter.targets`` or ``adapter.rank`` does not fit the model (a ValueError as before)."""


def matrix_shape(layer: nn.Linear | nn.Conv2d) -> tuple[int, int]:
    """(d_out, d_in) of the weight as a matrix; a conv kernel flattens to (out, in·kh·kw)."""
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        return layer.out_channels, layer.in_channels * kh * kw
    return layer.out_features, layer.in_features


def _factors(
    base: nn.Linear | nn.Conv2d, method: str, r: int
) -> tuple[nn.Linear | nn.Conv2d, nn.Linear | nn.Conv2d, nn.Linear | None]:
    """Uninitialised A (d_in -> r, the base's kernel for a conv), B (r -> d_out) and R (r x r)."""
    d_out, d_in = matrix_shape(base)
    # skip_init: no default init, so the global RNG is not consumed; every factor is set later
    kw: dict[str, Any] = {"device": base.weight.device, "dtype": base.weight.dtype, "bias": False}
    if isinstance(base, nn.Conv2d):
        a = skip_init(
            nn.Conv2d,
            base.in_channels,
            r,
            base.kernel_size,
            base.stride,
            base.padding,
            base.dilation,
            padding_mode=base.padding_mode,
            **kw,
        )
        b = skip_init(nn.Conv2d, r, d_out, 1, **kw)
    else:
        a, b = skip_init(nn.Linear, d_in, r, **kw), skip_init(nn.Linear, r, d_out, **kw)
    return a, b, (skip_init(nn.Linear, r, r, **kw) if method == "lora-sb" else None)


class AdaptedLayer(nn.Module):
    """A frozen Linear/Conv2d plus a low-rank update: y = base(x) + s·B(R(A(x))) or s·B(A(x)).

    ``bypass = True`` makes the layer compute base(x) only; ``lora_sb_init`` uses it to take
    gradients of W0 exactly as on the unwrapped model.
    """

    def __init__(
        self,
        base: nn.Linear | nn.Conv2d,
        method: str,
        rank: int,
        alpha: float,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if method not in ADAPTED_METHODS:
            raise ValueError(f"method {method!r} has no adapter layer; expected {ADAPTED_METHODS}")
        if type(base) not in _BASE_TYPES:
            raise ValueError(f"can only adapt nn.Linear or nn.Conv2d, got {type(base).__name__}")
        if isinstance(base, nn.Conv2d) and base.groups != 1:
            raise ValueError(f"cannot adapt a Conv2d with groups={base.groups} (only groups=1)")
        d_out, d_in = matrix_shape(base)
        self.base_layer = base
        self.method = method
        self.rank = r = min(rank, d_out, d_in)
        self.scaling = 1.0 if method == "lora-sb" else alpha / r
        self.is_conv = isinstance(base, nn.Conv2d)
        self.bypass = False
        self.lora_A, self.lora_B, self.lora_R = _factors(base, method, r)
        self._init_factors(generator)
        base.requires_grad_(False)
        self.lora_A.weight.requires_grad_(method == "lora")
        self.lora_B.weight.requires_grad_(method != "lora-sb")

    def _init_factors(self, generator: torch.Generator | None) -> None:
        """B = 0, so the update starts at zero; LoRA's A from the seeded generator."""
        with torch.no_grad():
            self.lora_B.weight.zero_()
            if self.lora_R is not None:
                self.lora_A.weight.zero_()
                self.lora_R.weight.zero_()
            else:  # drawn on the CPU from the seeded generator, independent of the global RNG
                a = torch.empty(self.lora_A.weight.shape)
                nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)
                self.lora_A.weight.copy_(a)

    def _apply_r(self, h: torch.Tensor) -> torch.Tensor:
        """R over the rank dimension: last dim for Linear, channels (as (..., H·W, r)) for conv."""
        assert self.lora_R is not None
        if not self.is_conv:
            return self.lora_R(h)
        z = self.lora_R(h.flatten(-2).transpose(-1, -2))
        return z.transpose(-1, -2).reshape(h.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Base output + ``scaling`` · B(R(A x)) (R in LoRA-SB only); the base alone if bypassed."""
        out = self.base_layer(x)
        if self.bypass:
            return out
        h = self.lora_A(x)
        if self.lora_R is not None:
            h = self._apply_r(h)
        return out + self.scaling * self.lora_B(h)

    def delta_weight(self) -> torch.Tensor:
        """s·B·R·A (or s·B·A) in the base weight's shape: what this adapter adds to W0."""
        d_out, d_in = matrix_shape(self.base_layer)
        a = self.lora_A.weight.reshape(self.rank, d_in)
        if self.lora_R is not None:
            a = self.lora_R.weight @ a  # R(h) = R.weight·h, so the chain is B·R·A
        b = self.lora_B.weight.reshape(d_out, self.rank)
        return (self.scaling * (b @ a)).reshape(self.base_layer.weight.shape)

    def merged(self, name: str = "") -> nn.Linear | nn.Conv2d:
        """A plain copy of the base layer with W = W0 + delta_weight() (computed in float32)."""
        layer = copy.deepcopy(self.base_layer)
        with torch.no_grad():
            w = layer.weight.float() + self.delta_weight().float()
            if not torch.isfinite(w).all():
                raise AdapterStateError(f"merge: layer {name!r} has NaN/Inf in W0 + s·B·R·A")
            layer.weight.copy_(w)
        return layer

    def extra_repr(self) -> str:
        """Method, rank and scaling in the printed module."""
        return f"method={self.method!r}, rank={self.rank}, scaling={self.scaling:g}"


def adapted_layers(model: nn.Module) -> dict[str, AdaptedLayer]:
    """Every adapted layer by dotted module name, in module order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, AdaptedLayer)}


def _head(model: nn.Module) -> nn.Module:
    try:
        head = model.get_submodule(HEAD)
    except AttributeError:
        raise ValueError(f"model has no {HEAD!r} module (the classifier that trains)") from None
    if next(head.parameters(), None) is None:
        raise ValueError(f"model.{HEAD} has no parameters")
    return head


def target_shapes(model: nn.Module, targets: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Matrix shapes of the plain Linear/Conv2d modules matching any fnmatch pattern in targets.

    ``head`` and its submodules never match. Raises ValueError if nothing matches or if a matching
    Conv2d has groups != 1 (a grouped conv's weight is block-diagonal, not one (out, in·k²) map).
    """
    found: dict[str, tuple[int, int]] = {}
    for name, m in model.named_modules():
        under_head = name == HEAD or name.startswith(HEAD + ".")
        if not name or under_head or type(m) not in _BASE_TYPES:
            continue
        if not any(fnmatch.fnmatchcase(name, p) for p in targets):
            continue
        if isinstance(m, nn.Conv2d) and m.groups != 1:
            raise ValueError(f"target {name!r} is a Conv2d with groups={m.groups}; only 1 works")
        found[name] = matrix_shape(m)  # type: ignore[arg-type]
    if not found:
        layers = [n for n, m in model.named_modules() if type(m) in _BASE_TYPES]
        layers = [n for n in layers if n and n.split(".")[0] != HEAD]
        raise AdapterConfigError(
            f"adapter.targets: no nn.Linear/nn.Conv2d layer matches targets {list(targets)!r} "
            f"(head excluded; layers: {name_list(layers, 8) or 'none'})"
        )
    return found


def check_rank(rank: int, shapes: Sequence[tuple[int, int]]) -> None:
    """Refuse a rank no adapted layer can use: per-layer clipping would hide a typo (100000)."""
    widest = max((min(shape) for shape in shapes), default=rank)
    if rank > widest:
        raise AdapterConfigError(
            f"adapter.rank: {rank} is larger than every target layer allows (at most {widest} "
            "here: min(d_out, d_in) of the widest target)"
        )


def apply_adapters(model: nn.Module, cfg: AdapterConfig) -> nn.Module:
    """Wrap the target layers in place for ``cfg.method``, set requires_grad, return the model.

    Deterministic given ``cfg.init_seed``: random A (lora, ffa-lora) comes from a torch.Generator
    seeded by it, drawn in module order. ``full`` and ``head-only`` wrap nothing (targets are
    ignored). LoRA-SB layers start with B = A = R = 0 (output W0 x) and
    need ``lora_sb_init.init_lora_sb`` before training.
    """
    if cfg.method not in METHODS:
        raise ValueError(f"unknown adapter method {cfg.method!r}; expected one of {METHODS}")
    head = _head(model)
    if adapted_layers(model):
        raise ValueError("model already has adapters; apply_adapters takes a plain model")
    model.requires_grad_(cfg.method == "full")
    if cfg.method in ADAPTED_METHODS:
        generator = torch.Generator().manual_seed(cfg.init_seed)
        shapes = target_shapes(model, cfg.targets)
        check_rank(cfg.rank, list(shapes.values()))
        names = list(shapes)
        if cfg.head == "adapt":
            if type(head) not in _BASE_TYPES:
                raise ValueError(
                    f"head = 'adapt' needs an nn.Linear head, got {type(head).__name__}"
                )
            names.append(HEAD)
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            layer = AdaptedLayer(getattr(parent, child), cfg.method, cfg.rank, cfg.alpha, generator)
            setattr(parent, child, layer)
    head.requires_grad_(cfg.head == "train")
    return model


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimizer (or Opacus) should see: those with requires_grad."""
    return [p for p in model.parameters() if p.requires_grad]


def count_trainable(model: nn.Module) -> int:
    """Number of trained scalars (what one client uploads per round, in elements)."""
    return sum(p.numel() for p in trainable_parameters(model))


def trainable_count_formula(
    layer_shapes: Sequence[tuple[int, int]],
    head_params: int,
    method: str,
    rank: int,
    total_params: int | None = None,
) -> int:
    """Trained scalars from the layer matrix shapes (d_out, d_in), d_in = in·kh·kw for a conv.

    lora-sb: Σ r² + head; lora: Σ r(d_in + d_out) + head; ffa-lora: Σ r·d_out + head;
    full: total_params (every parameter); head-only: head. r = min(rank, d_out, d_in) per layer.
    ``head_params`` is what the head trains: its size, 0 when frozen; an adapted head is passed
    as one more layer shape with ``head_params`` = 0.
    """
    if method not in METHODS:
        raise ValueError(f"unknown adapter method {method!r}; expected one of {METHODS}")
    if method == "full":
        if total_params is None:
            raise ValueError("method 'full' needs total_params")
        return total_params
    if method == "head-only":
        return head_params
    total = head_params
    for d_out, d_in in layer_shapes:
        r = min(rank, d_out, d_in)
        total += {"lora-sb": r * r, "lora": r * (d_in + d_out), "ffa-lora": r * d_out}[method]
    return total


def expected_trainable(model: nn.Module, cfg: AdapterConfig) -> int:
    """``trainable_count_formula`` for a plain (not yet adapted) model and a config."""
    if adapted_layers(model):
        raise ValueError("expected_trainable takes the plain model, before apply_adapters")
    head_layer = _head(model)
    head = sum(p.numel() for p in head_layer.parameters())
    total = sum(p.numel() for p in model.parameters())
    shapes = (
        list(target_shapes(model, cfg.targets).values()) if cfg.method in ADAPTED_METHODS else []
    )
    if cfg.head != "train":
        head = 0
    if shapes:
        check_rank(cfg.rank, shapes)  # as apply_adapters: the targets, before the head joins
    if cfg.head == "adapt":  # AdapterConfig allows it for adapter methods only
        shapes.append(matrix_shape(head_layer))  # type: ignore[arg-type]
    return trainable_count_formula(shapes, head, cfg.method, cfg.rank, total)


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached clones of exactly the trained tensors, keyed by parameter path.

    This is what a federated client sends, e.g. ``blocks.0.attn.q.lora_R.weight`` and
    ``head.weight``; for ``full`` it is every parameter. Pass the plain model, not an Opacus
    GradSampleModule (whose keys gain a ``_module.`` prefix). The clones are on the CPU, as
    every state on the wire or on disk is.
    """
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_adapter_state(
    model: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True
) -> None:
    """Copy a state from ``adapter_state`` into the trained parameters, after checking it.

    The key set must equal the trained set (``strict=False`` allows missing keys, left as they
    are); every shape and dtype must match and every value be finite, else AdapterStateError.
    """
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    load_checked(trained, state, strict)


def merge(model: nn.Module) -> nn.Module:
    """A deep copy with every adapted layer replaced by a plain layer of its base type.

    Each merged weight is W0 + s·B·R·A (or W0 + s·B·A), so logits are unchanged; a non-finite
    merged weight raises AdapterStateError. requires_grad and train/eval mode are copied as they
    are; the original model is not modified. Use it for export and inference.
    """
    merged = copy.deepcopy(model)
    for name, layer in adapted_layers(merged).items():
        parent_name, _, child = name.rpartition(".")
        setattr(merged.get_submodule(parent_name), child, layer.merged(name))
    return merged
