"""Samples per second on the CPU and, where there is one, the GPU: one script of at most 5 min.

Three phases on synthetic uint8 images of the presets' shape (8 channels, 32 x 32), each through
the ``run_epoch`` that pretraining, fine-tuning and the federated clients train with:

* pretraining: every weight trains (AdamW, batch 128);
* a fine-tuning step: LoRA-SB r = 16 on every layer (only R and the head train, batch 128);
* a federated round: 10 clients of LoRA-SB local training (batch 64), plus the serialisation of
  what each sends.

Two backbones, the ``model`` sections of the shipped presets: ``pretrain`` (the default ResNet,
1.2 M parameters) and ``pretrain-wide`` (a ViT of dim 384 and 6 blocks, 7.3 M, the shape where
Fed-SB's (d_in + d_out) / r is large). Columns: the CPU (every core torch uses), CUDA in float32
and CUDA with ``train.amp`` (bfloat16 autocast), and the GPU / CPU ratios measured side by side.
Without a GPU only the CPU column is measured, and the header says so. Each cell runs for about
``--seconds`` after one warm-up call: the full run is 2 x 3 x 3 cells of 8 s plus warm-ups and
set-up, sized for under 5 min on a GPU machine (its CPU column included; not yet run on one);
``--quick`` is 1 s cells on smaller rounds.

    python bench/bench_gpu.py            # CPU, and CUDA (float32, amp) when torch sees a GPU
    python bench/bench_gpu.py --quick    # a quick look (CPU only, 2 busy cores: under 5 min)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fedsb.config import load_config
from fedsb.data.imageset import ImageSet
from fedsb.federated.aggregate import serialize
from fedsb.models.adapters import adapter_state, apply_adapters, trainable_parameters
from fedsb.models.backbones import build_backbone, count_parameters
from fedsb.models.config import AdapterConfig, ModelConfig
from fedsb.models.lora_sb_init import estimate_weight_gradients, init_lora_sb
from fedsb.training.config import PretrainConfig
from fedsb.training.loop import run_epoch, shuffled_batches

CHANNELS, SIZE, CLASSES, BATCH, CLIENTS = 8, 32, 11, 128, 10
PRESETS = {"pretrain": "default", "pretrain-wide": "wide"}
PHASES = ("pretraining", "fine-tuning step", "federated round")


@dataclass(frozen=True)
class Budget:
    """Seconds per cell, batches per training call, records per client and round."""

    seconds: float = 8.0
    batches: int = 4
    client_records: int = 256


@dataclass(frozen=True)
class Column:
    """One measured setting: a device, with or without mixed precision."""

    name: str
    device: torch.device
    amp: bool = False


def columns() -> list[Column]:
    """The CPU, and CUDA in float32 and with amp where torch sees a GPU."""
    out = [Column("cpu", torch.device("cpu"))]
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        out += [Column("cuda", gpu), Column("cuda+amp", gpu, amp=True)]
    return out


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


def timed(step: Callable[[], int], seconds: float, device: torch.device) -> float:
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


def phases(cfg: ModelConfig, col: Column, budget: Budget) -> dict[str, float]:
    """Samples/s of the three phases for one backbone in one column."""
    data = images(max(CLIENTS * budget.client_records, BATCH * budget.batches))
    loss = lambda logits, y: F.cross_entropy(logits, y)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    full = build_backbone(cfg, CHANNELS, CLASSES, SIZE).to(col.device)
    opt = torch.optim.AdamW(full.parameters(), lr=1e-3)

    def epoch(model, part, optimizer, n: int, batch: int) -> int:
        batches = shuffled_batches(n, batch, g)
        return run_epoch(model, part, optimizer, batches, loss, amp=col.amp).seen

    model = adapted(cfg, col.device, data)
    ft_opt = torch.optim.AdamW(trainable_parameters(model), lr=1e-2)
    n, per = BATCH * budget.batches, budget.client_records

    def federated_round() -> int:
        seen = 0
        for client in range(CLIENTS):
            part = data.subset(torch.arange(client * per, (client + 1) * per))
            local = torch.optim.AdamW(trainable_parameters(model), lr=1e-2)
            seen += epoch(model, part, local, per, 64)
            serialize(adapter_state(model))  # what a client sends (CPU tensors)
        return seen

    return {
        "pretraining": timed(lambda: epoch(full, data, opt, n, BATCH), budget.seconds, col.device),
        "fine-tuning step": timed(
            lambda: epoch(model, data, ft_opt, n, BATCH), budget.seconds, col.device
        ),
        "federated round": timed(federated_round, budget.seconds, col.device),
        "parameters": count_parameters(full),
    }


def table(name: str, results: dict[str, dict[str, float]], cols: list[Column]) -> str:
    """One backbone's rows: samples/s per column, then each GPU column / the CPU."""
    gpu = [c.name for c in cols if c.device.type == "cuda"]
    lines = [
        f"\n{name}: {results['cpu']['parameters']:,} parameters; samples/s",
        f"{'phase':<18}" + "".join(f"{c.name:>11}" for c in cols)
        + "".join(f"{g + '/cpu':>14}" for g in gpu),
    ]  # fmt: skip
    for phase in PHASES:
        cells = "".join(f"{results[c.name][phase]:>11.0f}" for c in cols)
        ratios = "".join(f"{results[g][phase] / results['cpu'][phase]:>13.1f}x" for g in gpu)
        lines.append(f"{phase:<18}{cells}{ratios}")
    return "\n".join(lines)


def main() -> None:
    """Measure every backbone in every column and print one table per backbone."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None, help="time per cell")
    parser.add_argument("--quick", action="store_true", help="1 s cells, 64 records per client")
    args = parser.parse_args()
    budget = Budget(1.0, 1, 64) if args.quick else Budget()
    if args.seconds is not None:
        budget = Budget(args.seconds, budget.batches, budget.client_records)
    cols = columns()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        + (f"GPU: {torch.cuda.get_device_name()}" if len(cols) > 1 else "no GPU: CPU figures only")
        + f"; {budget.seconds:g} s per cell, {budget.client_records} records per client"
    )
    start = time.perf_counter()
    for preset, label in PRESETS.items():
        cfg = load_config(PretrainConfig, preset).model
        results = {c.name: phases(cfg, c, budget) for c in cols}
        print(table(f"{preset} ({label}, {cfg.arch})", results, cols), flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
