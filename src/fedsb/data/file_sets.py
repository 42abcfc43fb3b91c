"""The user's files as training data: the splits of centralized runs, the clients of federated ones.

``data.source = "files"`` replaces the generator: the recordings in ``data.paths`` are opened
(a progress bar per file), cut to the model's record length, mapped onto its classes, capped,
split by group (``groups.assign_to_splits``: never a window of one burst in two splits) and,
for a federated run, dealt to clients (``file_partition.partition_files``). All of that needs
labels, groups and attributes only: the samples are read afterwards, chunk by chunk
(:data:`READ_BYTES`), imaged with a progress bar and written to an on-disk uint8 image file
that training reads batch by batch through a memory map. So a 20 GB RML2018 file never sits
in memory, and caps choose rows before any sample is read. The images and the records' index
are cached (``file_cache``) under a key of the data config, the files' sizes and modification
times, the record length and the classes: the sub-runs of ``--method a,b`` and a second run
read nothing from the files. Without a cache directory the images go to a temporary file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..config import config_hash, to_dict
from ..errors import DataError
from ..io.labels import class_list, order_classes
from ..reporter import Reporter
from .config import DataConfig, PartitionConfig
from .file_cache import Entry, cacheable, entry_paths, load_entry, save_index
from .file_partition import FileClient, file_partition_rows, partition_files
from .files import FileRecords, expand_paths, load_files
from .groups import Splits, assign_to_splits
from .image_store import ImageStore, open_store, temporary_store, write_store
from .imageset import MappedImageSet, quantised_images
from .partition import ClientData
from .sources import open_source

#: Records imaged at a time (bounds the float images in memory: 2,048 x 8 x 32 x 32 x 4 B).
IMAGE_CHUNK = 2048
#: Bytes of samples read from the files at a time (8,192 records of 1,024 complex64 samples).
READ_BYTES = 64 * 2**20
#: ``data.classes`` value meaning: every class the files hold (files only).
FOUND = "found"

Parts = tuple[FileRecords, FileRecords | None, FileRecords | None]


def file_classes(data: DataConfig) -> tuple[str, ...] | None:
    """The classes asked for (their order is the label order); None: every class found."""
    return None if data.classes == FOUND else class_list(data.classes)


def settle_found(data: DataConfig, universe: tuple[str, ...], reporter: Reporter) -> DataConfig:
    """``data`` naming those of ``universe`` (a backbone's classes) its training files hold.

    Only ``data.classes = "found"`` on files changes. A 25-class backbone fine-tuned on an
    11-class recording so gets an 11-row head, in the backbone's order, and the run's saved
    config names the 11 (a resume, a Flower node and ``evaluate`` see the same list). Records
    of classes outside ``universe`` are left to the read: an error, or dropped (drop_unknown).
    """
    if not data.from_files or data.classes != FOUND:
        return data
    held = _held_classes(data)
    kept = [c for c in universe if c in held]
    others = ", ".join(order_classes(held - set(universe)))
    if not kept:
        raise DataError(
            None,
            f"data.paths: none of the files' classes ({others}) is among the backbone's "
            f"({', '.join(universe)})",
        )
    if others and not data.drop_unknown:
        raise DataError(
            None,
            f"data.paths: the files hold classes the backbone lacks: {others} (it knows "
            f"{', '.join(universe)}; --drop-unknown leaves those records out)",
        )
    if len(kept) < len(universe):
        reporter.info(
            f"the files hold {len(kept)} of the backbone's {len(universe)} classes: the model "
            "keeps those (--classes chooses others)"
        )
    return replace(data, classes=",".join(kept))


def _held_classes(data: DataConfig) -> set[str]:
    """The classes the records of the training files hold (a deferred source reads no sample)."""
    options = {"skip_unknown": data.drop_unknown, "snr_key": data.snr_key}
    options["rml2018_order"] = data.rml2018_order
    length = data.generator.length
    sources = (open_source(Path(p), length, **options) for p in expand_paths(data.paths))
    return set().union(*(set(s.names) for s in sources))


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
    """The records of the files ``specs`` name, cut to ``length`` and mapped onto ``classes``.

    Deferred: labels, groups and attributes only; the samples are read when imaged.
    """
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
            deferred=True,
        )


def _read_parts(data: DataConfig, length: int, classes, reporter: Reporter) -> Parts:
    """The training files, and the validation and test files where they are given.

    The caps (``max_records``, ``max_per_class``) choose among the training files only: given
    validation and test files are read whole, so a capped run is scored on the same records.
    """
    train = read_records(data.paths, data, length, classes, reporter, "training")
    names = train.records.class_names
    whole = replace(data, max_records=0, max_per_class=0)
    val, test = (
        read_records(specs, whole, length, names, reporter, what) if specs else None
        for what, specs in (("validation", data.val_paths), ("test", data.test_paths))
    )
    return train, val, test


def _assign(parts: Parts, data: DataConfig, by: str) -> Splits:
    """Train, validation and test records: the given files, or a split drawn by group.

    With ``by`` (a partition key) each of its values is split on its own, so every client
    formed by it holds records of all three splits.
    """
    train, val, test = parts
    return assign_to_splits(
        train,
        val,
        test,
        val_fraction=0.0 if val is not None else data.val_fraction,
        test_fraction=0.0 if test is not None else data.test_fraction,
        seed=data.seed,
        strata=train.attrs[by] if by and by in train.attrs else None,
    )


def file_splits(data: DataConfig, length: int, classes, reporter: Reporter, by: str = "") -> Splits:
    """The split of the user's files (deferred records: no sample is read)."""
    return _assign(_read_parts(data, length, classes, reporter), data, by)


def _cache_key(data: DataConfig, length: int, classes) -> str:
    """The key of the data config, every file behind it (size, mtime), length and classes."""
    specs = (data.paths, data.val_paths, data.test_paths)
    paths = [p for spec in specs if spec for p in expand_paths(spec)]
    wanted = None if classes is None else list(classes)
    return config_hash((to_dict(data), _fingerprint(paths), length, wanted))


def _image_chunks(
    records: FileRecords, data: DataConfig, advance: Callable[[int], None]
) -> Iterator[np.ndarray]:
    """uint8 images of every record, in order: samples read READ_BYTES at a time."""
    n = len(records)
    length = records.samples.length if records.samples else records.records.length
    step = max(1, READ_BYTES // (8 * max(length, 1)) // IMAGE_CHUNK) * IMAGE_CHUNK
    size = data.images.size
    buffer = torch.empty((min(n, IMAGE_CHUNK), len(data.images.channels), size, size))
    for start in range(0, n, step):
        iq = records.read_iq(np.arange(start, min(start + step, n)))
        for a in range(0, len(iq), IMAGE_CHUNK):
            block = iq[a : a + IMAGE_CHUNK]
            chunk = quantised_images(block, data.images, buffer[: len(block)]).numpy()
            advance(len(chunk))
            yield chunk
        del iq  # before the next read: one chunk of samples in memory, not two


def _build_images(
    records: FileRecords, data: DataConfig, cache_dir: Path | None, key: str, reporter: Reporter
) -> ImageStore:
    """The images of ``records``, built into the cache entry's file (or a temporary one)."""
    with reporter.task("images", len(records)) as advance:
        chunks = _image_chunks(records, data, advance)
        if cache_dir is None:
            return temporary_store(len(records), chunks)
        path = entry_paths(cache_dir, key)[0]
        write_store(path, len(records), chunks)
    return open_store(path)


def _entry_parts(entry: Entry) -> Parts:
    """The training, validation and test parts a cache entry was joined from."""
    out, start = [], 0
    for part in entry.parts:
        if part is not None:
            size, dropped = part
            sub = entry.records.subset(np.arange(start, start + size))
            out.append(replace(sub, dropped=dropped))
            start += size
        else:
            out.append(None)
    return tuple(out)  # type: ignore[return-value]


def _sizes(parts: Parts) -> tuple:
    return tuple(None if p is None else (len(p), dict(p.dropped)) for p in parts)


def file_dataset(
    data: DataConfig,
    length: int,
    classes,
    cache_dir: Path | None,
    reporter: Reporter,
    by: str = "",
) -> tuple[Splits, MappedImageSet]:
    """The split of the user's files and the images of all its records, on disk.

    From the cache when an entry of this key is there (no source file is opened), else read,
    imaged and cached. ``by``: as for :func:`file_splits`.
    """
    key = _cache_key(data, length, classes)
    entry = None if cache_dir is None else load_entry(cache_dir, key)
    if entry is not None:
        with reporter.task("images", len(entry.records)) as advance:
            advance(len(entry.records))
        splits, store = _assign(_entry_parts(entry), data, by), entry.store
    else:
        parts = _read_parts(data, length, classes, reporter)
        splits = _assign(parts, data, by)
        store = _build_images(splits.records, data, cache_dir, key, reporter)
        splits = replace(splits, records=replace(splits.records, samples=None))
        if cache_dir is not None and cacheable(splits.records):
            save_index(entry_paths(cache_dir, key)[1], splits.records, _sizes(parts), key)
    r = splits.records.records
    labels = torch.from_numpy(r.labels.copy())
    snr = torch.from_numpy(r.snr_db.astype(np.float32))
    return splits, MappedImageSet(store, np.arange(len(r)), labels, snr, r.class_names)


def file_image_splits(
    data: DataConfig, length: int, classes, cache_dir: Path | None, reporter: Reporter
) -> dict[str, MappedImageSet]:
    """The train/val/test ImageSets of a centralized run on the user's files."""
    splits, images = file_dataset(data, length, classes, cache_dir, reporter)
    return {
        "train": images.subset(splits.train),
        "val": images.subset(splits.val),
        "test": images.subset(splits.test),
    }


def file_partition(
    data: DataConfig, partition: PartitionConfig, length: int, classes, reporter: Reporter
) -> tuple[Splits, list[FileClient]]:
    """The split and the clients of a federated run on the user's files (nothing imaged)."""
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
    splits, images = file_dataset(data, length, classes, cache_dir, reporter, partition.by)
    clients = partition_files(
        splits.records, splits.train, splits.val, splits.test, partition, by=partition.by
    )
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
    "settle_found",
    "file_clients",
    "file_dataset",
    "file_image_splits",
    "file_partition",
    "file_splits",
    "read_records",
    "with_length",
]
