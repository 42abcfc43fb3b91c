"""``fedsb data inspect``: what a data file holds, per class and SNR bin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import console, safe
from .options import LengthOpt, Rml2018OrderOpt, SkipOpt
from .tables import print_class_snr_table

DataArg = Annotated[
    Path,
    typer.Argument(help="npz cache, SigMF recording/archive/directory, RadioML .pkl or .hdf5."),
]


#: RML2018 records read at a time while their samples are checked (64 MB of 1,024 samples).
INSPECT_ROWS = 8192


def _rml2018_labels(path: Path, length: int | None, order: str):
    """An RML2018 file's labels and SNR as a RecordSet without samples, and its length.

    The samples are only checked (NaN or Inf), :data:`INSPECT_ROWS` records at a time, so a
    20 GB GOLD file is inspected in bounded memory.
    """
    import numpy as np

    from ..errors import DataError
    from ..io import radioml
    from ..io.load import nonfinite_records
    from ..signals.recordset import RecordSet

    index = radioml.read_rml2018_index(path, order)
    if length is not None and index.length != length:
        raise DataError(path, f"records are {index.length} samples long, not {length}")
    n, bad = index.labels.size, 0
    for a in range(0, n, INSPECT_ROWS):
        rows = np.arange(a, min(a + INSPECT_ROWS, n))
        bad += nonfinite_records(radioml.read_rml2018(path, index=rows, order=order).iq)
    if bad:
        raise DataError(path, f"{bad} of {n} records contain NaN or Inf samples")
    info = {"format": "rml2018", "source": str(path), "order": order}
    meta = {"snr_db": index.snr_db}
    iq = np.zeros((n, 0), np.complex64)
    return RecordSet(iq, index.labels, index.class_names, meta, 1.0, info), index.length


def inspect(
    path: DataArg,
    length: LengthOpt = None,
    skip_unknown: SkipOpt = False,
    rml2018_order: Rml2018OrderOpt = "corrected",
) -> None:
    """Count records per class and SNR bin in a data file.

    Reads an npz cache, a SigMF recording, archive or directory, or RadioML files (an
    RML2018 file a chunk of records at a time).
    """
    from ..errors import DataError
    from ..io import load_records
    from ..io.labels import rml2018_names
    from ..io.load import source_format

    rml2018_names(rml2018_order)  # an unknown order fails first
    if not path.exists():
        raise DataError(path, "file not found")
    if source_format(path) == "rml2018":
        records, samples = _rml2018_labels(path, length, rml2018_order)
    else:
        records = load_records(path, length=length, skip_unknown=skip_unknown)
        samples = records.length
    rate = f"{records.sample_rate:g} Hz" if records.sample_rate != 1.0 else "normalised"
    source = records.info.get("source", "?")
    console.print(
        f"[bold]{safe(path)}[/]: {len(records)} records x {samples} samples, "
        f"{len(records.class_names)} classes, sample rate {rate}, source {safe(source)}"
    )
    print_class_snr_table(records, "records per class and SNR (dB)")
