"""Where the samples of a deferred set of records are: per record, a reader and a row of it.

A 20 GB RML2018 file does not fit in memory. ``load_files(..., deferred=True)`` therefore keeps
labels, groups and attributes only, and a :class:`Samples` saying where each record's samples
are; ``fedsb.data.file_sets`` reads them chunk by chunk while it builds the images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .sources import Source

#: Record indices (sorted) -> their samples, (m, length) complex64.
Reader = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Samples:
    """Record i's samples are row ``row[i]`` of reader ``readers[source[i]]``."""

    readers: tuple[Reader, ...]
    source: np.ndarray  # (N,) int64 index into readers
    row: np.ndarray  # (N,) int64 row within that reader
    length: int  # samples per record

    def __post_init__(self) -> None:
        if np.shape(self.source) != np.shape(self.row) or np.ndim(self.row) != 1:
            raise ValueError("source and row must be 1-D arrays of one length")

    def __len__(self) -> int:
        return int(self.row.shape[0])

    @staticmethod
    def of(reader: Reader, rows: np.ndarray, length: int) -> Samples:
        """Records that are ``rows`` of one reader."""
        rows = np.asarray(rows, dtype=np.int64)
        return Samples((reader,), np.zeros(rows.shape, np.int64), rows, length)

    def subset(self, index: np.ndarray | Sequence[int]) -> Samples:
        """Where the records at ``index`` are."""
        index = np.asarray(index, dtype=np.int64)
        return Samples(self.readers, self.source[index], self.row[index], self.length)

    @staticmethod
    def concat(parts: Sequence[Samples]) -> Samples:
        """The records of ``parts`` end to end (all of one length)."""
        if len({p.length for p in parts}) > 1:
            raise ValueError("cannot concatenate samples of different record lengths")
        offsets = np.cumsum([0] + [len(p.readers) for p in parts])
        return Samples(
            tuple(r for p in parts for r in p.readers),
            np.concatenate([p.source + off for p, off in zip(parts, offsets)]).astype(np.int64),
            np.concatenate([p.row for p in parts]).astype(np.int64),
            parts[0].length,
        )

    def read(self, index: np.ndarray | Sequence[int]) -> np.ndarray:
        """The samples of the records at ``index``, (m, length) complex64, in that order.

        Each reader is asked once, for its rows in increasing order.
        """
        index = np.asarray(index, dtype=np.int64)
        source, row = self.source[index], self.row[index]
        if index.size and (source == source[0]).all() and (np.diff(row) > 0).all():
            return self.readers[int(source[0])](row)  # one reader, in order: no second copy
        out = np.empty((index.size, self.length), dtype=np.complex64)
        for s in np.unique(source):
            at = np.flatnonzero(source == s)
            at = at[np.argsort(row[at], kind="stable")]
            out[at] = self.readers[int(s)](row[at])
        return out


def take_samples(
    source: Source, rows: np.ndarray, length: int | None
) -> tuple[np.ndarray, Samples | None]:
    """The chosen rows' samples, or (``length`` given: deferred) a placeholder and where.

    A deferred lazy source (RML2018) is read later; the others hold their samples already,
    so only the chosen ones are kept.
    """
    if length is None:
        return source.read(rows), None
    if source.lazy:
        samples = Samples.of(source.read, rows, length)
    else:
        samples = Samples.of(source.read(rows).__getitem__, np.arange(len(rows)), length)
    return np.zeros((len(rows), 0), dtype=np.complex64), samples


__all__ = ["Reader", "Samples", "take_samples"]
