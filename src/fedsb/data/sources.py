"""One user data file opened for training: its labels, groups and attributes, samples on demand.

:func:`open_source` reads what choosing records needs (class names, SNR, groups, attributes)
and defers the samples to :attr:`Source.read`, so that an RML2018 file of 20 GB is read only
for the rows kept after class selection and caps. The other formats are read whole (they are
small, or need their samples to find their labels). Records longer than the model's length are
cut into whole windows that share their record's group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io.cache import load_npz
from ..io.labels import canonical_label
from ..io.load import check_records, source_format
from ..io.radioml import read_rml2016, read_rml2018, read_rml2018_index
from ..io.sigmf_read import read_sigmf_source
from ..signals.recordset import RecordSet

#: Meta columns (npz, or ``fedsb:*`` in SigMF) saying which records belong together; the
#: first present wins.
GROUP_COLUMNS = ("group", "burst")


@dataclass
class Source:
    """One file's records (after windowing), with the samples read on demand."""

    path: Path
    names: np.ndarray  # (n,) object: canonical class name per record
    groups: np.ndarray  # (n,) int64, local to this file
    attrs: dict[str, np.ndarray]  # (n,) object str per attribute
    meta: dict[str, np.ndarray]  # numeric columns; snr_db always
    sample_rate: float  # 1.0 where the file does not say
    read: Callable[[np.ndarray], np.ndarray]  # sorted record indices -> (m, length) complex64
    lazy: bool = False  # samples not in memory yet (read costs the file's I/O)
    record_length: int = 0  # samples per record as the file holds them, before windowing
    dropped: dict[str, int] = field(default_factory=dict)  # by the reader, by label

    def __len__(self) -> int:
        return int(self.names.shape[0])


def windows(records: RecordSet, length: int, path: Path) -> RecordSet:
    """Records of exactly ``length`` samples: longer ones cut into whole windows.

    Shorter ones are refused.
    """
    have = records.length
    if have == length:
        return records
    if have < length:
        raise DataError(path, f"records are {have} samples long, shorter than the model's {length}")
    k = have // length
    n = len(records)
    iq = records.iq[:, : k * length].reshape(n * k, length)
    meta = {key: np.repeat(v, k) for key, v in records.meta.items()}
    return RecordSet(
        np.ascontiguousarray(iq),
        np.repeat(records.labels, k),
        records.class_names,
        meta,
        records.sample_rate,
        {**records.info, "windowed": f"{have} -> {k} x {length}"},
    )


def canonical_names(class_names: tuple[str, ...]) -> np.ndarray:
    """Each class name through the alias table (names it does not know are kept as written)."""
    return np.asarray([canonical_label(n) or n for n in class_names], dtype=object)


def model_rows(source: Source, names: tuple[str, ...], drop: bool) -> tuple[np.ndarray, np.ndarray]:
    """(rows of ``source`` a model of classes ``names`` can score, their labels in ``names``).

    Judged on the classes the records hold, not the list a file declares: an RML2018 file
    declares all 24, and one whose records are all of the model's classes is fine. Other
    classes are an error naming them, or dropped (``drop``).
    """
    target = {name: i for i, name in enumerate(names)}
    labels = np.fromiter((target.get(n, -1) for n in source.names), np.int64, len(source))
    unknown = sorted(set(source.names[labels < 0]))
    if unknown and not drop:
        raise DataError(
            source.path,
            f"classes the model was not trained on: {', '.join(unknown)} "
            f"(it knows {', '.join(names)}; --drop-unknown leaves them out)",
        )
    rows = np.flatnonzero(labels >= 0)
    return rows, labels[rows]


def meta_groups(meta: dict[str, np.ndarray], base: np.ndarray) -> np.ndarray:
    """Groups from a ``group`` (or ``burst``) meta column, else ``base``.

    Records with the same value share a group; a record whose value is NaN keeps its
    ``base`` group (its own record for npz, its annotation for SigMF).
    """
    key = next((k for k in GROUP_COLUMNS if k in meta), None)
    base = np.asarray(base, dtype=np.int64)
    if key is None:
        return base
    values = meta[key]
    lone = np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, bool)
    groups = np.empty(values.shape, np.int64)
    _, inverse = np.unique(values[~lone], return_inverse=True)
    groups[~lone] = inverse.ravel()
    if lone.any():
        _, rest = np.unique(base[lone], return_inverse=True)
        groups[lone] = int(groups[~lone].max(initial=-1)) + 1 + rest.ravel()
    return groups


def _file_attrs(path: Path, n: int) -> dict[str, np.ndarray]:
    return {"file": np.full(n, str(path), dtype=object)}


def _in_memory(
    path: Path, records: RecordSet, groups: np.ndarray, attrs: dict, length: int
) -> Source:
    """A Source over records already read: windowed, groups and attributes repeated."""
    check_records(records, path)
    cut = windows(records, length, path)
    k = records.length // length
    iq = cut.iq
    return Source(
        path=path,
        names=canonical_names(cut.class_names)[cut.labels],
        groups=np.repeat(groups, k),
        attrs={key: np.repeat(v, k) for key, v in attrs.items()},
        meta=dict(cut.meta),
        sample_rate=float(cut.sample_rate),
        read=lambda index: iq[index],
        dropped=dict(records.info.get("dropped", {})),
        record_length=records.length,
    )


def _npz(path: Path, length: int, snr_key: str) -> Source:
    records = load_npz(path)
    meta = dict(records.meta)
    if snr_key and snr_key in meta:
        if meta[snr_key].dtype.kind not in "iuf":
            raise DataError(path, f"meta {snr_key!r} is {meta[snr_key].dtype}, not SNR in dB")
        meta["snr_db"] = meta[snr_key].astype(np.float64)
    records = RecordSet(
        records.iq, records.labels, records.class_names, meta, records.sample_rate, records.info
    )
    groups = meta_groups(meta, np.arange(len(records)))
    return _in_memory(path, records, groups, _file_attrs(path, len(records)), length)


def _rml2018(path: Path, length: int, order: str) -> Source:
    """Labels now, samples (only the rows asked for) when read."""
    index = read_rml2018_index(path, order)
    have = index.length
    if have < length:
        raise DataError(path, f"records are {have} samples long, shorter than the model's {length}")
    k, n = have // length, index.labels.size
    if n == 0:
        raise DataError(path, "no records (empty recording or selection)")

    def read(wanted: np.ndarray) -> np.ndarray:
        if not len(wanted):
            return np.zeros((0, length), dtype=np.complex64)
        rows, offsets = np.divmod(np.asarray(wanted, np.int64), k)
        if k == 1 and have == length and bool(np.all(rows[1:] > rows[:-1])):
            return check_records(read_rml2018(path, index=rows, order=order), path).iq
        unique, inverse = np.unique(rows, return_inverse=True)
        records = check_records(read_rml2018(path, index=unique, order=order), path)
        block = records.iq[inverse.ravel(), : k * length].reshape(-1, k, length)
        return np.ascontiguousarray(block[np.arange(len(rows)), offsets])

    names = canonical_names(index.class_names)[index.labels]
    return Source(
        path=path,
        names=np.repeat(names, k),
        groups=np.repeat(np.arange(n, dtype=np.int64), k),
        attrs={key: np.repeat(v, k) for key, v in _file_attrs(path, n).items()},
        meta={"snr_db": np.repeat(index.snr_db, k)},
        sample_rate=1.0,
        read=read,
        lazy=True,
        record_length=have,
    )


def open_source(
    path: Path, length: int, *, skip_unknown: bool, snr_key: str, rml2018_order: str
) -> Source:
    """The Source of one path from :func:`.files.expand_paths` (a file or a SigMF directory)."""
    fmt = source_format(path)
    if fmt == "rml2018":
        source = _rml2018(path, length, rml2018_order)
    elif fmt == "npz":
        source = _npz(path, length, snr_key)
    elif fmt == "rml2016":
        records = read_rml2016(path, skip_unknown=skip_unknown)
        source = _in_memory(
            path, records, np.arange(len(records)), _file_attrs(path, len(records)), length
        )
    else:
        sig = read_sigmf_source(path, length, skip_unknown=skip_unknown, snr_key=snr_key)
        groups = meta_groups(dict(sig.records.meta), sig.groups)
        source = _in_memory(path, sig.records, groups, sig.attrs, length)
        source.dropped = dict(sig.dropped)
    parents = {f: str(Path(f).parent) for f in set(source.attrs["file"])}
    source.attrs["directory"] = np.asarray([parents[f] for f in source.attrs["file"]], object)
    return source
