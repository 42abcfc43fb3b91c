"""The data preview grid: rows = classes, columns = image channels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..signals.recordset import RecordSet


def pick_examples(records: RecordSet) -> RecordSet:
    """One record per class present: the one with the highest SNR (the first if SNR is unknown)."""
    snr = np.nan_to_num(records.snr_db, nan=-np.inf, posinf=np.finfo(float).max)
    picks = []
    for c in np.unique(records.labels):  # a loop over classes
        rows = np.flatnonzero(records.labels == c)
        picks.append(rows[np.argmax(snr[rows])])
    return records.subset(np.array(picks, dtype=np.intp))


def preview_grid(
    images: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    snr_db: np.ndarray,
    out: str | Path,
) -> Path:
    """Save a (rows x channels) grid of [0, 1] images (K, C, H, W) as PNG or PDF."""
    from .savefig import plt, save_figure

    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(1.2 * cols + 1.2, 1.2 * rows + 0.6),
        squeeze=False,
        constrained_layout=True,
    )
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(images[r, c], cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(col_labels[c], fontsize=7)
        snr = snr_db[r]
        tag = "" if np.isnan(snr) else ("\nclean" if np.isinf(snr) else f"\n{snr:.0f} dB")
        axes[r, 0].set_ylabel(
            f"{row_labels[r]}{tag}", fontsize=7, rotation=0, ha="right", va="center"
        )
    return save_figure(fig, out, dpi=150)
