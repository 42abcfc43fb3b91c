"""The user's own data files as one labelled training set, with groups and natural attributes.

:func:`expand_paths` turns the user's specs (files, globs, directories) into sources;
:func:`load_files` reads them into one :class:`FileRecords`: one class list, records of the
model's length, the groups that splits and clients must never divide (windows of one SigMF
annotation or of one long record, an npz ``group``/``burst`` column) and per-record text
attributes ("file", "directory", every scalar SigMF field) for natural partitions.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..io.labels import canonical_label, order_classes, rml2018_names
from ..io.load import FORMATS, source_format
from ..io.sigmf_checks import union_meta
from ..signals.recordset import RecordSet
from .groups import cap_groups
from .samples import Samples, take_samples
from .sources import Source, open_source

log = logging.getLogger(__name__)

_GLOB_CHARS = frozenset("*?[")
_KNOWN = ", ".join(s for suffixes in FORMATS.values() for s in suffixes)


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    return next((fmt for fmt, suffixes in FORMATS.items() if name.endswith(suffixes)), None)


def _recording(path: Path) -> Path:
    """A ``.sigmf-data`` file stands for its recording, named by its ``.sigmf-meta``."""
    meta = path.with_suffix(".sigmf-meta")
    return meta if path.name.lower().endswith(".sigmf-data") and meta.is_file() else path


def _scan(directory: Path) -> list[Path]:
    """A directory of SigMF recordings only is one source; otherwise each supported file."""
    found = [
        p
        for p in sorted(directory.rglob("*"))
        if p.is_file()
        and _kind(p) is not None
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    ]
    if found and all(_kind(p) == "sigmf" for p in found):
        return [directory]
    return [_recording(p) for p in found]


def _expand(spec: str | Path, base: str | Path | None) -> list[Path]:
    path = Path(os.path.expanduser(str(spec)))
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    if _GLOB_CHARS & set(str(spec)) and not path.exists():  # a name like '[x].npz' is a file
        matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]
        if not matches:
            raise DataError(path, "matches no file")
        out = [q for m in matches for q in (_scan(m) if m.is_dir() else [m]) if _kind(q)]
        if not out:
            raise DataError(
                path, f"matches no data file ({len(matches)} matches, none of type {_KNOWN})"
            )
        return [_recording(q) for q in out]
    if path.is_dir():
        out = _scan(path)
        if not out:
            raise DataError(path, f"matches no file: no data file ({_KNOWN}) in this directory")
        return out
    if not path.exists():
        raise DataError(path, "matches no file (no such file or directory)")
    source_format(path)  # an unsupported type: DataError naming the types
    return [_recording(path)]


def expand_paths(specs: Iterable[str | Path], base: str | Path | None = None) -> list[Path]:
    """Every data source the specs name, in order, each once (by resolved path).

    A spec is a file, a glob (sorted matches; ``**`` recurses) or a directory (searched
    recursively, hidden entries skipped): a directory holding only SigMF recordings is one
    SigMF source, as :func:`fedsb.io.load_records` reads it; otherwise each supported file
    in it is a source. Relative specs resolve against ``base`` when it is given.
    """
    out, seen = [], set()
    for spec in specs:
        for path in _expand(spec, base):
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                out.append(path)
    return out


@dataclass(frozen=True)
class FileRecords:
    """Records loaded from files, with what splits and partitions need.

    Attributes:
        records: the records (all of the model's length), one class list.
        groups: (N,) int64; records sharing a value must stay together (one split,
            one client): windows of one SigMF annotation or one long record, or one value of
            an npz ``group``/``burst`` column; otherwise each record is its own group.
        attrs: (N,) str per attribute: "file", "directory" and, for SigMF, every scalar
            global, capture-segment and annotation field; "" where a record has none.
        dropped: records left out, by class or label as written (drop_unknown).
        samples: for a deferred set (``load_files(..., deferred=True)``), where the samples
            are; ``records.iq`` is then (N, 0). None: they are ``records.iq``.
    """

    records: RecordSet
    groups: np.ndarray
    attrs: dict[str, np.ndarray]
    dropped: dict[str, int] = field(default_factory=dict)
    samples: Samples | None = None

    def __post_init__(self) -> None:
        n = len(self.records)
        if np.shape(self.groups) != (n,):
            raise ValueError(f"groups must be ({n},), got {np.shape(self.groups)}")
        for key, value in self.attrs.items():
            if np.shape(value) != (n,):
                raise ValueError(f"attrs[{key!r}] must be ({n},), got {np.shape(value)}")

    def __len__(self) -> int:
        return len(self.records)

    def read_iq(self, index: np.ndarray | Sequence[int]) -> np.ndarray:
        """The samples of the records at ``index`` (read now for a deferred set)."""
        index = np.asarray(index, dtype=np.int64)
        return self.records.iq[index] if self.samples is None else self.samples.read(index)

    def subset(self, index: np.ndarray | Sequence[int]) -> FileRecords:
        """The records at ``index`` (groups keep their numbers)."""
        index = np.asarray(index, dtype=np.int64)
        attrs = {k: v[index] for k, v in self.attrs.items()}
        samples = None if self.samples is None else self.samples.subset(index)
        records = self.records.subset(index)
        return FileRecords(records, self.groups[index], attrs, self.dropped, samples)

    @staticmethod
    def concat(parts: Sequence[FileRecords]) -> FileRecords:
        """One set from several with the same classes and length; groups stay apart.

        Groups are numbered 0..G-1 again, in order of the parts.
        """
        first = parts[0].records
        for part in parts[1:]:
            if part.records.class_names != first.class_names:
                raise ValueError("cannot concatenate sets with different class lists")
        deferred = [p.samples for p in parts if p.samples is not None]
        if deferred and len(deferred) != len(parts):
            raise ValueError("cannot concatenate deferred sets with loaded ones")
        offsets = np.cumsum([0] + [int(p.groups.max(initial=-1)) + 1 for p in parts])
        keys = sorted(set().union(*(p.attrs for p in parts)))
        dropped: dict[str, int] = {}
        for part in parts:
            for label, n in part.dropped.items():
                dropped[label] = dropped.get(label, 0) + n
        records = RecordSet(
            np.concatenate([p.records.iq for p in parts]),
            np.concatenate([p.records.labels for p in parts]),
            first.class_names,
            union_meta([dict(p.records.meta) for p in parts], [len(p) for p in parts]),
            first.sample_rate,
            first.info,
        )
        shifted = np.concatenate([p.groups + off for p, off in zip(parts, offsets, strict=False)])
        return FileRecords(
            records,
            np.unique(shifted, return_inverse=True)[1].ravel().astype(np.int64),
            {
                k: np.concatenate([p.attrs.get(k, np.full(len(p), "", object)) for p in parts])
                for k in keys
            },
            dropped,
            Samples.concat(deferred) if deferred else None,
        )


def _count(key: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{key}: must be an integer >= {low}, got {value!r}")
    return int(value)


def _class_list(sources: list[Source], classes: Sequence[str] | None) -> tuple[str, ...]:
    """The classes asked for (through the alias table, in the order given), else those found."""
    present = set().union(*(set(s.names) for s in sources))
    if classes is None:
        return order_classes(present)
    if isinstance(classes, str) or not classes:
        raise ConfigError(f"classes: expected a non-empty list of class names, got {classes!r}")
    out: list[str] = []
    for name in classes:
        known = canonical_label(name) or (name if name in present else None)
        if known is None:
            raise ConfigError(f"classes: unknown class {name!r} (no alias and no file has it)")
        if known in out:
            alias = "" if known == name else f" ({name!r} is an alias of it)"
            raise ConfigError(f"classes: {known!r} is listed twice{alias}")
        out.append(known)
    return tuple(out)


def _known_mask(
    source: Source, class_names: tuple[str, ...], drop: bool, dropped: dict
) -> np.ndarray:
    """Records of the class list; other classes are an error, or dropped and counted."""
    keep = np.isin(source.names, np.asarray(class_names, dtype=object))
    if keep.all():
        return keep
    others, counts = np.unique(source.names[~keep], return_counts=True)
    listed = ", ".join(f"{c} ({n} records)" for c, n in zip(others, counts, strict=True))
    if not drop:
        raise DataError(
            source.path,
            f"records of classes not in the class list: {listed} (the list is "
            f"{', '.join(class_names)}; --drop-unknown leaves them out)",
        )
    log.warning("%s: dropped records of classes not in the class list: %s", source.path, listed)
    for name, n in zip(others, counts, strict=True):
        dropped[str(name)] = dropped.get(str(name), 0) + int(n)
    return keep


def _label_index(names: np.ndarray, class_names: tuple[str, ...]) -> np.ndarray:
    """Each record's index into ``class_names`` (every name must be in it)."""
    unique, inverse = np.unique(names, return_inverse=True)
    lookup = np.asarray([class_names.index(n) for n in unique], dtype=np.int64)
    return lookup[inverse.ravel()]


def _sample_rate(sources: list[Source]) -> float:
    """The one sample rate the files state (1.0: none says); two different ones are an error."""
    stated = [s for s in sources if s.sample_rate != 1.0]
    for source in stated[1:]:
        if source.sample_rate != stated[0].sample_rate:
            raise DataError(
                source.path,
                f"sample rate {source.sample_rate:g} Hz differs from {stated[0].sample_rate:g} "
                f"Hz of {stated[0].path}; load them separately",
            )
    return stated[0].sample_rate if stated else 1.0


def _build(
    sources: list[Source],
    chosen: list[np.ndarray],
    class_names: tuple[str, ...],
    advance: Callable[[int], None] | None,
    sample_rate: float,
    deferred: int | None = None,
) -> tuple[RecordSet, np.ndarray, dict[str, np.ndarray], Samples | None]:
    """Read the chosen records of every source and join them (groups numbered 0..G-1).

    ``deferred`` (the record length): read nothing yet, say where the samples are.
    """
    iq, labels, metas, groups, attrs, where = [], [], [], [], [], []
    offset = 0
    for source, rows in zip(sources, chosen, strict=True):
        block, samples = take_samples(source, rows, deferred)
        iq.append(block)
        where.append(samples)
        if advance is not None and source.lazy:
            advance(1)
        labels.append(_label_index(source.names[rows], class_names))
        metas.append({k: v[rows] for k, v in source.meta.items()})
        groups.append(source.groups[rows] + offset)
        offset += int(source.groups.max(initial=-1)) + 1
        attrs.append({k: v[rows] for k, v in source.attrs.items()})
    metas = [
        m if "snr_db" in m else {**m, "snr_db": np.full(len(m_iq), np.nan)}
        for m, m_iq in zip(metas, iq, strict=True)
    ]
    meta = union_meta(metas, [len(x) for x in iq])
    keys = sorted(set().union(*attrs))
    joined = {
        k: np.concatenate(
            [a.get(k, np.full(len(x), "", object)) for a, x in zip(attrs, iq, strict=True)]
        )
        for k in keys
    }
    info = {"format": "files", "sources": [str(s.path) for s in sources]}
    records = RecordSet(
        np.concatenate(iq).astype(np.complex64, copy=False),
        np.concatenate(labels),
        class_names,
        meta,
        sample_rate,
        info,
    )
    _, renumbered = np.unique(np.concatenate(groups), return_inverse=True)
    samples = Samples.concat(where) if deferred is not None else None
    return records, renumbered.ravel().astype(np.int64), joined, samples


def _open_all(
    paths: Sequence[str | Path],
    length: int,
    options: dict,
    advance: Callable[[int], None] | None,
) -> list[Source]:
    """Every path opened (a deferred source advances the bar when its samples are read)."""
    sources = []
    for path in paths:
        sources.append(open_source(Path(path), length, **options))
        if advance is not None and not sources[-1].lazy:
            advance(1)
    return sources


def load_files(
    paths: Sequence[str | Path],
    *,
    length: int,
    classes: Sequence[str] | None = None,
    drop_unknown: bool = False,
    snr_key: str = "",
    rml2018_order: str = "corrected",
    max_records: int = 0,
    max_per_class: int = 0,
    seed: int = 0,
    advance: Callable[[int], None] | None = None,
    deferred: bool = False,
) -> FileRecords:
    """Load data files (from :func:`expand_paths`) into one set of ``length``-sample records.

    Longer records are cut into whole windows (one group); SigMF annotations are windowed
    within the annotation; shorter records are refused. ``classes`` selects classes and sets
    their order (names go through the alias table; default: every class found, in
    KNOWN_CLASSES order); records of other classes, judged on the classes the records hold,
    are an error unless ``drop_unknown``. ``max_records`` (total) and ``max_per_class`` cap
    the set by a seeded choice of whole groups (0: no cap). ``snr_key`` names a SigMF field
    (or npz meta column) holding the SNR in dB. ``advance(1)`` is called once per file.
    ``deferred``: read no samples yet (see :class:`FileRecords`): a large RML2018 file is
    then read only while it is imaged, chunk by chunk.
    """
    caps = (_count("max_records", max_records, 0), _count("max_per_class", max_per_class, 0))
    seed = _count("seed", seed, 0)
    rml2018_names(rml2018_order)  # an unknown order fails before any file is read
    if not paths:
        raise ConfigError("paths: no data files given")
    options = {"skip_unknown": drop_unknown, "snr_key": snr_key, "rml2018_order": rml2018_order}
    sources = _open_all(paths, _count("length", length, 1), options, advance)
    rate = _sample_rate(sources)  # before any deferred read
    class_names = _class_list(sources, classes)
    dropped: dict[str, int] = {}
    for source in sources:
        for label, n in source.dropped.items():
            dropped[label] = dropped.get(label, 0) + n
    keep = [_known_mask(s, class_names, drop_unknown, dropped) for s in sources]
    if not any(k.any() for k in keep):
        where = Path(paths[0]) if len(paths) == 1 else None
        raise DataError(where, f"no record of the classes asked for ({', '.join(class_names)})")
    chosen = _cap(sources, keep, class_names, caps, seed)
    records, groups, attrs, samples = _build(
        sources, chosen, class_names, advance, rate, length if deferred else None
    )
    missing = [c for c, n in zip(class_names, records.counts(), strict=True) if n == 0]
    if missing:
        log.warning("no records of class(es) %s in these files", ", ".join(missing))
    return FileRecords(records, groups, attrs, dropped, samples)


def _cap(
    sources: list[Source],
    keep: list[np.ndarray],
    class_names: tuple[str, ...],
    caps: tuple[int, int],
    seed: int,
) -> list[np.ndarray]:
    """Per source, the record indices kept: whole groups, seeded, within the caps."""
    rows = [np.flatnonzero(k) for k in keep]
    if not any(caps):
        return rows
    labels = np.concatenate(
        [_label_index(s.names[r], class_names) for s, r in zip(sources, rows, strict=True)]
    )
    offsets = np.cumsum([0] + [int(s.groups.max(initial=-1)) + 1 for s in sources])
    groups = np.concatenate(
        [s.groups[r] + off for s, r, off in zip(sources, rows, offsets, strict=False)]
    )
    taken = cap_groups(labels, groups, caps[0], caps[1], seed)
    sizes = np.cumsum([0] + [len(r) for r in rows])
    return [
        r[taken[(taken >= a) & (taken < b)] - a]
        for r, a, b in zip(rows, sizes, sizes[1:], strict=False)
    ]
