"""Which image classifies best: every stack of fedsb.images vs a 1-D CNN on the raw IQ.

One fixed budget for all (same records, split, epochs, optimiser, seed): the default ResNet is
trained from scratch on each image stack, and the IQ CNN on the raw records, on a target-domain
set (multipath fading, carrier offset, IQ imbalance, phase noise; SNR -10..20 dB). Prints
accuracy overall, at SNR >= 10 dB and per 5-dB SNR bin, side by side.

Run: ``python bench/bench_representations.py [--per-class 600] [--epochs 6]``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from rich.console import Console
from rich.table import Table

from fedsb.data.config import DataConfig
from fedsb.data.imageset import ImageSet, images_from_records
from fedsb.images import STACKS, ImageConfig
from fedsb.models.backbones import build_backbone
from fedsb.models.config import ModelConfig
from fedsb.models.iq_cnn import IQCNN, iq_to_tensor
from fedsb.signals import generate
from fedsb.training.config import TARGET_GENERATOR, TrainConfig
from fedsb.training.loop import evaluate_logits, fit, predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=600)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    console = Console(width=160)
    records = {
        "train": generate(TARGET_GENERATOR, "rml2016", args.per_class, seed=args.seed),
        "val": generate(TARGET_GENERATOR, "rml2016", args.test_per_class // 2, seed=args.seed + 1),
        "test": generate(TARGET_GENERATOR, "rml2016", args.test_per_class, seed=args.seed + 2),
    }
    train_cfg = TrainConfig(epochs=args.epochs, seed=args.seed)
    results = {}
    for stack in args.stacks.split(","):
        data = DataConfig(images=ImageConfig(channels=stack))
        sets = {k: images_from_records(r, data) for k, r in records.items()}
        torch.manual_seed(args.seed)
        model = build_backbone(ModelConfig(), len(data.images.channels), 11, data.images.size)
        start = time.perf_counter()
        fit(model, list(model.parameters()), sets["train"], sets["val"], train_cfg)
        results[f"{stack} ({len(data.images.channels)} ch)"] = (
            evaluate_logits(predict(model, sets["test"]), sets["test"]),
            time.perf_counter() - start,
        )
        console.print(f"{stack}: done")
    iq = {
        k: ImageSet(
            iq_to_tensor(r.iq),
            torch.from_numpy(r.labels),
            torch.from_numpy(r.snr_db.astype("float32")),
            r.class_names,
        )
        for k, r in records.items()
    }
    torch.manual_seed(args.seed)
    model = IQCNN(num_classes=11)
    start = time.perf_counter()
    fit(model, list(model.parameters()), iq["train"], iq["val"], train_cfg)
    results["raw IQ, 1-D CNN"] = (
        evaluate_logits(predict(model, iq["test"]), iq["test"]),
        time.perf_counter() - start,
    )

    first = next(iter(results.values()))[0]
    table = Table(
        title=f"target domain, {args.per_class}/class train, {args.epochs} epochs, "
        f"accuracy % on {args.test_per_class}/class test"
    )
    for col in ("input", "overall", ">= 10 dB", *first.snr_labels, "train s"):
        table.add_column(col, justify="right" if col != "input" else "left")
    for name, (ev, seconds) in results.items():
        table.add_row(
            name,
            f"{100 * ev.accuracy:.1f}",
            f"{100 * ev.accuracy_high_snr:.1f}",
            *(f"{100 * a:.1f}" for a in ev.snr_accuracy),
            f"{seconds:.0f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
