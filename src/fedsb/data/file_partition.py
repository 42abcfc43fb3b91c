"""Federated clients over loaded files: who holds which records, groups never divided.

Two ways (``by``):
* ``""``: the generator's skews (:mod:`.partition`) applied to recorded data. Client sizes
  (lognormal quantity skew), class shares (Dirichlet label skew) and SNR windows are drawn
  from ``PartitionConfig.seed`` in the same order as :func:`.partition.plan_partition`; then
  groups of training records are dealt out in a few rounds, each client taking a slice of
  what it still wants from the groups its window admits, so a shortage is shared rather than
  hitting the last clients. A record without SNR falls in no window and any client may take
  it. Every record goes to at most one client. Each client also gets disjoint, class-balanced
  val and test records (``val_per_class``, ``test_per_class``) from its own window, and the
  global test set is the union of the clients' test records. ``records_per_client`` and
  ``channel_skew`` do not apply: the files decide how much data there is and its channel.
* ``"file"``, ``"directory"`` or any attribute key (e.g. ``"core:hw"``): one client per
  distinct value among the training records (sorted); all that value's records go to it.
  Val/test records of a value no training record has (a test recording from another
  receiver) are dealt to the clients by group, in turn: the global test set keeps them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from .config import PartitionConfig
from .files import FileRecords

log = logging.getLogger(__name__)

#: Rounds of dealing: each client takes 1/rounds of what it still wants per round.
ROUNDS = 8


@dataclass(frozen=True)
class FileClient:
    """One client's records (indices into the FileRecords) and what makes it different."""

    client: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    description: str  # "core:hw=usrp-b210", or the SNR window and class shares


@dataclass(frozen=True)
class _Pool:
    """The groups of one split: class, SNR and size of each, and a seeded visiting order."""

    index: np.ndarray  # the split's record indices
    group_of: np.ndarray  # (len(index),) position of each record's group
    cls: np.ndarray
    snr: np.ndarray
    size: np.ndarray
    order: np.ndarray  # a random permutation of the groups


def _pool(records: FileRecords, index: np.ndarray, rng: np.random.Generator) -> _Pool:
    index = np.asarray(index, dtype=np.int64)
    _, first, inverse, size = np.unique(
        records.groups[index], return_index=True, return_inverse=True, return_counts=True
    )
    return _Pool(
        index,
        inverse.ravel(),
        records.records.labels[index[first]],
        records.records.snr_db[index[first]],
        size,
        rng.permutation(first.size),
    )


def _deal(pool: _Pool, windows: list[tuple[float, float]], demand: np.ndarray) -> np.ndarray:
    """The client of each group (-1: none): ROUNDS rounds, each a slice of the unmet demand.

    A client never takes more than its demand of a class, except one first group larger
    than the whole demand.
    """
    n, k = demand.shape
    eligible = np.zeros((n, pool.size.size), dtype=bool)
    for i, (lo, hi) in enumerate(windows):
        eligible[i] = np.isnan(pool.snr) | ((pool.snr >= lo) & (pool.snr <= hi))
    owner = np.full(pool.size.size, -1, dtype=np.int64)
    taken = np.zeros((n, k))
    by_class = [pool.order[pool.cls[pool.order] == c] for c in range(k)]
    for r in range(ROUNDS):
        by_class = [m[owner[m] < 0] for m in by_class]
        for i in range(n):
            for c, members in enumerate(by_class):
                left = demand[i, c] - taken[i, c]
                want = math.ceil(left / (ROUNDS - r))
                if want <= 0:
                    continue
                free = members[(owner[members] < 0) & eligible[i, members]]
                cum = np.cumsum(pool.size[free])
                count = min(np.searchsorted(cum, want) + 1, np.searchsorted(cum, left, "right"))
                if count == 0 and taken[i, c] == 0:
                    count = 1  # one group larger than the whole demand: better than none
                owner[free[:count]] = i
                taken[i, c] += pool.size[free[:count]].sum()
    return owner


def _records(pool: _Pool, owner: np.ndarray, client: int) -> np.ndarray:
    """Sorted record indices of the groups ``client`` owns."""
    return np.sort(pool.index[owner[pool.group_of] == client])


def _windows(cfg: PartitionConfig, snr: np.ndarray, rng: np.random.Generator) -> list:
    """Each client's SNR window (lo, hi), drawn as the generator's partition draws them."""
    n, finite = cfg.clients, snr[np.isfinite(snr)]
    if finite.size == 0:
        return [(-math.inf, math.inf)] * n
    lo, hi = float(finite.min()), float(finite.max())
    if not cfg.snr_skew:
        return [(lo, hi)] * n
    window = min(cfg.snr_window_db, hi - lo)
    starts = np.linspace(lo, hi - window, n) if n > 1 else np.array([lo])
    return [(float(a), float(a + window)) for a in rng.permutation(starts)]


def _describe(window: tuple[float, float], shares: np.ndarray, names: tuple[str, ...]) -> str:
    lo, hi = window
    snr = "any SNR" if math.isinf(lo) else f"SNR {lo:g}..{hi:g} dB"
    if np.allclose(shares, shares[0]):
        return f"{snr}, balanced classes"
    top = np.argsort(-shares, kind="stable")[:3]
    return f"{snr}, classes " + ", ".join(f"{names[c]} {shares[c]:.0%}" for c in top)


def _skewed(
    records: FileRecords,
    splits: tuple[np.ndarray, np.ndarray, np.ndarray],
    cfg: PartitionConfig,
) -> list[FileClient]:
    rng = np.random.default_rng(cfg.seed)
    n, names = cfg.clients, records.records.class_names
    k, total = len(names), len(splits[0])
    if cfg.quantity_sigma > 0:
        shares = rng.lognormal(0.0, cfg.quantity_sigma, n)
    else:
        shares = np.ones(n)
    sizes = np.maximum(shares / shares.sum() * total, cfg.min_records)
    windows = _windows(cfg, records.records.snr_db[splits[0]], rng)
    if cfg.dirichlet_alpha > 0:
        mix = np.stack([rng.dirichlet(np.full(k, cfg.dirichlet_alpha)) for _ in range(n)])
    else:
        mix = np.full((n, k), 1.0 / k)
    pools = [_pool(records, index, rng) for index in splits]
    per_class = (None, cfg.val_per_class, cfg.test_per_class)
    dealt = [
        _deal(pool, windows, sizes[:, None] * mix if want is None else np.full((n, k), want))
        for pool, want in zip(pools, per_class, strict=True)
    ]
    clients = []
    for i in range(n):
        train, val, test = (_records(p, d, i) for p, d in zip(pools, dealt, strict=True))
        if train.size < cfg.min_records:
            raise ConfigError(
                f"min_records: client {i} gets only {train.size} training records "
                f"({_describe(windows[i], mix[i], names)}), fewer than {cfg.min_records}; "
                "use fewer clients, a wider snr_window_db or a lower min_records"
            )
        clients.append(FileClient(i, train, val, test, _describe(windows[i], mix[i], names)))
    return clients


def _values(records: FileRecords, key: str, used: np.ndarray) -> np.ndarray:
    """The ``key`` attribute of every record; every used record must have one."""
    available = sorted(k for k, v in records.attrs.items() if (v != "").any())
    if key not in available:
        raise DataError(
            None, f"partition key {key!r}: no record has it; available keys: {', '.join(available)}"
        )
    values = records.attrs[key]
    missing = used[values[used] == ""]
    if missing.size:
        where = records.attrs["file"][missing[0]] if "file" in records.attrs else None
        raise DataError(
            where,
            f"{missing.size} record(s) have no {key!r} value; every record needs one to "
            f"partition by {key}",
        )
    _, codes = np.unique(values[used], return_inverse=True)
    groups = records.groups[used]
    pairs = np.unique(np.stack([groups, codes.ravel()]), axis=1).shape[1]
    if pairs != np.unique(groups).size:
        raise ConfigError(f"by: {key!r} varies within a group of records that must stay together")
    return values


def _by_key(
    records: FileRecords, splits: tuple[np.ndarray, np.ndarray, np.ndarray], key: str
) -> list[FileClient]:
    train, val, test = splits
    values = _values(records, key, np.concatenate(splits))
    names = sorted(set(values[train].tolist()))
    owner = {name: i for i, name in enumerate(names)}
    held = [_owners(records, s, values, owner, key) for s in (val, test)]
    return [
        FileClient(
            i,
            train[values[train] == name],
            *(s[o == i] for s, o in zip((val, test), held, strict=True)),
            description=f"{key}={name}",
        )
        for i, name in enumerate(names)
    ]


def _owners(
    records: FileRecords, rows: np.ndarray, values: np.ndarray, owner: dict, key: str
) -> np.ndarray:
    """The client of each val/test record: its value's, else dealt out by group.

    A value without training records (an independent test recording from another receiver)
    trains no client; its records are dealt to the clients group by group, in turn, so the
    global test set (their union) still holds all of them.
    """
    out = np.asarray([owner.get(v, -1) for v in values[rows].tolist()], dtype=np.int64)
    orphan = out < 0
    if orphan.any():
        _, order = np.unique(records.groups[rows[orphan]], return_inverse=True)
        out[orphan] = order.ravel() % len(owner)
        lone = sorted(set(values[rows[orphan]].tolist()))
        log.info(
            "by: %s %s: no training records; its %d val/test records are dealt to the %d clients",
            key,
            ", ".join(repr(v) for v in lone),
            int(orphan.sum()),
            len(owner),
        )
    return out


def partition_files(
    records: FileRecords,
    train: np.ndarray,
    val: np.ndarray,
    test: np.ndarray,
    cfg: PartitionConfig,
    *,
    by: str = "",
) -> list[FileClient]:
    """The clients of a federated run over ``records`` (train/val/test: record indices).

    See the module docstring for the two ways ``by`` chooses. No group is ever divided
    between clients, and no record goes to two clients.
    """
    splits = tuple(np.asarray(s, dtype=np.int64) for s in (train, val, test))
    if not len(splits[0]):
        raise ConfigError("train: no training records to partition")
    if by:
        return _by_key(records, splits, by)  # type: ignore[arg-type]
    return _skewed(records, splits, cfg)  # type: ignore[arg-type]


def global_test(clients: list[FileClient]) -> np.ndarray:
    """The global test set: the union of the clients' test records (sorted indices)."""
    parts = [c.test for c in clients]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def file_partition_rows(clients: list[FileClient], records: FileRecords) -> list[dict]:
    """JSON-ready description of the clients (as :func:`.partition.partition_rows` gives)."""
    labels, snr = records.records.labels, records.records.snr_db
    k = len(records.records.class_names)
    rows = []
    for c in clients:
        finite = snr[c.train][np.isfinite(snr[c.train])]
        rows.append(
            {
                "client": c.client,
                "records": int(c.train.size),
                "val": int(c.val.size),
                "test": int(c.test.size),
                "counts": np.bincount(labels[c.train], minlength=k).tolist(),
                "snr_db": [float(finite.min()), float(finite.max())]
                if finite.size
                else [math.nan, math.nan],
                "profile": c.description,
            }
        )
    return rows
