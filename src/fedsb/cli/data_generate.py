"""``fedsb data generate``: a seeded, labelled IQ set written to npz or SigMF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from .app import console, safe
from .options import ConfigOpt, SetOpt
from .progress import progress_bar
from .tables import print_class_snr_table

GenOutOpt = Annotated[
    Path, typer.Option("--out", "-o", help="Output: .npz, .sigmf-meta or .sigmf (archive).")
]
ClassesOpt = Annotated[str | None, typer.Option(help="Class set (rml2016, all) or a comma list.")]
SnrOpt = Annotated[str | None, typer.Option(help="SNR range LO:HI[:STEP] in dB.")]
FormatOpt = Annotated[
    str | None, typer.Option("--format", help="npz or sigmf (default: from the --out extension).")
]
WorkersOpt = Annotated[
    int, typer.Option("--workers", "-j", help="Worker processes (0 = one per core).")
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


def flag_overrides(classes, snr, length, per_class, seed) -> list[str]:
    """The flags as config overrides (applied after --set, so a flag wins)."""
    sets = [] if classes is None else [f"classes={classes!r}"]
    if snr is not None:
        sets += parse_snr(snr)
    for key, value in (("generator.length", length), ("per_class", per_class), ("seed", seed)):
        if value is not None:
            sets.append(f"{key}={value}")
    return sets


def generate(
    out: GenOutOpt,
    config: ConfigOpt = None,
    classes: ClassesOpt = None,
    snr: SnrOpt = None,
    length: Annotated[int | None, typer.Option(help="Samples per record.")] = None,
    per_class: Annotated[int | None, typer.Option(help="Records per class.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed: same seed + config = same bits.")] = None,
    fmt: FormatOpt = None,
    workers: WorkersOpt = 0,
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
    from ..signals.classes import resolve_classes
    from ..signals.generator import generate as run_generator

    sets = list(overrides or []) + flag_overrides(classes, snr, length, per_class, seed)
    cfg = load_config(DataConfig, config, sets)
    total = len(resolve_classes(cfg.classes)) * cfg.per_class
    check_budget(out, total * cfg.generator.length * 8, "the generated set", verb="would need")
    with progress_bar("generating", total) as advance:
        records = run_generator(
            cfg.generator, cfg.classes, cfg.per_class, cfg.seed, workers=workers, progress=advance
        )
    written = save_records(records, out, fmt)
    print_class_snr_table(records, f"{len(records)} records x {records.length} samples")
    console.print(f"wrote [bold]{safe(written)}[/]")
