"""Many clients: training splits built only when a client is drawn, the rest memory-mapped.

A federation of 1,000 clients cannot keep every client's data in memory (at the default sizes,
1,000 x 540 records x 8 KB is 4.3 GB) and should not generate the training splits of clients
that no round draws. ``lazy_client_data`` lists every client without building a training split:

* each training split is a :class:`~.imageset.LazyImageSet` view of :class:`TrainSets`, which
  builds it with ``partition.build_split`` (the function of the eager path, so a client's data
  are bit-identical whenever and in whatever order they are built) when it is first read, and
  keeps the most recently used ones up to :data:`HELD_BYTES`;
* the validation and test splits are read every round (the global sets are their union), so
  they are built once, one client at a time, into one uint8 image store (``image_store``) in
  the cache (a temporary file without one) and read back memory-mapped.

The store's cache entry is named by the hash of the data and partition configs:
``images-clients-<key>.npy`` holds the images (each client's validation, then its test split,
in client order), ``images-clients-<key>.npz`` the labels, SNRs, every client's two sizes and
the classes. Both are written atomically, the images first; a damaged entry is rebuilt.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import config_hash
from ..errors import DataError
from ..io.cache import atomic_file, read_npz_members
from ..signals import resolve_classes
from .config import DataConfig, PartitionConfig
from .image_store import ImageStore, open_store, temporary_store, write_store
from .imageset import ImageSet, LazyImageSet, MappedImageSet
from .partition import ClientData, ClientPlan, build_split

log = logging.getLogger(__name__)

#: Bumped when the entry's layout changes: an entry of another version is rebuilt.
VERSION = 1
#: Bytes of built training splits :class:`TrainSets` keeps (10 default clients: all of them).
HELD_BYTES = 256 * 2**20
EVAL_SPLITS = ("val", "test")
Progress = Callable[[int], None]


def set_bytes(data: ImageSet) -> int:
    """Memory held by an in-memory set's tensors."""
    return sum(t.element_size() * t.nelement() for t in (data.images, data.labels, data.snr_db))


class TrainSets:
    """Every client's training split, built on first read; the latest ones are kept.

    ``view(i)`` is client i's split as a LazyImageSet (nothing built); ``builds`` counts the
    splits built (or read from the per-split cache) so far. The most recently read splits stay
    in memory while they hold at most ``held_bytes``; a dropped one is built again if read.
    """

    def __init__(
        self,
        plans: list[ClientPlan],
        cfg: PartitionConfig,
        data: DataConfig,
        cache_dir: Path | None,
        held_bytes: int = HELD_BYTES,
    ):
        self.plans, self.cfg, self.data, self.cache_dir = plans, cfg, data, cache_dir
        self.held_bytes = held_bytes
        self.classes = tuple(resolve_classes(data.classes))
        self.held: OrderedDict[int, ImageSet] = OrderedDict()
        self.builds = 0

    def view(self, client: int) -> LazyImageSet:
        """Client ``client``'s training split, built when first read."""
        return LazyImageSet(self.plans[client].size, self.classes, self, client)

    def get(self, client: int) -> ImageSet:
        """Client ``client``'s training split: a kept one, else built now and kept."""
        if client in self.held:
            self.held.move_to_end(client)
            return self.held[client]
        data = build_split(self.plans[client], self.cfg, self.data, "train", self.cache_dir)
        self.builds += 1
        self.held[client] = data
        while len(self.held) > 1 and sum(map(set_bytes, self.held.values())) > self.held_bytes:
            self.held.popitem(last=False)
        return data

    def __getstate__(self) -> dict:
        """Pickled (a spawned worker) without the kept splits: they are built again there."""
        return {**self.__dict__, "held": OrderedDict()}


@dataclass(frozen=True)
class EvalEntry:
    """Every client's validation and test split: one image store, its labels, SNRs and sizes."""

    store: ImageStore
    labels: torch.Tensor
    snr_db: torch.Tensor
    sizes: np.ndarray  # (clients, 2): each client's validation and test records
    class_names: tuple[str, ...]

    def check(self, clients: int, classes: tuple[str, ...]) -> None:
        """ValueError unless the parts agree with each other, ``clients`` and ``classes``."""
        n = len(self.store)
        sizes = self.sizes
        if sizes.shape != (clients, 2) or sizes.dtype.kind not in "iu" or (sizes < 0).any():
            raise ValueError(f"sizes of shape {sizes.shape} for {clients} clients")
        if int(sizes.sum()) != n:
            raise ValueError(f"sizes add up to {int(sizes.sum())} records, the store holds {n}")
        if self.labels.shape != (n,) or self.snr_db.shape != (n,):
            raise ValueError(f"{len(self.labels)} labels and {len(self.snr_db)} SNRs for {n}")
        if self.labels.dtype != torch.int64 or self.snr_db.dtype != torch.float32:
            raise ValueError(f"labels {self.labels.dtype}, SNRs {self.snr_db.dtype}")
        if self.class_names != classes:
            raise ValueError(f"classes {list(self.class_names)}, expected {list(classes)}")
        if n and not (0 <= int(self.labels.min()) and int(self.labels.max()) < len(classes)):
            raise ValueError(f"labels outside 0..{len(classes) - 1}")

    def splits(self) -> tuple[list[ImageSet], list[ImageSet]]:
        """(validation splits, test splits), one per client: rows of the store, nothing read."""
        flat = self.sizes.ravel()
        ends = np.cumsum(flat)
        views = [self.view(np.arange(end - size, end)) for size, end in zip(flat, ends)]
        return views[0::2], views[1::2]

    def view(self, rows: np.ndarray) -> MappedImageSet:
        """The records at ``rows`` of the store."""
        index = torch.from_numpy(rows)
        return MappedImageSet(
            self.store, rows, self.labels[index], self.snr_db[index], self.class_names
        )


def entry_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    """(images, index) files of the entry ``key``."""
    stem = Path(cache_dir) / f"images-clients-{key}"
    return stem.with_suffix(".npy"), stem.with_suffix(".npz")


def save_index(path: Path, entry: EvalEntry, key: str) -> None:
    """Write the labels, SNRs, sizes and classes of ``entry`` to ``path`` (no pickles)."""
    header = {"version": VERSION, "key": key, "class_names": list(entry.class_names)}
    with atomic_file(path, ".npz") as handle:
        np.savez(
            handle,
            header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            labels=entry.labels.numpy(),
            snr_db=entry.snr_db.numpy(),
            sizes=entry.sizes,
        )


def load_entry(cache_dir: Path, key: str, clients: int, classes: tuple) -> EvalEntry | None:
    """The entry ``key``, or None: absent, or damaged (with a warning; it is rebuilt)."""
    images, index = entry_paths(cache_dir, key)
    if not (images.is_file() and index.is_file()):
        return None
    try:
        members = read_npz_members(index, ("header", "labels", "snr_db", "sizes"), "client index")
        header = json.loads(members["header"].tobytes().decode())
        if header.get("version") != VERSION or header.get("key") != key:
            raise ValueError("written for another key or version")
        labels, snr = (torch.from_numpy(members[k]) for k in ("labels", "snr_db"))
        names = tuple(header["class_names"])
        entry = EvalEntry(open_store(images), labels, snr, members["sizes"], names)
        entry.check(clients, classes)
    except (DataError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s: damaged client data cache (%s); building it again", index, exc)
        return None
    return entry


def _chunks(
    plans: list[ClientPlan],
    cfg: PartitionConfig,
    data: DataConfig,
    cache_dir: Path | None,
    progress: Progress | None,
    parts: list[tuple[torch.Tensor, torch.Tensor]],
) -> Iterator[np.ndarray]:
    """Each client's validation, then test images; their (labels, SNRs) go to ``parts``."""
    for plan in plans:
        for split in EVAL_SPLITS:
            built = build_split(plan, cfg, data, split, cache_dir, progress, write=False)
            parts.append((built.labels, built.snr_db))
            yield built.images.numpy()


def build_entry(
    plans: list[ClientPlan],
    cfg: PartitionConfig,
    data: DataConfig,
    cache_dir: Path | None,
    key: str,
    progress: Progress | None = None,
) -> EvalEntry:
    """Build every client's validation and test split into one store (cached under ``key``)."""
    classes = tuple(resolve_classes(data.classes))
    n = eval_records(plans, cfg, data)
    parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    chunks = _chunks(plans, cfg, data, cache_dir, progress, parts)
    if cache_dir is None:
        store = temporary_store(n, chunks)
    else:
        images, index = entry_paths(cache_dir, key)
        images.parent.mkdir(parents=True, exist_ok=True)
        write_store(images, n, chunks)
        store = open_store(images)
    labels = torch.cat([y for y, _ in parts])
    snr = torch.cat([s for _, s in parts])
    sizes = np.array([len(y) for y, _ in parts], dtype=np.int64).reshape(len(plans), 2)
    entry = EvalEntry(store, labels, snr, sizes, classes)
    entry.check(len(plans), classes)
    if cache_dir is not None:
        save_index(index, entry, key)
    return entry


def eval_splits(
    plans: list[ClientPlan],
    cfg: PartitionConfig,
    data: DataConfig,
    cache_dir: Path | None,
    progress: Progress | None = None,
) -> tuple[list[ImageSet], list[ImageSet]]:
    """Every client's (validation, test) split, memory-mapped from the cached store.

    The store is built on a cache miss; ``progress(n)`` is told of every record either way.
    """
    classes = tuple(resolve_classes(data.classes))
    key = config_hash(["client-eval", VERSION, data, cfg])
    entry = None if cache_dir is None else load_entry(Path(cache_dir), key, len(plans), classes)
    if entry is None:
        entry = build_entry(plans, cfg, data, cache_dir, key, progress)
    elif progress:
        progress(len(entry.store))
    return entry.splits()


def eval_records(plans: list[ClientPlan], cfg: PartitionConfig, data: DataConfig) -> int:
    """Validation and test records of all the clients together."""
    k = len(resolve_classes(data.classes))
    return len(plans) * k * (cfg.val_per_class + cfg.test_per_class)


def lazy_client_data(
    plans: list[ClientPlan],
    cfg: PartitionConfig,
    data: DataConfig,
    cache_dir: Path | None,
    progress: Progress | None = None,
) -> list[ClientData]:
    """Every client's data: training splits built when read, the others memory-mapped.

    ``progress`` is told of the validation and test records (``eval_records``), the only
    ones built here.
    """
    val, test = eval_splits(plans, cfg, data, cache_dir, progress)
    trains = TrainSets(plans, cfg, data, cache_dir)
    return [
        ClientData(plan, trains.view(i), v, t)
        for i, (plan, v, t) in enumerate(zip(plans, val, test))
    ]


__all__ = [
    "HELD_BYTES",
    "EvalEntry",
    "TrainSets",
    "eval_records",
    "eval_splits",
    "lazy_client_data",
]
