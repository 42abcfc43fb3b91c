"""Writing figures: headless backend, atomic save (a failure never leaves half a PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from ..errors import DataError
from ..runs import check_file_out

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

#: What ``--out`` of a figure may end with.
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def check_figure_out(out: str | Path) -> Path:
    """A figure path with a known suffix in a place that can be written (nothing is created)."""
    out = Path(out)
    if out.suffix.lower() not in FIGURE_SUFFIXES:
        known = ", ".join(FIGURE_SUFFIXES)
        raise DataError(out, f"unknown image format {out.suffix or '(none)'!r}; use {known}")
    return check_file_out(out)


def save_figure(
    fig: plt.Figure, out: str | Path, dpi: int = 150, also: tuple[str, ...] = ()
) -> Path:
    """Save ``fig`` to ``out`` and to the same stem with each suffix in ``also``; return ``out``.

    The format comes from the suffix (.png, .pdf, .svg); ``also`` is e.g. ``(".pdf",)`` for
    papers. The figure is closed.
    """
    out = check_figure_out(out)
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
