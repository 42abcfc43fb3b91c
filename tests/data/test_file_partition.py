"""Clients over loaded files: groups never divided, windows and skews, natural partitions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fedsb.data.config import PartitionConfig
from fedsb.data.file_partition import file_partition_rows, global_test, partition_files
from fedsb.data.files import FileRecords, load_files
from fedsb.data.groups import split_by_group
from fedsb.errors import ConfigError, DataError
from fedsb.signals.recordset import RecordSet

CLASSES = ("bpsk", "qpsk", "8psk", "16qam")


def _records(n_groups: int = 2000, per: int = 2, seed: int = 0, **attrs) -> FileRecords:
    """Groups of ``per`` records sharing class and SNR (-20..18 dB); every 25th has no SNR."""
    rng = np.random.default_rng(seed)
    label = np.repeat(rng.integers(0, len(CLASSES), n_groups), per)
    snr = rng.choice(np.arange(-20.0, 20.0, 2.0), n_groups)
    snr[::25] = np.nan
    n = n_groups * per
    records = RecordSet(
        np.zeros((n, 4), np.complex64), label, CLASSES, {"snr_db": np.repeat(snr, per)}
    )
    groups = np.repeat(np.arange(n_groups), per)
    extra = {k: np.asarray(v, dtype=object) for k, v in attrs.items()}
    return FileRecords(records, groups, {"file": np.full(n, "f.npz", dtype=object), **extra})


def _splits(records: FileRecords, seed: int = 0):
    r = records.records
    return split_by_group(r.labels, r.snr_db, records.groups, 0.2, 0.2, seed)


def _cfg(**kw) -> PartitionConfig:
    base = {"clients": 5, "val_per_class": 6, "test_per_class": 10, "min_records": 8}
    return PartitionConfig(**{**base, **kw})


def test_groups_never_cross_clients_and_records_go_to_one_client_at_most() -> None:
    records = _records()
    train, val, test = _splits(records)
    clients = partition_files(records, train, val, test, _cfg())
    for split, pool in (("train", train), ("val", val), ("test", test)):
        taken = np.concatenate([getattr(c, split) for c in clients])
        assert taken.size == np.unique(taken).size, split  # no record in two clients
        assert set(taken.tolist()) <= set(pool.tolist()), split  # only from its own split
    owner = {int(i): c.client for c in clients for s in (c.train, c.val, c.test) for i in s}
    for g in np.unique(records.groups[list(owner)]):
        members = np.flatnonzero(records.groups == g)
        assert len({owner.get(int(i)) for i in members}) == 1, g


def test_each_client_keeps_to_its_snr_window_and_records_without_snr_go_anywhere() -> None:
    records = _records()
    train, val, test = _splits(records)
    clients = partition_files(records, train, val, test, _cfg(snr_window_db=10.0))
    snr = records.records.snr_db
    starts = set()
    for c in clients:
        lo, hi = (float(x) for x in re.match(r"SNR (\S+)\.\.(\S+) dB", c.description).groups())
        assert hi - lo == pytest.approx(10.0)
        starts.add(lo)
        for split in (c.train, c.val, c.test):
            finite = snr[split][np.isfinite(snr[split])]
            assert ((finite >= lo) & (finite <= hi)).all()
    assert min(starts) == -20.0 and max(starts) == pytest.approx(8.0)  # windows span -20..18
    nan_owned = [np.isnan(snr[c.train]).sum() for c in clients]
    assert sum(n > 0 for n in nan_owned) >= 3


def test_val_and_test_are_class_balanced_per_client() -> None:
    records = _records(n_groups=4000, per=1)
    train, val, test = _splits(records)
    clients = partition_files(records, train, val, test, _cfg(snr_skew=False))
    for c in clients:
        labels = records.records.labels
        assert np.bincount(labels[c.val], minlength=4).tolist() == [6] * 4
        assert np.bincount(labels[c.test], minlength=4).tolist() == [10] * 4
    union = global_test(clients)
    assert union.tolist() == sorted(np.concatenate([c.test for c in clients]).tolist())


def test_dirichlet_alpha_skews_labels_and_zero_balances_them() -> None:
    records = _records(n_groups=4000, per=1)
    train, val, test = _splits(records)

    def top_share(alpha: float) -> float:
        cfg = _cfg(dirichlet_alpha=alpha, snr_skew=False)
        clients = partition_files(records, train, val, test, cfg)
        counts = [np.bincount(records.records.labels[c.train], minlength=4) for c in clients]
        return float(np.mean([c.max() / c.sum() for c in counts]))

    assert top_share(0.1) > 0.6
    assert top_share(0.0) == pytest.approx(0.25, abs=0.03)


def test_quantity_sigma_makes_sizes_differ() -> None:
    records = _records(n_groups=4000, per=1)
    train, val, test = _splits(records)
    equal = partition_files(records, train, val, test, _cfg(snr_skew=False, dirichlet_alpha=0))
    skew = partition_files(
        records, train, val, test, _cfg(snr_skew=False, dirichlet_alpha=0, quantity_sigma=1.5)
    )
    sizes = [c.train.size for c in equal]
    assert max(sizes) - min(sizes) <= 0.06 * np.mean(sizes)  # equal asks; class supply varies
    skewed = [c.train.size for c in skew]
    assert max(skewed) > 2 * min(skewed)


def test_the_partition_seed_decides_everything() -> None:
    records = _records()
    train, val, test = _splits(records)
    a = partition_files(records, train, val, test, _cfg(seed=3))
    b = partition_files(records, train, val, test, _cfg(seed=3))
    c = partition_files(records, train, val, test, _cfg(seed=4))
    assert [x.train.tolist() for x in a] == [x.train.tolist() for x in b]
    assert [x.description for x in a] == [x.description for x in b]
    assert [x.train.tolist() for x in a] != [x.train.tolist() for x in c]


def test_too_few_records_for_min_records_is_a_config_error() -> None:
    records = _records(n_groups=100)
    train, val, test = _splits(records)
    with pytest.raises(
        ConfigError, match=r"\Amin_records: client \d+ gets only \d+ training records"
    ):
        partition_files(records, train, val, test, _cfg(clients=5, min_records=200))


def _by_file(tmp_path: Path) -> tuple[FileRecords, tuple]:
    """Three SigMF recordings of two radios, each with 4 annotations (groups) per class."""
    paths = []
    for name, hw in (("a", "usrp"), ("b", "rtl"), ("c", "usrp")):
        path = tmp_path / name / f"{name}.sigmf-meta"
        path.parent.mkdir()
        path.with_suffix(".sigmf-data").write_bytes(np.zeros(256, np.complex64).tobytes())
        anns = [
            {"core:sample_start": 32 * i, "core:sample_count": 32, "core:label": lab}
            for i, lab in enumerate(["bpsk", "qpsk"] * 4)
        ]
        meta = {
            "global": {"core:datatype": "cf32_le", "core:version": "1.2.6", "core:hw": hw},
            "captures": [{"core:sample_start": 0}],
            "annotations": anns,
        }
        path.write_text(json.dumps(meta))
        paths.append(path)
    records = load_files(paths, length=8)  # 4 windows per annotation, 32 per file
    r, files = records.records, records.attrs["file"]
    splits = split_by_group(r.labels, r.snr_db, records.groups, 0.25, 0.25, 0, strata=files)
    return records, splits


def test_by_file_and_by_a_sigmf_key_give_one_client_per_value(tmp_path: Path) -> None:
    records, splits = _by_file(tmp_path)
    clients = partition_files(records, *splits, _cfg(), by="file")
    files = sorted(set(records.attrs["file"].tolist()))
    assert [c.description for c in clients] == [f"file={f}" for f in files]
    for c, f in zip(clients, files, strict=True):
        mine = np.flatnonzero(records.attrs["file"] == f)
        assert sorted(np.concatenate([c.train, c.val, c.test]).tolist()) == mine.tolist()
    radios = partition_files(records, *splits, _cfg(), by="core:hw")
    assert [c.description for c in radios] == ["core:hw=rtl", "core:hw=usrp"]
    assert [c.train.size + c.val.size + c.test.size for c in radios] == [32, 64]
    assert all(c.train.size == 16 and c.val.size == c.test.size == 8 for c in clients)
    dirs = partition_files(records, *splits, _cfg(), by="directory")
    assert len(dirs) == 3


def test_a_key_no_record_has_names_the_available_keys(tmp_path: Path) -> None:
    records, splits = _by_file(tmp_path)
    with pytest.raises(
        DataError,
        match=r"\Apartition key 'core:recorder': no record has it; available keys: "
        r".*core:hw.*directory, file",
    ):
        partition_files(records, *splits, _cfg(), by="core:recorder")


def test_records_without_a_value_are_refused() -> None:
    site = np.array(["north"] * 2000 + [""] * 2000, dtype=object)
    records = _records(site=site)
    train, val, test = _splits(records)
    with pytest.raises(DataError, match=r"\Af.npz: 2000 record\(s\) have no 'site' value"):
        partition_files(records, train, val, test, _cfg(), by="site")


def test_test_records_of_a_value_without_training_records_are_dealt_to_the_clients() -> None:
    """An independent test recording from a third receiver stays in the global test set."""
    site = np.array(["north"] * 2000 + ["south"] * 2000, dtype=object)
    records = _records(site=site)
    train, val, test = _splits(records)
    lab = np.isin(np.arange(4000), test) & (site == "south")
    records = _records(site=np.where(lab, "lab", site))
    clients = partition_files(records, train, val, test, _cfg(), by="site")
    assert [c.description for c in clients] == ["site=north", "site=south"]
    assert np.array_equal(np.sort(np.concatenate([c.test for c in clients])), np.sort(test))
    assert np.array_equal(np.sort(np.concatenate([c.val for c in clients])), np.sort(val))
    moved = [np.intersect1d(c.test, np.flatnonzero(lab)) for c in clients]
    assert all(len(m) > 0 for m in moved)  # dealt to both, not all to one
    assert not set(records.groups[moved[0]]) & set(records.groups[moved[1]])  # groups whole
    for c, name in zip(clients, ("north", "south"), strict=True):
        own = np.setdiff1d(c.test, np.flatnonzero(lab))
        assert set(site[own].tolist()) <= {name}  # the rest of its test split is its own


def test_a_key_that_varies_inside_a_group_is_refused() -> None:
    records = _records(n_groups=50, per=2, hw=np.tile(["x", "y"], 50))
    train, val, test = _splits(records)
    with pytest.raises(ConfigError, match=r"\Aby: 'hw' varies within a group"):
        partition_files(records, train, val, test, _cfg(), by="hw")


def test_rows_describe_each_client_for_a_dry_run() -> None:
    records = _records()
    train, val, test = _splits(records)
    clients = partition_files(records, train, val, test, _cfg())
    rows = file_partition_rows(clients, records)
    labels, snr = records.records.labels, records.records.snr_db
    for row, c in zip(rows, clients, strict=True):
        assert row["client"] == c.client and row["profile"] == c.description
        assert row["records"] == c.train.size and row["val"] == c.val.size
        assert row["counts"] == np.bincount(labels[c.train], minlength=4).tolist()
        assert row["snr_db"] == [np.nanmin(snr[c.train]), np.nanmax(snr[c.train])]
    json.dumps(rows)
