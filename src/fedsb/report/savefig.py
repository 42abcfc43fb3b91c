"""Writing figures: headless backend, atomic save (a failure never leaves half a PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)


def save_figure(fig: plt.Figure, out: str | Path, dpi: int = 150) -> Path:
    """Save ``fig`` to ``out`` (format from the suffix: .png, .pdf, .svg) and close it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    try:
        fig.savefig(tmp, dpi=dpi)
        tmp.replace(out)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return out
