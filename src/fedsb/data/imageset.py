"""ImageSet: a generated IQ set turned into uint8 images, cached on disk by config hash.

Images are stored as uint8 (x 255): 8 x 32 x 32 channels cost 8 KB per record instead of 32 KB,
so a 20k-record training set stays ~160 MB in memory; batches are converted to float on the fly.
Splits are generated with their own seeds (train, val, test), so nothing is shared between them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

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


def quantised_images(iq: np.ndarray, images: ImageConfig) -> torch.Tensor:
    """IQ records -> uint8 images (what every model is trained and evaluated on)."""
    return to_images(iq, images).mul_(255.0).round_().to(torch.uint8)


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
) -> ImageSet:
    """The image set cached under ``key`` in ``cache_dir``, else ``build()`` and cache it.

    A damaged entry is rebuilt; the write is atomic (a temporary file, then a rename).
    """
    path = None if cache_dir is None else Path(cache_dir) / f"images-{key}.safetensors"
    cached = read_cached_images(path) if path is not None and path.exists() else None
    if cached is not None:
        if progress:
            progress(len(cached))
        return cached
    result = build()
    if path is not None:
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
) -> ImageSet:
    """Images for ``data`` from the cache (keyed by the config hash), else generated and cached.

    ``counts`` (one per class) replaces ``data.per_class``: a label-skewed client set.
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

    return cached_images(key, cache_dir, build, progress)
