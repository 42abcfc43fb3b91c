"""Train/val/test splits and caps that never divide a group of records that belong together.

Windows cut from one burst are near copies of each other: one in train and another in test
would measure memory, not generalisation. So every choice here is of whole groups. Splits are
stratified by class and SNR bin (NaN SNR is a bin of its own): within a class, groups are
ordered by SNR bin (randomly within a bin) and each goes to the split furthest below its
share, so every split sees every SNR range in proportion. A class with fewer groups than
splits goes to train whole, with a logged warning (documented choice: training still works,
and the report shows the class missing from val/test).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, DataError
from ..signals.recordset import RecordSet

if TYPE_CHECKING:
    from .files import FileRecords

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def _fractions(val_fraction: float, test_fraction: float) -> tuple[float, float, float]:
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise ConfigError(f"{key}: must be in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"val_fraction + test_fraction: must be below 1 (train needs records), got "
            f"{val_fraction + test_fraction:g}"
        )
    return 1.0 - val_fraction - test_fraction, float(val_fraction), float(test_fraction)


def _walk(sizes: list[int], fractions: tuple[float, ...]) -> list[int]:
    """Each group (in order) to the split furthest below its share of the records so far."""
    assigned = [0] * len(fractions)
    total, out = 0, []
    for size in sizes:
        total += size
        deficits = [f * total - a for f, a in zip(fractions, assigned, strict=True)]
        split = max(range(len(fractions)), key=deficits.__getitem__)
        assigned[split] += size
        out.append(split)
    return out


def _fill_empty(split: np.ndarray, sizes: np.ndarray, fractions: tuple[float, ...]) -> None:
    """Give every split with a share at least one group: the smallest of the fullest split."""
    for s, f in enumerate(fractions):
        if f > 0 and not (split == s).any():
            donor = max(range(len(fractions)), key=lambda d: int((split == d).sum()))
            members = np.flatnonzero(split == donor)
            split[members[np.argmin(sizes[members])]] = s


def _assign(members: np.ndarray, sizes: np.ndarray, fractions: tuple, what: str) -> np.ndarray:
    """The split of each of one stratum's groups (given in walking order)."""
    needed = sum(f > 0 for f in fractions)
    if members.size < needed:
        log.warning(
            "%s has only %d group(s) of records that must stay together, fewer than the %d "
            "splits; all of it goes to train",
            what,
            members.size,
            needed,
        )
        return np.zeros(members.size, dtype=np.int64)
    split = np.asarray(_walk(sizes[members].tolist(), fractions), dtype=np.int64)
    _fill_empty(split, sizes[members], fractions)
    return split


def split_by_group(
    labels: np.ndarray,
    snr_db: np.ndarray,
    groups: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    *,
    snr_bin_db: float = 2.0,
    class_names: tuple[str, ...] | None = None,
    strata: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) sorted record indices: seeded, stratified, whole groups.

    A group's class and SNR are those of its first record; SNR bins are ``snr_bin_db`` wide.
    Fractions are of records, met as closely as whole groups allow. ``strata`` (one value per
    record, e.g. the attribute clients are formed by) splits each value on its own, so every
    value has train, val and test records. ``class_names`` only names classes in warnings.
    """
    fractions = _fractions(val_fraction, test_fraction)
    labels, snr_db, groups = (np.asarray(a) for a in (labels, snr_db, groups))
    outer = np.zeros(labels.shape, np.int64) if strata is None else np.asarray(strata)
    if not labels.shape == snr_db.shape == groups.shape == outer.shape or labels.ndim != 1:
        raise ValueError("labels, snr_db, groups and strata must be 1-D arrays of one length")
    _, first, inverse, sizes = np.unique(
        groups, return_index=True, return_inverse=True, return_counts=True
    )
    g_label, g_snr, g_outer = labels[first], snr_db[first].astype(np.float64), outer[first]
    bins = np.where(np.isnan(g_snr), np.inf, np.floor(g_snr / snr_bin_db))
    noise = np.random.default_rng(seed).permutation(len(first))
    split = np.zeros(len(first), dtype=np.int64)
    for value in np.unique(g_outer):
        for cls in np.unique(g_label[g_outer == value]):
            members = np.flatnonzero((g_label == cls) & (g_outer == value))
            members = members[np.lexsort((noise[members], bins[members]))]
            what = f"class {class_names[cls] if class_names else cls}"
            what += "" if strata is None else f" of {value}"
            split[members] = _assign(members, sizes, fractions, what)
    per_record = split[inverse.ravel()]
    return tuple(np.flatnonzero(per_record == s) for s in range(3))  # type: ignore[return-value]


def _single_records(
    labels: np.ndarray, order: np.ndarray, cap_total: float, cap_class: float
) -> np.ndarray:
    """Groups of one record each, visited in ``order`` (their labels given in that order)."""
    keep = np.ones(labels.size, dtype=bool)
    if cap_class < math.inf:
        by_class = np.argsort(labels, kind="stable")
        starts = np.searchsorted(labels[by_class], labels[by_class])
        rank = np.empty(labels.size, np.int64)
        rank[by_class] = np.arange(labels.size) - starts
        keep = rank < cap_class
    kept = order[keep]
    return kept[: int(min(cap_total, kept.size))]


def cap_groups(
    labels: np.ndarray, groups: np.ndarray, max_records: int = 0, max_per_class: int = 0, seed=0
) -> np.ndarray:
    """Sorted indices of a seeded random choice of whole groups within the caps (0: no cap).

    Groups are visited in a random order and taken when they fit both caps.
    """
    labels, groups = np.asarray(labels, np.int64), np.asarray(groups)
    if not max_records and not max_per_class:
        return np.arange(labels.size)
    cap_total, cap_class = max_records or math.inf, max_per_class or math.inf
    _, inverse = np.unique(groups, return_inverse=True)
    inverse = inverse.ravel()
    k = int(labels.max(initial=0)) + 1
    pairs, counts = np.unique(inverse * k + labels, return_counts=True)
    pair_group, pair_class = np.divmod(pairs, k)
    n_groups = int(inverse.max(initial=-1)) + 1
    starts = np.searchsorted(pair_group, np.arange(n_groups + 1)).tolist()
    pair_class, counts = pair_class.tolist(), counts.tolist()
    order = np.random.default_rng(seed).permutation(n_groups)
    if n_groups == labels.size:  # one record per group: the same choice, vectorised
        taken = _single_records(labels[np.argsort(inverse)][order], order, cap_total, cap_class)
        return np.flatnonzero(np.isin(inverse, taken))
    total, per_class, taken = 0, [0] * k, []
    for g in order.tolist():
        a, b = starts[g], starts[g + 1]
        size = sum(counts[a:b])
        if total + size > cap_total:
            continue
        if any(per_class[c] + n > cap_class for c, n in zip(pair_class[a:b], counts[a:b])):
            continue
        taken.append(g)
        total += size
        for c, n in zip(pair_class[a:b], counts[a:b], strict=True):
            per_class[c] += n
        if total >= cap_total:
            break
    if not taken and labels.size:
        smallest = int(np.bincount(inverse).min())
        raise ConfigError(
            f"max_records/max_per_class: no whole group fits the cap (the smallest group of "
            f"records that must stay together holds {smallest})"
        )
    return np.flatnonzero(np.isin(inverse, taken))


@dataclass(frozen=True)
class Splits:
    """One set of records and the indices of its train, val and test records."""

    records: FileRecords
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _check_disjoint(parts: dict[str, FileRecords]) -> None:
    """A file that feeds two splits would put the same records in both."""
    seen: dict[str, str] = {}
    for name, part in parts.items():
        for file in sorted(set(part.attrs.get("file", ()))):
            if file in seen:
                raise DataError(
                    file,
                    f"is in both the {seen[file]} and the {name} files; a file may feed one split",
                )
            seen[file] = name


def _onto(part: FileRecords, class_names: tuple[str, ...], split: str) -> FileRecords:
    """``part`` re-indexed onto the training class list; a class train lacks is an error."""
    present = [part.records.class_names[i] for i in np.unique(part.records.labels)]
    extra = [c for c in present if c not in class_names]
    if extra:
        at = np.flatnonzero(part.records.label_names == extra[0])[0]
        raise DataError(
            part.attrs["file"][at] if "file" in part.attrs else None,
            f"{split} records of class {extra[0]!r}, which no training record has "
            f"(training classes: {', '.join(class_names)})",
        )
    r = part.records
    target = {name: i for i, name in enumerate(class_names)}
    remap = np.asarray([target.get(name, -1) for name in r.class_names], dtype=np.int64)
    records = RecordSet(r.iq, remap[r.labels], class_names, r.meta, r.sample_rate, r.info)
    return replace(part, records=records)


def assign_to_splits(
    train: FileRecords,
    val: FileRecords | None = None,
    test: FileRecords | None = None,
    *,
    val_fraction: float = 0.0,
    test_fraction: float = 0.0,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> Splits:
    """Join separately loaded train/val/test files into one set with their split indices.

    A split given as files is used as is (no split is drawn for it); one not given is drawn
    from ``train`` by :func:`split_by_group` with its fraction. A fraction for a split that
    was also given as files is a ConfigError; a file in two splits is a DataError.
    """
    for key, part, fraction in (("val", val, val_fraction), ("test", test, test_fraction)):
        if part is not None and fraction:
            raise ConfigError(f"{key}_fraction: {key} files are given; drop the fraction")
    given = {"train": train, "val": val, "test": test}
    _check_disjoint({k: v for k, v in given.items() if v is not None})
    r = train.records
    drawn = split_by_group(
        r.labels,
        r.snr_db,
        train.groups,
        val_fraction,
        test_fraction,
        seed,
        class_names=r.class_names,
        strata=strata,
    )
    out, parts, start = dict(zip(SPLITS, drawn, strict=True)), [train], len(train)
    for key in ("val", "test"):
        if given[key] is not None:
            parts.append(_onto(given[key], r.class_names, key))
            out[key] = np.arange(start, start + len(parts[-1]))
            start += len(parts[-1])
    joined = train.concat(parts) if len(parts) > 1 else train
    return Splits(joined, out["train"], out["val"], out["test"])
