"""Per adapter method: one local training step's time and peak memory, trained parameters and
the bytes a federated client sends, side by side in one run, with ratios to ``full``.

Run: ``python bench/bench_train.py [--arch resnet|vit] [--rank 16] [--batch 64]``. Each method
runs in its own fresh process (so peak RSS is its own), on the default backbone and image
shape, with a fixed random batch; the step time is the median of ``--steps`` timed steps.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from fedsb.models.adapters import (
    adapter_state,
    apply_adapters,
    count_trainable,
    trainable_parameters,
)
from fedsb.models.backbones import build_backbone, count_parameters
from fedsb.models.config import METHODS, AdapterConfig, ModelConfig
from fedsb.models.lora_sb_init import estimate_weight_gradients, init_lora_sb


def measure(method: str, arch: str, rank: int, batch: int, steps: int, threads: int) -> dict:
    """Run in a child process: build, adapt, time ``steps`` optimiser steps, report peak RSS."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_backbone(ModelConfig(arch=arch), 8, 11, 32)
    total = count_parameters(model)  # the backbone's own parameters, before adapters
    cfg = AdapterConfig(method=method, rank=rank)
    apply_adapters(model, cfg)
    x, y = torch.rand(batch, 8, 32, 32), torch.randint(0, 11, (batch,))
    if method == "lora-sb":
        init_lora_sb(model, estimate_weight_gradients(model, [(x, y)]), cfg.init_lr)
    opt = torch.optim.AdamW(trainable_parameters(model), lr=1e-3)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - start)
    state = adapter_state(model)
    return {
        "method": method,
        "step_ms": 1000 * statistics.median(times),
        "peak_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
        "trained": count_trainable(model),
        "total": total,
        "bytes": sum(t.numel() * t.element_size() for t in state.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet", choices=["resnet", "vit"])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    for method in METHODS:
        with ctx.Pool(1) as pool:
            rows.append(
                pool.apply(
                    measure, (method, args.arch, args.rank, args.batch, args.steps, args.threads)
                )
            )
    full = next(r for r in rows if r["method"] == "full")
    table = Table(
        title=f"one local step, {args.arch}, rank {args.rank}, batch {args.batch}, "
        f"{args.threads} thread(s)"
    )
    for col in (
        "method",
        "step ms",
        "x full",
        "peak MB",
        "x full",
        "trained params",
        "% of model",
        "bytes sent",
        "x full",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["method"],
            f"{r['step_ms']:.1f}",
            f"{r['step_ms'] / full['step_ms']:.2f}",
            f"{r['peak_mb']:.0f}",
            f"{r['peak_mb'] / max(full['peak_mb'], 1e-9):.2f}",
            f"{r['trained']:,}",
            f"{100 * r['trained'] / r['total']:.2f}",
            f"{r['bytes']:,}",
            f"{r['bytes'] / full['bytes']:.4f}",
        )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
