"""What limits accuracy at SNR >= 10 dB on the target domain: the levers, side by side in one run.

Full fine-tuning (the upper bound of every adapter) of the default pretrained backbone on the
target domain of ``configs/finetune.toml``, once as configured and once per lever: three times
the training data, twice the epochs, and the same channel without multipath fading. For each it
prints test accuracy overall and at SNR >= 10 dB, split into the amplitude-phase constellations
(8psk, 16qam, 64qam) and the other classes, which is where the difference lies.

Run: ``python bench/bench_target_limits.py [--out runs/bench-limits] [--only base,nofading]``
(about 50 minutes on 2 cores, half of it the 64 x 64 pretraining; the data sets are cached
under ``.cache/fedsb``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from fedsb.cli.progress import RichReporter
from fedsb.config import apply_overrides, load_config, save_config
from fedsb.data.splits import build_splits
from fedsb.models.checkpoint import backbone_from_checkpoint, load_checkpoint
from fedsb.reporter import SilentReporter
from fedsb.runs import MODEL_FILE
from fedsb.training.config import FinetuneConfig, PretrainConfig
from fedsb.training.finetune import finetune
from fedsb.training.loop import predict

LEVERS = {
    "base": [],
    "data3x": ["data.per_class=3000"],
    "epochs2x": ["train.epochs=16"],
    "nofading": ["data.generator.fading.enabled=false"],
    # 64 x 64 images need a backbone pretrained on them: configs/pretrain.toml at that size,
    # written next to the runs (pretrained once, cached by config hash like the default)
    "images64": ["data.images.size=64", "pretrained='{out}/pretrain64.toml'"],
}
HARD = ("8psk", "16qam", "64qam")  # amplitude-phase constellations, smeared by multipath


def high_snr_by_group(run: Path, cfg: FinetuneConfig, cache: Path) -> tuple[float, float]:
    """Accuracy at SNR >= 10 dB on the hard classes and on the others (the run's test split)."""
    test = build_splits(cfg.data, cfg.val_per_class, cfg.test_per_class, cache, SilentReporter())[
        "test"
    ]
    state, meta = load_checkpoint(run / MODEL_FILE)
    pred = predict(backbone_from_checkpoint(state, meta), test).argmax(1)
    hard = torch.isin(test.labels, torch.tensor([test.class_names.index(c) for c in HARD]))
    high = test.snr_db >= 10
    ok = pred == test.labels
    return float(ok[high & hard].float().mean()), float(ok[high & ~hard].float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench-limits"))
    ap.add_argument("--config", type=Path, default=Path("configs/finetune.toml"))
    ap.add_argument("--cache", type=Path, default=Path(".cache/fedsb"))
    ap.add_argument("--only", default=",".join(LEVERS), help="comma list of " + ", ".join(LEVERS))
    args = ap.parse_args()
    console = Console()
    table = Table(
        title="full fine-tuning on the target domain, test accuracy % "
        f"(hard: {', '.join(HARD)}; overrides printed above)"
    )
    for col in ("lever", "all", ">= 10 dB", "hard >= 10", "others >= 10"):
        table.add_column(col, justify="left" if col == "lever" else "right")
    args.out.mkdir(parents=True, exist_ok=True)
    pre = load_config(PretrainConfig, Path("configs/pretrain.toml"))
    save_config(apply_overrides(pre, ["data.images.size=64"]), args.out / "pretrain64.toml")
    for name in args.only.split(","):
        levers = [x.format(out=args.out.resolve()) for x in LEVERS[name]]
        overrides = ["adapter.method='full'", *levers]
        cfg = apply_overrides(load_config(FinetuneConfig, args.config), overrides)
        console.print(f"[bold]{name}[/]: {' '.join(levers) or '(as configured)'}")
        result = finetune(cfg, args.out / name, cache_dir=args.cache, reporter=RichReporter())
        hard, other = high_snr_by_group(args.out / name, cfg, args.cache)
        table.add_row(
            name,
            f"{100 * result.test.accuracy:.1f}",
            f"{100 * result.test.accuracy_high_snr:.1f}",
            f"{100 * hard:.1f}",
            f"{100 * other:.1f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
