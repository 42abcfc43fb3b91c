"""LoRA-SB initialisation: B, A and R0 from the SVD of a simulated first full fine-tuning step.

LoRA-SB (Ponkshe et al., "Initialization using update approximation is a silver bullet for
extreme efficient low-rank fine-tuning", arXiv 2411.19557; code CERT-Lab/lora-sb,
``utils/gradient_utils.py`` and ``utils/svd_utils.py``) and Fed-SB (Singhal et al., arXiv
2502.15436) fix B and A once, from the first update full fine-tuning would make:

    G   = Σ_batches ∂(L_batch / |batch|)/∂W0     over the first N training samples
    ΔW  = −η · sign(G)                            (Adam's first step has magnitude η·sign(g))
    ΔW  = U Σ Vᵀ (matrix view, d_out × d_in; d_in = in·kh·kw for a conv)
    B   = U_r,  A = V_rᵀ,  R0 = diag(σ_1..σ_r),  s = 1,  W0 unchanged

so training starts at W0 + rank_r(ΔW), the best rank-r approximation (Eckart–Young) of that step,
and the trainable R moves inside span(B)·span(A), the top singular directions of the first
update. Only R (r² per layer) trains and is exchanged; Fed-SB averages R across clients exactly
because B and A are shared.

Where G comes from (the two sources the federated code can use):

* Server-side proxy data: the server runs N forward/backward passes on data it holds; zero
  communication. This is what the reference code does (it pools the training data before
  sharding it), which a real deployment cannot.
* Federated round 0: each client sums its full-weight gradients over its first samples and sends
  them once: Σ d_out·d_in floats per client (``gradient_payload_bytes``). The server adds them,
  runs ``init_lora_sb`` and broadcasts B and A, r·(d_in + d_out) floats per layer
  (``basis_payload_bytes``, ``lora_sb_basis``/``load_lora_sb_basis``). Broadcasting the basis,
  rather than letting each client run the SVD, matters: singular vectors are only defined up to
  sign, and Fed-SB's exact averaging needs B and A bit-identical on every client.

The SVD is ``torch.linalg.svd`` (exact, deterministic) rather than the reference's
``torch.svd_lowrank``: our layers are at most a few hundred by a few thousand, where the exact SVD
costs milliseconds, whereas ``svd_lowrank`` is a randomized approximation (q = r, a few power
iterations) that would need its own seeded generator and loses accuracy on the tail of a ±1
matrix's flat spectrum.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..devices import model_device
from .adapters import AdaptedLayer, adapted_layers, matrix_shape
from .config import AdapterConfig
from .state import load_checked

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def lora_sb_layers(model: nn.Module) -> dict[str, AdaptedLayer]:
    """The adapted layers of method ``lora-sb``, by module name; ValueError if there are none."""
    layers = {n: m for n, m in adapted_layers(model).items() if m.method == "lora-sb"}
    if not layers:
        raise ValueError("model has no lora-sb layers; call apply_adapters(method='lora-sb')")
    return layers


@contextlib.contextmanager
def _base_weights_only(layers: Iterable[AdaptedLayer]) -> Iterator[None]:
    """Bypass the adapters and let the base weights take gradients, restoring both on exit."""
    layers = list(layers)
    saved = [(m.bypass, m.base_layer.weight.requires_grad) for m in layers]
    try:
        for m in layers:
            m.bypass = True
            m.base_layer.weight.requires_grad_(True)
        yield
    finally:
        for m, (bypass, req) in zip(layers, saved):
            m.bypass = bypass
            m.base_layer.weight.requires_grad_(req)


def estimate_weight_gradients(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn = F.cross_entropy,
    num_samples: int | None = None,
) -> dict[str, torch.Tensor]:
    """G = Σ_batches ∂L_batch/∂W0 for every lora-sb layer, with L_batch the batch-mean loss.

    Computed on the adapted model with every adapter bypassed (forward = base(x), exactly the
    unwrapped model, whatever B, A, R hold) and the base weights temporarily requiring grad;
    gradients come from ``torch.autograd.grad``, so no ``.grad`` of the model is touched and all
    flags are restored afterwards. ``loss_fn`` must average over the batch (as F.cross_entropy
    does), matching the reference's loss / batch size. Stops after ``num_samples`` samples (the
    last batch is truncated, so exactly the first N samples count). Runs in the model's current
    train/eval mode, on its device. Pass the plain model, not an Opacus wrapper. Returns float32
    CPU tensors shaped like each base weight, keyed by module name.
    """
    layers = lora_sb_layers(model)
    weights = [m.base_layer.weight for m in layers.values()]
    sums = [torch.zeros(w.shape, dtype=torch.float32, device=w.device) for w in weights]
    seen, device = 0, model_device(model)
    with _base_weights_only(layers.values()), torch.enable_grad():
        for x, y in batches:
            if num_samples is not None:
                x, y = x[: num_samples - seen], y[: num_samples - seen]
            if len(x) == 0:
                break
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            grads = torch.autograd.grad(loss, weights, allow_unused=True, materialize_grads=True)
            for total, g in zip(sums, grads):
                total += g.float()
            seen += len(x)
            if num_samples is not None and seen >= num_samples:
                break
    if seen == 0:
        raise ValueError("estimate_weight_gradients: the batches held no samples")
    return {name: total.cpu() for name, total in zip(layers, sums)}  # wire and SVD: the CPU


def init_lora_sb(model: nn.Module, gradients: Mapping[str, torch.Tensor], lr: float) -> None:
    """Set B = U_r, A = V_rᵀ, R = diag(σ_1..σ_r), s = 1 from ΔW = −lr·sign(G); W0 is unchanged.

    ``gradients`` must have exactly one entry per lora-sb layer, shaped like its base weight.
    A conv layer's A is V_rᵀ reshaped to r kernels (r, in, kh, kw) and B is U_r as a 1×1 conv.
    """
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    layers = lora_sb_layers(model)
    if set(gradients) != set(layers):
        missing, extra = sorted(set(layers) - set(gradients)), sorted(set(gradients) - set(layers))
        raise ValueError(f"gradients do not match lora-sb layers: missing {missing}, extra {extra}")
    for name, layer in layers.items():
        g = gradients[name]
        if g.shape != layer.base_layer.weight.shape:
            want = tuple(layer.base_layer.weight.shape)
            raise ValueError(f"gradient {name!r}: shape {tuple(g.shape)}, expected {want}")
        if not torch.isfinite(g).all():
            raise ValueError(f"gradient {name!r} has NaN/Inf values")
        d_out, d_in = matrix_shape(layer.base_layer)
        delta = -lr * torch.sign(g.detach().float()).reshape(d_out, d_in)
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        set_lora_sb_factors(layer, u, s, vh)


def set_lora_sb_factors(
    layer: AdaptedLayer, u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor
) -> None:
    """B = U_r, A = Vh_r, R = diag(s_r), s = 1: the layer starts at W0 + U_r·diag(s_r)·Vh_r.

    ``u`` (d_out × ≥r), ``s`` (≥r) and ``vh`` (≥r × d_in) are any factorisation of the step
    (an SVD, or a sketch's); only the first ``layer.rank`` columns and rows are used.
    """
    r = layer.rank
    assert layer.lora_R is not None
    with torch.no_grad():
        layer.lora_B.weight.copy_(u[:, :r].reshape(layer.lora_B.weight.shape))
        layer.lora_A.weight.copy_(vh[:r].reshape(layer.lora_A.weight.shape))
        layer.lora_R.weight.copy_(torch.diag(s[:r]))
    layer.scaling = 1.0


def initialize_lora_sb(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    cfg: AdapterConfig,
    loss_fn: LossFn = F.cross_entropy,
) -> dict[str, torch.Tensor]:
    """Server-side proxy-data path: estimate G on ``cfg.init_samples``, init with ``cfg.init_lr``.

    Returns G (e.g. for ``gradient_payload_bytes``).
    """
    gradients = estimate_weight_gradients(model, batches, loss_fn, cfg.init_samples)
    init_lora_sb(model, gradients, cfg.init_lr)
    return gradients


def gradient_payload_bytes(gradients: Mapping[str, torch.Tensor]) -> int:
    """Bytes one client sends in federated round 0: its summed gradients as float32."""
    return sum(4 * g.numel() for g in gradients.values())


def lora_sb_basis(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached clones of the frozen B and A of every lora-sb layer (what the server broadcasts)."""
    out: dict[str, torch.Tensor] = {}
    for name, layer in lora_sb_layers(model).items():
        out[f"{name}.lora_A.weight"] = layer.lora_A.weight.detach().cpu().clone()
        out[f"{name}.lora_B.weight"] = layer.lora_B.weight.detach().cpu().clone()
    return out


def load_lora_sb_basis(model: nn.Module, basis: Mapping[str, torch.Tensor]) -> None:
    """Load a broadcast basis (keys, shapes, dtypes and finiteness checked; AdapterStateError)."""
    targets: dict[str, torch.Tensor] = {}
    for name, layer in lora_sb_layers(model).items():
        targets[f"{name}.lora_A.weight"] = layer.lora_A.weight
        targets[f"{name}.lora_B.weight"] = layer.lora_B.weight
        layer.scaling = 1.0
    load_checked(targets, basis, strict=True, what="lora-sb basis")


def basis_payload_bytes(model: nn.Module) -> int:
    """Bytes of the broadcast basis as float32: Σ r·(d_in + d_out) per lora-sb layer."""
    return sum(4 * t.numel() for t in lora_sb_basis(model).values())
