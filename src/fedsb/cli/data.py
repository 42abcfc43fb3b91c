"""``fedsb data``: generate, inspect and preview IQ data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import ConfigError, DataError
from .app import app, console, safe
from .progress import progress_bar

data_app = typer.Typer(help="Generate, inspect and preview IQ data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="A data config TOML (configs/data.toml); flags override it."
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override any config key, e.g. generator.fading.enabled=false."),
]
LengthOpt = Annotated[
    int | None, typer.Option("--length", help="Samples per record (window length for SigMF input).")
]
SkipOpt = Annotated[
    bool,
    typer.Option(
        "--skip-unknown", help="Drop records whose label is not a known class instead of failing."
    ),
]


def parse_snr(text: str) -> list[str]:
    """``lo:hi`` or ``lo:hi:step`` or ``x`` (dB) -> config overrides."""
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--snr {text!r}: expected LO:HI[:STEP] in dB, e.g. -10:20") from None
    if len(values) == 1:
        values = values * 2
    if len(values) not in (2, 3):
        raise ConfigError(f"--snr {text!r}: expected LO:HI[:STEP] in dB, e.g. -10:20")
    out = [f"generator.snr_db=[{values[0]!r}, {values[1]!r}]"]
    if len(values) == 3:
        out.append(f"generator.snr_step={values[2]!r}")
    return out


def print_class_snr_table(records, title: str) -> None:
    """Rich table of counts per class x SNR bin, with totals."""
    from ..signals.summary import class_snr_table

    summary = class_snr_table(records)
    table = Table(title=safe(title), show_footer=True)
    width = max(len(n) for n in summary.class_names) if summary.class_names else 5
    table.add_column("class", footer="total", no_wrap=True, min_width=width)
    for j, label in enumerate(summary.bin_labels):
        table.add_column(safe(label), justify="right", footer=str(summary.counts[:, j].sum()))
    table.add_column("total", justify="right", footer=str(summary.counts.sum()))
    for name, row in zip(summary.class_names, summary.counts):
        table.add_row(safe(name), *map(str, row), str(row.sum()))
    console.print(table)


@data_app.command("generate")
def generate(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output: .npz, .sigmf-meta or .sigmf (archive).")
    ],
    config: ConfigOpt = None,
    classes: Annotated[
        str | None, typer.Option(help="Class set (rml2016, all) or a comma list.")
    ] = None,
    snr: Annotated[str | None, typer.Option(help="SNR range LO:HI[:STEP] in dB.")] = None,
    length: Annotated[int | None, typer.Option(help="Samples per record.")] = None,
    per_class: Annotated[int | None, typer.Option(help="Records per class.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed: same seed + config = same bits.")] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="npz or sigmf (default: from the --out extension)."),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", "-j", help="Worker processes (0 = one per core).")
    ] = 0,
    overrides: SetOpt = None,
) -> None:
    """Generate a seeded, labelled IQ set.

    Prints the records per class and SNR bin. The same seed and config give the same bits,
    whatever --workers is.
    """
    from ..config import load_config
    from ..data.config import DataConfig
    from ..io import save_records
    from ..io.budget import check_budget
    from ..signals.generator import generate as run_generator

    sets = list(overrides or [])
    if classes is not None:
        sets.append(f"classes={classes!r}")
    if snr is not None:
        sets += parse_snr(snr)
    for key, value in (("generator.length", length), ("per_class", per_class), ("seed", seed)):
        if value is not None:
            sets.append(f"{key}={value}")
    cfg = load_config(DataConfig, config, sets)
    from ..signals.classes import resolve_classes

    total = len(resolve_classes(cfg.classes)) * cfg.per_class
    check_budget(out, total * cfg.generator.length * 8, "the generated set", verb="would need")
    with progress_bar("generating", total) as advance:
        records = run_generator(
            cfg.generator, cfg.classes, cfg.per_class, cfg.seed, workers=workers, progress=advance
        )
    written = save_records(records, out, fmt)
    print_class_snr_table(records, f"{len(records)} records x {records.length} samples")
    console.print(f"wrote [bold]{safe(written)}[/]")


@data_app.command("inspect")
def inspect(
    path: Annotated[
        Path,
        typer.Argument(help="npz cache, SigMF recording/archive/directory, RadioML .pkl or .hdf5."),
    ],
    length: LengthOpt = None,
    skip_unknown: SkipOpt = False,
) -> None:
    """Count records per class and SNR bin in a data file.

    Reads an npz cache, a SigMF recording, archive or directory, or RadioML files.
    """
    from ..io import load_records

    records = load_records(path, length=length, skip_unknown=skip_unknown)
    rate = f"{records.sample_rate:g} Hz" if records.sample_rate != 1.0 else "normalised"
    source = records.info.get("source", "?")
    console.print(
        f"[bold]{safe(path)}[/]: {len(records)} records x {records.length} samples, "
        f"{len(records.class_names)} classes, sample rate {rate}, source {safe(source)}"
    )
    print_class_snr_table(records, "records per class and SNR (dB)")


@data_app.command("preview")
def preview(
    path: Annotated[Path, typer.Argument(help="Any supported data file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Image to write (.png or .pdf).")],
    channels: Annotated[
        str | None,
        typer.Option(help="Image stack preset or comma list of channels (default: the config's)."),
    ] = None,
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

    sets = []
    if channels is not None:
        names = [c.strip() for c in channels.split(",") if c.strip()]
        sets.append("images.channels=[" + ", ".join(repr(c) for c in names) + "]")
    if size is not None:
        sets.append(f"images.size={size}")
    cfg = load_config(DataConfig, config, sets)
    check_figure_out(out)  # before the data are read: a bad --out fails at once
    records = load_records(path, length=length, skip_unknown=skip_unknown)
    if len(records) == 0:
        raise DataError(path, "no records to preview")
    examples = pick_examples(records)
    images = to_images(examples.iq, cfg.images).numpy()
    written = preview_grid(
        images, list(examples.label_names), list(cfg.images.channels), examples.snr_db, out
    )
    console.print(
        f"wrote [bold]{safe(written)}[/] ({len(examples)} classes x {images.shape[1]} channels)"
    )
