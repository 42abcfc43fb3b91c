"""Data-pipeline throughput: records/s for generation and IQ->image, one core vs all cores.

Run: ``make bench`` (or ``python bench/bench_data.py --records 8192``). Everything is measured
side by side in this one run, with 1,024-sample records and every impairment on. When TorchSig
is importable it generates the same kind of narrowband records (impairment level 2) and the
ratio is printed. Targets (issue 3): >= 6,000 records/s per core for generation + images, and
>= 100x TorchSig.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from rich.console import Console
from rich.table import Table

from fedsb.images import ImageConfig, to_images
from fedsb.signals.config import GeneratorConfig
from fedsb.signals.generator import generate

TORCHSIG_CLASSES = [
    "bpsk",
    "qpsk",
    "8psk",
    "16qam",
    "64qam",
    "4ask",
    "2gfsk",
    "fm",
    "am-dsb",
    "am-usb",
]


def timed(fn, repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` runs (the least disturbed by other load) and the result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def torchsig_rate(n: int, length: int) -> tuple[float | None, str]:
    """Records/s of TorchSig 2.x narrowband generation in this process, or why not measured."""
    try:
        from torchsig.datasets.datasets import TorchSigIterableDataset
        from torchsig.transforms.impairments import Impairments
        from torchsig.utils.defaults import TorchSigDefaults
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        return None, f"not importable ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"
    md = TorchSigDefaults().default_dataset_metadata
    md.update(
        num_iq_samples_dataset=length,
        fft_size=64,
        fft_stride=64,
        num_signals_min=1,
        num_signals_max=1,
        cochannel_overlap_probability=0.0,
        signal_duration_in_samples_min=int(0.8 * length),
        signal_duration_in_samples_max=length,
    )
    imp = Impairments(level=2)
    ds = TorchSigIterableDataset(
        signal_generators=TORCHSIG_CLASSES,
        metadata=md,
        transforms=[imp.dataset_transforms],
        component_transforms=[imp.signal_transforms],
        target_labels=["class_index"],
        seed=0,
    )
    it = iter(ds)
    for _ in range(20):  # warm-up (numba JIT)
        next(it)
    start = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - start), f"torchsig, {len(TORCHSIG_CLASSES)} classes, level 2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=8448, help="records per measurement")
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--torchsig-records", type=int, default=300)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    cfg = GeneratorConfig(length=args.length)  # every impairment on (the defaults)
    per_class = max(1, args.records // 11)
    n = per_class * 11
    img_cfg = ImageConfig()

    torch.set_num_threads(1)
    t_gen1, records = timed(lambda: generate(cfg, "rml2016", per_class, seed=0), args.repeats)
    t_img1, _ = timed(lambda: to_images(records.iq, img_cfg), args.repeats)
    t_gen_all, _ = timed(
        lambda: generate(cfg, "rml2016", per_class, seed=0, workers=cores), args.repeats
    )
    torch.set_num_threads(cores)
    t_img_all, _ = timed(lambda: to_images(records.iq, img_cfg), args.repeats)

    table = Table(
        title=f"fedsb data pipeline: {n} records x {args.length} samples, all "
        f"impairments on, image stack {img_cfg.channels} at {img_cfg.size}px"
    )
    for col in ("stage", "1 core rec/s", f"{cores} cores rec/s", "speed-up"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    rows = [
        ("generation", t_gen1, t_gen_all),
        ("images", t_img1, t_img_all),
        ("generation + images", t_gen1 + t_img1, t_gen_all + t_img_all),
    ]
    for name, t1, tall in rows:
        table.add_row(name, f"{n / t1:,.0f}", f"{n / tall:,.0f}", f"{t1 / tall:.2f}x")
    console = Console(width=160)
    console.print(table)
    per_core = n / (t_gen1 + t_img1)
    console.print(f"generation + images per core: {per_core:,.0f} records/s (target >= 6,000)")

    ts_rate, ts_note = torchsig_rate(args.torchsig_records, args.length)
    if ts_rate is None:
        console.print(f"TorchSig: {ts_note}; ratio not measured (see README, 'TorchSig').")
    else:
        console.print(
            f"TorchSig ({ts_note}): {ts_rate:,.0f} records/s in one process; fedsb "
            f"generation is {n / t_gen1 / ts_rate:,.0f}x faster, generation + images "
            f"{per_core / ts_rate:,.0f}x (target >= 100x)"
        )


if __name__ == "__main__":
    main()
