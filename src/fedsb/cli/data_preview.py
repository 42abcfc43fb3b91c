"""``fedsb data preview``: one grid image, classes x image channels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import DataError
from .app import console, safe
from .options import ConfigOpt, LengthOpt, SkipOpt

ChannelsOpt = Annotated[
    str | None,
    typer.Option(help="Image stack preset or comma list of channels (default: the config's)."),
]


def image_overrides(channels: str | None, size: int | None) -> list[str]:
    """--channels and --size as config overrides."""
    sets = []
    if channels is not None:
        names = [c.strip() for c in channels.split(",") if c.strip()]
        sets.append("images.channels=[" + ", ".join(repr(c) for c in names) + "]")
    if size is not None:
        sets.append(f"images.size={size}")
    return sets


def preview(
    path: Annotated[Path, typer.Argument(help="Any supported data file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Image to write (.png or .pdf).")],
    channels: ChannelsOpt = None,
    size: Annotated[int | None, typer.Option(help="Image size in pixels.")] = None,
    config: ConfigOpt = None,
    length: LengthOpt = None,
    skip_unknown: SkipOpt = False,
) -> None:
    """Write a grid image: classes x image channels.

    Each row shows the class's highest-SNR record.
    """
    from ..config import load_config
    from ..data.config import DataConfig
    from ..images import to_images
    from ..io import load_records
    from ..report.preview import pick_examples, preview_grid
    from ..report.savefig import check_figure_out

    cfg = load_config(DataConfig, config, image_overrides(channels, size))
    check_figure_out(out)  # before the data are read: a bad --out fails at once
    records = load_records(path, length=length, skip_unknown=skip_unknown)
    if len(records) == 0:
        raise DataError(path, "no records to preview")
    examples = pick_examples(records)
    images = to_images(examples.iq, cfg.images).numpy()
    labels, names = list(examples.label_names), list(cfg.images.channels)
    written = preview_grid(images, labels, names, examples.snr_db, out)
    console.print(
        f"wrote [bold]{safe(written)}[/] ({len(examples)} classes x {images.shape[1]} channels)"
    )
