"""``fedsb data inspect``: what a data file holds, per class and SNR bin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import console, safe
from .options import LengthOpt, SkipOpt
from .tables import print_class_snr_table

DataArg = Annotated[
    Path,
    typer.Argument(help="npz cache, SigMF recording/archive/directory, RadioML .pkl or .hdf5."),
]


def inspect(path: DataArg, length: LengthOpt = None, skip_unknown: SkipOpt = False) -> None:
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
