"""RecordSet: the one in-memory dataset type shared by the generator, every reader and writer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RecordSet:
    """Fixed-length complex IQ records with labels and per-record metadata.

    Attributes:
        iq: (N, L) complex64 records.
        labels: (N,) int64 indices into ``class_names``.
        class_names: canonical class names; ``labels`` index into it.
        meta: per-record numeric metadata, each an (N,) array (``snr_db`` is NaN where unknown).
        sample_rate: samples per second (1.0 when the source does not say: rates are normalised).
        info: provenance (generator config, source file, ...); JSON-serialisable.
    """

    iq: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    meta: Mapping[str, np.ndarray] = field(default_factory=dict)
    sample_rate: float = 1.0
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        iq = np.asarray(self.iq)
        if iq.ndim != 2:
            raise ValueError(f"iq must be (N, L), got shape {iq.shape}")
        if iq.dtype != np.complex64:
            raise ValueError(f"iq must be complex64, got {iq.dtype}")
        labels = np.asarray(self.labels)
        if labels.shape != (iq.shape[0],):
            raise ValueError(f"labels must be ({iq.shape[0]},), got {labels.shape}")
        if labels.dtype != np.int64:
            raise ValueError(f"labels must be int64, got {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError("labels out of range of class_names")
        for key, value in self.meta.items():
            if np.shape(value) != (iq.shape[0],):
                raise ValueError(f"meta[{key!r}] must be ({iq.shape[0]},), got {np.shape(value)}")
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "meta", {k: np.asarray(v) for k, v in self.meta.items()})

    def __len__(self) -> int:
        return int(self.iq.shape[0])

    @property
    def length(self) -> int:
        """Samples per record."""
        return int(self.iq.shape[1])

    @property
    def snr_db(self) -> np.ndarray:
        """Per-record SNR in dB (NaN where the source gives none)."""
        if "snr_db" in self.meta:
            return self.meta["snr_db"].astype(np.float64)
        return np.full(len(self), np.nan)

    @property
    def label_names(self) -> np.ndarray:
        """Per-record class name, as an array of str."""
        return np.asarray(self.class_names, dtype=object)[self.labels]

    def subset(self, index: np.ndarray | Sequence[int] | slice) -> RecordSet:
        """Records at ``index`` (a slice, integer indices or a boolean mask), same classes."""
        return RecordSet(
            iq=self.iq[index],
            labels=self.labels[index],
            class_names=self.class_names,
            meta={k: v[index] for k, v in self.meta.items()},
            sample_rate=self.sample_rate,
            info=self.info,
        )

    def with_classes(self, class_names: Sequence[str]) -> RecordSet:
        """The same records re-indexed against ``class_names`` (which must contain every label)."""
        target = {name: i for i, name in enumerate(class_names)}
        missing = sorted(set(self.class_names) - set(target))
        if missing:
            raise ValueError(f"class {missing[0]!r} is not in the target class list")
        remap = np.array([target[n] for n in self.class_names], dtype=np.int64)
        return RecordSet(
            self.iq, remap[self.labels], tuple(class_names), self.meta, self.sample_rate, self.info
        )

    def counts(self) -> np.ndarray:
        """Records per class, (K,) int64."""
        return np.bincount(self.labels, minlength=len(self.class_names)).astype(np.int64)

    @staticmethod
    def concat(parts: Sequence[RecordSet]) -> RecordSet:
        """Concatenate sets with the same length and classes (metadata keys must match)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if p.class_names != first.class_names or p.length != first.length:
                raise ValueError("cannot concatenate sets with different classes or lengths")
            if set(p.meta) != set(first.meta):
                raise ValueError("cannot concatenate sets with different metadata keys")
        return RecordSet(
            iq=np.concatenate([p.iq for p in parts]),
            labels=np.concatenate([p.labels for p in parts]),
            class_names=first.class_names,
            meta={k: np.concatenate([p.meta[k] for p in parts]) for k in first.meta},
            sample_rate=first.sample_rate,
            info=first.info,
        )
