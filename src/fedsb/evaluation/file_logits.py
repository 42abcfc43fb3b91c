"""A model's logits on labelled data files, read and imaged a chunk at a time.

``fedsb evaluate`` and ``fedsb classify --calibrate`` score files of any size: each source is
opened as training opens it (``data.sources.open_source``: labels through the alias table,
records longer than the model's length cut into windows, an RML2018 file's samples read only
for the rows asked for), then read :data:`READ_RECORDS` records at a time, imaged and scored.
Memory holds one chunk of samples and images, and the logits: an RML2018-sized file (2.5 M
records) needs about 0.5 GB for its logits, not 20 GB for its samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data.imageset import ImageSet, quantised_images
from ..data.sources import Source, model_rows, open_source
from ..errors import DataError
from ..reporter import Reporter, SilentReporter
from ..training.loop import predict
from .scoring import Predictions

if TYPE_CHECKING:
    from .evaluate_run import RunModel

#: Records read, imaged and scored at a time (8 MB of 1,024-sample records).
READ_RECORDS = 1024


@dataclass(frozen=True)
class ReadOptions:
    """How the files are read: unknown labels, the RML2018 column order, a SigMF SNR key."""

    drop_unknown: bool = False
    rml2018_order: str = "corrected"
    snr_key: str = ""


@dataclass(frozen=True)
class SourceCount:
    """One scored source: its path, record length as held (before windowing), records scored."""

    path: Path
    record_length: int
    records: int


def _source_logits(
    loaded: RunModel, source: Source, rows: np.ndarray, advance, batch: int
) -> np.ndarray:
    """Logits (len(rows), K) float64, ``batch`` records read and imaged at a time."""
    out = np.empty((rows.size, len(loaded.class_names)), dtype=np.float64)
    for start in range(0, rows.size, batch):
        chunk = rows[start : start + batch]
        images = quantised_images(source.read(chunk), loaded.images)
        zeros = torch.zeros(len(chunk))  # labels and SNRs: predict uses the images only
        scored = ImageSet(images, zeros.long(), zeros, loaded.class_names)
        out[start : start + len(chunk)] = predict(loaded.model, scored).double().numpy()
        advance(len(chunk))
    return out


def file_logits(
    loaded: RunModel,
    paths: Sequence[Path],
    options: ReadOptions = ReadOptions(),
    reporter: Reporter | None = None,
    batch: int = READ_RECORDS,
) -> tuple[Predictions, tuple[SourceCount, ...]]:
    """(the model's predictions on every source of ``paths``, in order; what each held).

    ``paths`` come from ``data.files.expand_paths``. The record lengths are as the files hold
    them, before windowing. A source with no record of the model's classes is refused, unless
    another source has some and ``options.drop_unknown`` is set.
    """
    reporter = reporter or SilentReporter()
    parts, lengths = [], []
    for path in paths:
        source = open_source(
            Path(path),
            loaded.length,
            skip_unknown=options.drop_unknown,
            snr_key=options.snr_key,
            rml2018_order=options.rml2018_order,
        )
        rows, labels = model_rows(source, loaded.class_names, options.drop_unknown)
        with reporter.task(f"scoring {Path(path).name}", rows.size) as advance:
            logits = _source_logits(loaded, source, rows, advance, batch)
        parts.append((logits, labels, source.meta["snr_db"][rows].astype(np.float64)))
        lengths.append(SourceCount(Path(path), source.record_length, int(rows.size)))
    if not any(len(p[1]) for p in parts):
        where = Path(paths[0]) if len(paths) == 1 else None
        raise DataError(where, "no record of a class the model knows")
    logits, labels, snr = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return Predictions(logits, labels, snr, loaded.class_names), tuple(lengths)


__all__ = ["READ_RECORDS", "ReadOptions", "SourceCount", "file_logits"]
