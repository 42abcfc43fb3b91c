"""The .npz cache: exact round trip and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fedsb.io.cache as cache
from fedsb.errors import DataError
from fedsb.io.cache import load_npz, save_npz
from fedsb.signals.recordset import RecordSet


def test_round_trip_is_exact(tmp_path: Path, make_records, same) -> None:
    records = make_records(n=20, length=16)
    path = save_npz(records, tmp_path / "set.npz")
    back = load_npz(path)
    same(records, back)
    assert back.info == records.info
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.npz"]


def test_round_trip_keeps_unused_classes_and_odd_names(tmp_path: Path, same) -> None:
    records = RecordSet(
        np.ones((2, 4), np.complex64),
        np.array([0, 0]),
        ("a b", "ünïcode"),
        {"snr_db": np.array([1.5, np.nan])},
        2.5,
        {"nested": {"x": [1, 2]}},
    )
    back = load_npz(save_npz(records, tmp_path / "odd.npz"))
    same(records, back)
    assert back.info == {"nested": {"x": [1, 2]}}


def test_overwrite_replaces_the_old_file(tmp_path: Path, make_records, same) -> None:
    path = tmp_path / "set.npz"
    save_npz(make_records(seed=1), path)
    second = make_records(seed=2)
    save_npz(second, path)
    same(second, load_npz(path))


def test_failed_write_leaves_existing_file_untouched(
    tmp_path: Path, make_records, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "set.npz"
    save_npz(make_records(seed=1), path)
    before = path.read_bytes()

    def broken_savez(handle, **arrays) -> None:
        handle.write(b"PK partial garbage")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.np, "savez", broken_savez)
    with pytest.raises(DataError, match="No space left on device"):
        save_npz(make_records(seed=2), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.npz"]


def test_unserialisable_info_is_a_data_error(tmp_path: Path) -> None:
    records = RecordSet(
        np.ones((1, 2), np.complex64), np.array([0]), ("a",), {}, 1.0, {"bad": object()}
    )
    with pytest.raises(DataError, match="info is not JSON-serialisable"):
        save_npz(records, tmp_path / "x.npz")
    assert not list(tmp_path.iterdir())


def test_cache_layout_is_plain_arrays(tmp_path: Path, make_records) -> None:
    """No pickles inside: the cache loads with allow_pickle=False and info is a JSON string."""
    records = make_records()
    with np.load(save_npz(records, tmp_path / "set.npz"), allow_pickle=False) as npz:
        assert {"iq", "labels", "class_names", "sample_rate", "info", "meta__snr_db"} <= set(npz)
        assert json.loads(str(npz["info"])) == {"seed": 0}
