"""The user's files as training data: the splits of centralized runs, the clients of federated ones.

``data.source = "files"`` replaces the generator: the recordings in ``data.paths`` are read once
(a progress bar per file), cut to the model's record length, mapped onto its classes, split by
group (``groups.assign_to_splits``: never a window of one burst in two splits) and, for a
federated run, dealt to clients (``file_partition.partition_files``). The images of every
loaded record are built in chunks, with a progress bar, and cached under a key of the data
config and the files' sizes and modification times, so the sub-runs of ``--method a,b`` and a
second run image nothing again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..config import config_hash, to_dict
from ..reporter import Reporter
from ..signals import resolve_classes
from .config import DataConfig, PartitionConfig
from .file_partition import FileClient, file_partition_rows, partition_files
from .files import FileRecords, expand_paths, load_files
from .groups import Splits, assign_to_splits
from .imageset import ImageSet, cached_images, quantised_images
from .partition import ClientData

#: Records imaged at a time (bounds the float images in memory: 2,048 x 8 x 32 x 32 x 4 B).
IMAGE_CHUNK = 2048
#: ``data.classes`` value meaning: every class the files hold (files only).
FOUND = "found"


def file_classes(data: DataConfig) -> tuple[str, ...] | None:
    """The classes asked for (their order is the label order); None: every class found."""
    return None if data.classes == FOUND else tuple(resolve_classes(data.classes))


def _fingerprint(paths: Sequence[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of every file behind ``paths``, a recording's data file included."""
    files: set[Path] = set()
    for path in paths:
        if path.is_dir():
            files.update(f for f in path.rglob("*") if f.is_file())
        else:
            files.add(path)
            files.update(f for f in path.parent.glob(f"{path.stem.split('.')[0]}.*"))
    return [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(files)]


def read_records(
    specs: Sequence[str], data: DataConfig, length: int, classes, reporter: Reporter, what: str
) -> FileRecords:
    """Every record of the files ``specs`` name, cut to ``length`` and mapped onto ``classes``."""
    paths = expand_paths(specs)
    with reporter.task(f"reading {what} files", len(paths)) as advance:
        return load_files(
            paths,
            length=length,
            classes=classes,
            drop_unknown=data.drop_unknown,
            snr_key=data.snr_key,
            rml2018_order=data.rml2018_order,
            max_records=data.max_records,
            max_per_class=data.max_per_class,
            seed=data.seed,
            advance=advance,
        )


def file_splits(data: DataConfig, length: int, classes, reporter: Reporter, by: str = "") -> Splits:
    """Train, validation and test records: the given files, or a split drawn by group.

    With ``by`` (a partition key) each of its values is split on its own, so every client
    formed by it holds records of all three splits.
    """
    train = read_records(data.paths, data, length, classes, reporter, "training")
    given = {
        key: read_records(specs, data, length, train.records.class_names, reporter, key)
        for key, specs in (("validation", data.val_paths), ("test", data.test_paths))
        if specs
    }
    if by and by in train.attrs:
        strata = train.attrs[by]
    else:
        strata = None
    return assign_to_splits(
        train,
        given.get("validation"),
        given.get("test"),
        val_fraction=0.0 if "validation" in given else data.val_fraction,
        test_fraction=0.0 if "test" in given else data.test_fraction,
        seed=data.seed,
        strata=strata,
    )


def file_images(
    records: FileRecords, data: DataConfig, cache_dir: Path | None, reporter: Reporter
) -> ImageSet:
    """The images of every record, built in chunks (cached by the data config and the files)."""
    r = records.records
    sources = [Path(p) for p in r.info.get("sources", [])]
    key = config_hash((to_dict(data), _fingerprint(sources), r.length, list(r.class_names)))

    def build(advance: Callable[[int], None]) -> ImageSet:
        chunks = []
        for start in range(0, len(r), IMAGE_CHUNK):
            chunks.append(quantised_images(r.iq[start : start + IMAGE_CHUNK], data.images))
            advance(len(chunks[-1]))
        return ImageSet(
            torch.cat(chunks),
            torch.from_numpy(r.labels.copy()),
            torch.from_numpy(r.snr_db.astype(np.float32)),
            r.class_names,
        )

    with reporter.task("images", len(r)) as advance:
        return cached_images(f"files-{key}", cache_dir, lambda: build(advance), advance)


def file_image_splits(
    data: DataConfig, length: int, classes, cache_dir: Path | None, reporter: Reporter
) -> dict[str, ImageSet]:
    """The train/val/test ImageSets of a centralized run on the user's files."""
    splits = file_splits(data, length, classes, reporter)
    images = file_images(splits.records, data, cache_dir, reporter)
    return {
        "train": images.subset(splits.train),
        "val": images.subset(splits.val),
        "test": images.subset(splits.test),
    }


def file_partition(
    data: DataConfig, partition: PartitionConfig, length: int, classes, reporter: Reporter
) -> tuple[Splits, list[FileClient]]:
    """The split and the clients of a federated run on the user's files (no images)."""
    splits = file_splits(data, length, classes, reporter, partition.by)
    clients = partition_files(
        splits.records, splits.train, splits.val, splits.test, partition, by=partition.by
    )
    return splits, clients


def file_clients(
    data: DataConfig,
    partition: PartitionConfig,
    length: int,
    classes,
    cache_dir: Path | None,
    reporter: Reporter,
) -> tuple[list[ClientData], list[dict]]:
    """Every client's train/val/test ImageSets, and the partition's rows (partition.json)."""
    splits, clients = file_partition(data, partition, length, classes, reporter)
    images = file_images(splits.records, data, cache_dir, reporter)
    out = [
        ClientData(c, images.subset(c.train), images.subset(c.val), images.subset(c.test))
        for c in clients
    ]
    return out, file_partition_rows(clients, splits.records)


def with_length(data: DataConfig, length: int) -> DataConfig:
    """``data`` with its record length set (``generator.length``: the cut of every file)."""
    return replace(data, generator=replace(data.generator, length=length))


__all__ = [
    "FOUND",
    "file_classes",
    "file_clients",
    "file_image_splits",
    "file_images",
    "file_partition",
    "file_splits",
    "read_records",
    "with_length",
]
