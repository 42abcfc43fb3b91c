"""Samples per second on the CPU and, where there is one, the GPU: one script of at most 5 min.

Three phases on synthetic uint8 images of the presets' shape (8 channels, 32 x 32):

* pretraining: every weight trains (AdamW, batch 128);
* a fine-tuning step: LoRA-SB r = 16 on every layer (only R and the head train);
* a federated round: 10 clients x 256 records of LoRA-SB local training through the same
  ``run_epoch`` the clients use, plus the serialisation of what each sends.

Two backbones: the default ResNet (1.2 M parameters) and a wide ViT (dim 384, 6 blocks, the
shape where Fed-SB's (d_in + d_out) / r is large). Each cell runs for about ``--seconds``; the
table prints samples/s per device and the GPU / CPU ratio measured side by side.

    python bench/bench_gpu.py               # CPU, and CUDA when torch sees a GPU
    python bench/bench_gpu.py --seconds 2   # a quick look
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from fedsb.data.imageset import ImageSet
from fedsb.federated.aggregate import serialize
from fedsb.models.adapters import adapter_state, apply_adapters, trainable_parameters
from fedsb.models.backbones import build_backbone, count_parameters
from fedsb.models.config import AdapterConfig, ModelConfig
from fedsb.models.lora_sb_init import estimate_weight_gradients, init_lora_sb
from fedsb.training.loop import run_epoch, shuffled_batches

CHANNELS, SIZE, CLASSES, BATCH = 8, 32, 11, 128
BACKBONES = {
    "resnet (default)": ModelConfig(),
    "vit-384x6 (wide)": replace(ModelConfig(), arch="vit", dim=384, depth=6, heads=6, patch=4),
}


def images(n: int, seed: int = 0) -> ImageSet:
    """``n`` random uint8 images of the presets' shape with random labels (speed only)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, CHANNELS, SIZE, SIZE), dtype=torch.uint8, generator=g)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    return ImageSet(x, y, torch.zeros(n), tuple(f"c{i}" for i in range(CLASSES)))


def adapted(cfg: ModelConfig, device: torch.device, data: ImageSet) -> torch.nn.Module:
    """The backbone with LoRA-SB r = 16 everywhere, B and A from one gradient estimate."""
    model = build_backbone(cfg, CHANNELS, CLASSES, SIZE)
    apply_adapters(model, AdapterConfig(method="lora-sb", rank=16))
    model.to(device)
    grads = estimate_weight_gradients(model, [data.batch(torch.arange(BATCH))])
    init_lora_sb(model, grads, 1e-3)
    return model


def timed(step, seconds: float, device: torch.device) -> float:
    """Samples per second of ``step()`` (which returns its sample count), after one warm-up."""
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def phases(cfg: ModelConfig, device: torch.device, seconds: float) -> dict[str, float]:
    """Samples/s of the three phases for one backbone on one device."""
    data = images(2560)
    loss = lambda logits, y: F.cross_entropy(logits, y)  # noqa: E731
    full = build_backbone(cfg, CHANNELS, CLASSES, SIZE).to(device)
    opt = torch.optim.AdamW(full.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)

    def pretrain_step() -> int:
        batches = shuffled_batches(BATCH * 4, BATCH, g)
        return run_epoch(full, data, opt, batches, loss).seen

    model = adapted(cfg, device, data)
    ft_opt = torch.optim.AdamW(trainable_parameters(model), lr=1e-2)

    def finetune_step() -> int:
        return run_epoch(model, data, ft_opt, shuffled_batches(BATCH * 4, BATCH, g), loss).seen

    def federated_round() -> int:
        seen = 0
        for client in range(10):
            part = data.subset(torch.arange(client * 256, (client + 1) * 256))
            local = torch.optim.AdamW(trainable_parameters(model), lr=1e-2)
            seen += run_epoch(model, part, local, shuffled_batches(256, 64, g), loss).seen
            serialize(adapter_state(model))
        return seen

    return {
        "pretraining": timed(pretrain_step, seconds, device),
        "fine-tuning step": timed(finetune_step, seconds, device),
        "federated round": timed(federated_round, seconds, device),
        "parameters": count_parameters(full),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="time per cell")
    args = parser.parse_args()
    torch.manual_seed(0)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, devices: "
        + ", ".join(d.type for d in devices)
        + ("" if len(devices) > 1 else " (no GPU: CPU figures only)")
    )
    for name, cfg in BACKBONES.items():
        results = {d.type: phases(cfg, d, args.seconds) for d in devices}
        print(f"\n{name}: {results['cpu']['parameters']:,} parameters; samples/s")
        print(
            f"{'phase':<18}"
            + "".join(f"{d.type:>12}" for d in devices)
            + ("   gpu/cpu" if len(devices) > 1 else "")
        )
        for phase in ("pretraining", "fine-tuning step", "federated round"):
            cells = "".join(f"{results[d.type][phase]:>12.0f}" for d in devices)
            ratio = results["cuda"][phase] / results["cpu"][phase] if len(devices) > 1 else None
            print(f"{phase:<18}{cells}" + (f"   {ratio:7.1f}x" if ratio else ""))


if __name__ == "__main__":
    main()
