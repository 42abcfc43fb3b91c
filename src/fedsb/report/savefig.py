"""Writing figures: headless backend, atomic save (a failure never leaves half a PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)


def save_figure(
    fig: plt.Figure, out: str | Path, dpi: int = 150, also: tuple[str, ...] = ()
) -> Path:
    """Save ``fig`` to ``out`` (format from the suffix: .png, .pdf, .svg) and to the same stem
    with each suffix in ``also`` (e.g. ``(".pdf",)`` for papers); close it; return ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    targets = [out, *(out.with_suffix(s) for s in also)]
    try:
        for target in targets:
            tmp = target.with_name(f".{target.stem}.tmp{target.suffix}")
            try:
                fig.savefig(tmp, dpi=dpi)
                tmp.replace(target)
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        plt.close(fig)
    return out
