"""ImageSet: a generated IQ set turned into uint8 images, cached on disk by config hash.

Images are stored as uint8 (x 255): 8 x 32 x 32 channels cost 8 KB per record instead of 32 KB,
so a 20k-record training set stays ~160 MB in memory; batches are converted to float on the fly.
Splits are generated with their own seeds (train, val, test), so nothing is shared between them.
The user's files can hold far more (RML2018: 20 GB of images): :class:`MappedImageSet` keeps
them on disk (``image_store``) and reads one batch at a time. A federation of many clients lists
every client's training split as a :class:`LazyImageSet` (its size known, its records made when
first read), so only the clients drawn for a round are ever built.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..config import config_hash
from ..images import to_images
from ..images.config import ImageConfig
from ..io.cache import temp_path
from ..signals import RecordSet, generate
from .config import DataConfig
from .image_store import ImageStore

log = logging.getLogger(__name__)

#: Seed offsets of the splits: each split is an independent draw of the generator.
SPLIT_SEEDS = {"train": 0, "val": 1_000_003, "test": 2_000_029}


@dataclass(frozen=True)
class ImageSet:
    """Images (N, C, H, W) uint8, labels (N,) int64, SNR (N,) float32, class names.

    ``images`` may also hold float inputs of another shape (raw IQ (N, 2, L) for the 1-D CNN
    baseline); ``batch`` passes those through unscaled.
    """

    images: torch.Tensor
    labels: torch.Tensor
    snr_db: torch.Tensor
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float inputs and labels for ``index`` (uint8 images are scaled to [0, 1])."""
        x = self.images[index]
        return (x.float().div_(255.0) if x.dtype == torch.uint8 else x), self.labels[index]

    def subset(self, index: torch.Tensor | np.ndarray) -> ImageSet:
        """The records at ``index``, with the same class names."""
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageSet(
            self.images[index], self.labels[index], self.snr_db[index], self.class_names
        )


class MappedImageSet(ImageSet):
    """An ImageSet whose uint8 images stay on disk: rows ``rows`` of an :class:`ImageStore`.

    ``subset`` only selects rows and ``batch`` reads just its batch, so a split of a 20 GB
    store costs its index arrays. ``images`` reads every row of the set into memory: for
    small sets and code that needs one tensor.
    """

    store: ImageStore
    rows: np.ndarray

    def __init__(
        self,
        store: ImageStore,
        rows: np.ndarray,
        labels: torch.Tensor,
        snr_db: torch.Tensor,
        class_names: tuple[str, ...],
    ):
        rows = np.asarray(rows, dtype=np.int64)
        if rows.shape != tuple(labels.shape) or rows.shape != tuple(snr_db.shape):
            raise ValueError("rows, labels and snr_db must be of one length")
        for name, value in (("store", store), ("rows", rows), ("labels", labels)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "snr_db", snr_db)
        object.__setattr__(self, "class_names", tuple(class_names))

    @property
    def images(self) -> torch.Tensor:  # type: ignore[override]
        """Every image of the set, read into memory (N, C, H, W) uint8."""
        return torch.from_numpy(self.store.take(self.rows))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.store.shape[1:])  # type: ignore[return-value]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float inputs in [0, 1] and labels for ``index``, read from the store."""
        index = torch.as_tensor(index, dtype=torch.long)
        x = torch.from_numpy(self.store.take(self.rows[index.numpy()]))
        return x.float().div_(255.0), self.labels[index]

    def subset(self, index: torch.Tensor | np.ndarray) -> MappedImageSet:
        """The records at ``index``: rows of the same store, nothing read."""
        index = torch.as_tensor(index, dtype=torch.long)
        return MappedImageSet(
            self.store,
            self.rows[index.numpy()],
            self.labels[index],
            self.snr_db[index],
            self.class_names,
        )

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"MappedImageSet({len(self)} records of {self.store!r})"


class SetSource(Protocol):
    """What a :class:`LazyImageSet` reads from: ``get(key)`` builds (or keeps) the set."""

    def get(self, key: Any) -> ImageSet:
        """The set of ``key``, built on first use."""
        ...


class LazyImageSet(ImageSet):
    """An ImageSet of known size and classes whose records come from ``source.get(key)``.

    Nothing is built until a record, a label or the image shape is read; every read asks the
    source again, so what stays in memory (and for how long) is the source's choice. The
    source must give ``size`` records of ``class_names``: a ValueError otherwise.
    """

    size: int
    source: SetSource
    key: Any

    def __init__(self, size: int, class_names: Sequence[str], source: SetSource, key: Any):
        for name, value in (("size", int(size)), ("source", source), ("key", key)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "class_names", tuple(class_names))

    def loaded(self) -> ImageSet:
        """The records, from the source (built now if it holds none)."""
        data = self.source.get(self.key)
        if len(data) != self.size or data.class_names != self.class_names:
            raise ValueError(
                f"{self!r}: the source gave {len(data)} records of {data.class_names}, "
                f"expected {self.size} of {self.class_names}"
            )
        return data

    @property
    def images(self) -> torch.Tensor:  # type: ignore[override]
        """Every image of the set (built if needed)."""
        return self.loaded().images

    @property
    def labels(self) -> torch.Tensor:  # type: ignore[override]
        """Every label of the set (built if needed)."""
        return self.loaded().labels

    @property
    def snr_db(self) -> torch.Tensor:  # type: ignore[override]
        """Every record's SNR (built if needed)."""
        return self.loaded().snr_db

    def __len__(self) -> int:
        return self.size

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image (built if needed)."""
        return self.loaded().shape

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float inputs and labels for ``index``, from the built set."""
        return self.loaded().batch(index)

    def subset(self, index: torch.Tensor | np.ndarray) -> ImageSet:
        """The records at ``index`` of the built set."""
        return self.loaded().subset(index)

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"LazyImageSet({self.size} records, key {self.key!r})"


def join_sets(sets: Sequence[ImageSet]) -> ImageSet:
    """One ImageSet from several with the same classes (the union of client data).

    Sets that are all rows of one store stay on disk; otherwise their images are joined in
    memory.
    """
    first = sets[0]
    labels = torch.cat([s.labels for s in sets])
    snr = torch.cat([s.snr_db for s in sets])
    if all(isinstance(s, MappedImageSet) and s.store is first.store for s in sets):
        rows = np.concatenate([s.rows for s in sets])  # type: ignore[attr-defined]
        return MappedImageSet(first.store, rows, labels, snr, first.class_names)  # type: ignore
    return ImageSet(torch.cat([s.images for s in sets]), labels, snr, first.class_names)


def quantised_images(
    iq: np.ndarray, images: ImageConfig, out: torch.Tensor | None = None
) -> torch.Tensor:
    """IQ records -> uint8 images (what every model is trained and evaluated on).

    ``out``: a float32 buffer of the float images' shape to reuse (saves fresh pages).
    """
    return to_images(iq, images, out=out).mul_(255.0).round_().to(torch.uint8)


def images_from_records(records: RecordSet, data: DataConfig) -> ImageSet:
    """IQ records -> uint8 images with the config's channels and size."""
    return ImageSet(
        images=quantised_images(records.iq, data.images),
        labels=torch.from_numpy(records.labels.copy()),
        snr_db=torch.from_numpy(records.snr_db.astype(np.float32)),
        class_names=records.class_names,
    )


def split_config(data: DataConfig, split: str, per_class: int) -> DataConfig:
    """The DataConfig of one split: same generator and images, its own seed and size."""
    return replace(data, seed=data.seed + SPLIT_SEEDS[split], per_class=per_class)


def read_cached_images(path: Path) -> ImageSet | None:
    """A cached image set, or None (with a warning) when the file is damaged: it is rebuilt."""
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as handle:  # class names live in the header metadata
            meta = handle.metadata() or {}
        names = json.loads(meta["class_names"])
        return ImageSet(tensors["images"], tensors["labels"], tensors["snr_db"], tuple(names))
    except Exception as exc:  # noqa: BLE001 - any damage means: regenerate the cache entry
        log.warning("%s: damaged image cache (%s); building it again", path, type(exc).__name__)
        return None


def cached_images(
    key: str,
    cache_dir: Path | None,
    build: Callable[[], ImageSet],
    progress: Callable[[int], None] | None = None,
    write: bool = True,
) -> ImageSet:
    """The image set cached under ``key`` in ``cache_dir``, else ``build()`` and cache it.

    A damaged entry is rebuilt; the write is atomic (a temporary file, then a rename).
    ``write=False`` reads an entry but writes none (the caller keeps the images elsewhere).
    """
    path = None if cache_dir is None else Path(cache_dir) / f"images-{key}.safetensors"
    cached = read_cached_images(path) if path is not None and path.exists() else None
    if cached is not None:
        if progress:
            progress(len(cached))
        return cached
    result = build()
    if path is not None and write:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path, ".safetensors")
        tensors = {"images": result.images, "labels": result.labels, "snr_db": result.snr_db}
        save_file(
            tensors,
            str(tmp),
            metadata={"class_names": json.dumps(result.class_names), "config_hash": key},
        )
        tmp.replace(path)
        log.info("cached %d images at %s", len(result), path)
    return result


def load_or_build(
    data: DataConfig,
    cache_dir: Path | None,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
    counts: Sequence[int] | None = None,
    write: bool = True,
) -> ImageSet:
    """Images for ``data`` from the cache (keyed by the config hash), else generated and cached.

    ``counts`` (one per class) replaces ``data.per_class``: a label-skewed client set.
    ``write=False``: a cached entry is read, a generated set is not cached.
    """
    key = config_hash(data if counts is None else (data, [int(n) for n in counts]))

    def build() -> ImageSet:
        records = generate(
            data.generator,
            data.classes,
            data.per_class if counts is None else counts,
            data.seed,
            workers=workers,
            progress=progress,
        )
        return images_from_records(records, data)

    return cached_images(key, cache_dir, build, progress, write)
