"""Training curves from a run's metrics.jsonl rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def training_curve(rows: Sequence[dict[str, Any]], out: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch (train and validation) as a two-panel PNG."""
    from .savefig import plt, save_figure

    epochs = [r for r in rows if "epoch" in r and "train_loss" in r]
    x = [r["epoch"] for r in epochs]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(8, 3.2), constrained_layout=True)
    ax_loss.plot(x, [r["train_loss"] for r in epochs], "o-", label="train")
    ax_loss.plot(x, [r["val_loss"] for r in epochs], "s-", label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_acc.plot(x, [100 * r["train_acc"] for r in epochs], "o-", label="train")
    ax_acc.plot(x, [100 * r["val_acc"] for r in epochs], "s-", label="validation")
    ax_acc.plot(
        x,
        [100 * (r.get("val_acc_snr_ge_10") or 0) for r in epochs],
        "^--",
        label="validation, SNR ≥ 10 dB",
    )
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, out, dpi=130)
