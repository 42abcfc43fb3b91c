"""RadioML 2016 pickles and 2018 HDF5: exact samples, canonical labels, partial reads."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

import fedsb.io.radioml as radioml
from fedsb.errors import ConfigError
from fedsb.io.labels import RML2016_NAMES, RML2018_NAMES, canonical_label
from fedsb.io.radioml import read_rml2016, read_rml2018, read_rml2018_index
from fedsb.signals.classes import KNOWN_CLASSES, RML2016_CLASSES


def test_rml2016_samples_labels_and_snr_are_exact(rml2016_file) -> None:
    path = rml2016_file()
    with open(path, "rb") as handle:
        source = pickle.load(handle, encoding="latin1")
    records = read_rml2016(path)
    assert len(records) == 11 * 3 * 3 and records.length == 128
    assert records.iq.dtype == np.complex64
    assert records.class_names == RML2016_CLASSES
    assert records.meta["snr_db"].dtype == np.float64
    for (mod, snr), arr in source.items():
        mask = (records.label_names == canonical_label(mod)) & (records.snr_db == snr)
        assert np.array_equal(records.iq[mask], arr[:, 0] + 1j * arr[:, 1])
    assert records.info["format"] == "rml2016"


def test_rml2016b_without_am_ssb_has_ten_classes(rml2016_file) -> None:
    mods = tuple(m for m in RML2016_NAMES if m != "AM-SSB")
    records = read_rml2016(rml2016_file(mods=mods, name="RML2016.10b.dat"))
    assert records.class_names == tuple(c for c in RML2016_CLASSES if c != "am-ssb")


def test_rml2016_bytes_keys_from_python2_are_decoded(tmp_path: Path) -> None:
    path = tmp_path / "py2.pkl"
    arr = np.arange(2 * 2 * 8, dtype=np.float32).reshape(2, 2, 8)
    path.write_bytes(pickle.dumps({(b"QAM16", 10): arr}, protocol=2))
    records = read_rml2016(path)
    assert records.class_names == ("16qam",)
    assert np.array_equal(records.iq[1].imag, arr[1, 1])


def test_rml2016_skip_unknown_drops_unknown_mods(rml2016_file) -> None:
    records = read_rml2016(rml2016_file(mods=("BPSK", "MYSTERY")), skip_unknown=True)
    assert records.class_names == ("bpsk",) and len(records) == 9


def _rml2018_source(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as handle:
        return handle["X"][()], handle["Y"][()], handle["Z"][()]


def test_rml2018_uses_the_fixed_class_order(rml2018_file) -> None:
    path = rml2018_file()
    x, y, z = _rml2018_source(path)
    records = read_rml2018(path)
    assert records.class_names == tuple(c for c in KNOWN_CLASSES if c in set(records.class_names))
    assert len(records.class_names) == 24
    expected = [canonical_label(RML2018_NAMES[c]) for c in y.argmax(axis=1)]
    assert records.label_names.tolist() == expected
    assert records.label_names[17] == "am-ssb-wc" and records.label_names[21] == "wbfm"
    assert records.label_names[18] == "am-ssb" and records.label_names[19] == "am-dsb"
    assert np.array_equal(records.iq, x[..., 0] + 1j * x[..., 1])
    assert np.array_equal(records.snr_db, z[:, 0].astype(np.float64))


def test_rml2018_max_records_reads_the_first_ones(rml2018_file) -> None:
    path = rml2018_file()
    x, _, _ = _rml2018_source(path)
    records = read_rml2018(path, max_records=10)
    assert len(records) == 10 and len(records.class_names) == 24
    assert np.array_equal(records.iq, x[:10, :, 0] + 1j * x[:10, :, 1])


def test_rml2018_index_keeps_order_and_repeats(rml2018_file) -> None:
    path = rml2018_file()
    x, _, z = _rml2018_source(path)
    index = [40, 2, 2, 17]
    records = read_rml2018(path, index=index)
    assert np.array_equal(records.iq, x[index, :, 0] + 1j * x[index, :, 1])
    assert np.array_equal(records.snr_db, z[index, 0])
    assert records.label_names[3] == "am-ssb-wc"


@pytest.mark.parametrize(
    "selection",
    [{}, {"max_records": 30}, {"index": [47, 0, 9, 30, 31, 5]}, {"index": [0, 5, 9, 30, 31, 47]}],
)
def test_rml2018_chunked_read_matches_single_read(
    rml2018_file, monkeypatch: pytest.MonkeyPatch, same, selection: dict
) -> None:
    path = rml2018_file()
    whole = read_rml2018(path, **selection)
    monkeypatch.setattr(radioml, "CHUNK", 4)
    same(whole, read_rml2018(path, **selection))


def _one_hot_file(path: Path, cols: list[int], length: int = 8) -> Path:
    """A hand-made GOLD-style file: record i is hot in column cols[i], SNR 2 * i."""
    n = len(cols)
    y = np.zeros((n, 24), dtype=np.int64)
    y[np.arange(n), cols] = 1
    with h5py.File(path, "w") as handle:
        handle["X"] = np.arange(n * length * 2, dtype=np.float32).reshape(n, length, 2)
        handle["Y"] = y
        handle["Z"] = (2.0 * np.arange(n)).reshape(n, 1)
    return path


def test_rml2018_increasing_index_is_read_in_place_like_any_other(rml2018_file) -> None:
    path = rml2018_file()
    x, _, z = _rml2018_source(path)
    for index in ([3, 4, 40], [9], []):
        records = read_rml2018(path, index=np.asarray(index, dtype=np.int64))
        assert records.iq.shape == (len(index), x.shape[1])
        assert np.array_equal(records.iq, x[index, :, 0] + 1j * x[index, :, 1])
        assert np.array_equal(records.snr_db, z[index, 0])


def test_rml2018_order_names_the_one_hot_columns(tmp_path: Path) -> None:
    path = _one_hot_file(tmp_path / "gold.h5", [0, 3, 21, 22])
    corrected = read_rml2018(path)
    assert corrected.label_names.tolist() == ["ook", "bpsk", "wbfm", "gmsk"]
    published = read_rml2018(path, order="classes-txt")
    # classes.txt: 32PSK, 16APSK, 32QAM, FM, ... column 21 AM-DSB-WC, 22 OOK
    assert published.label_names.tolist() == ["32psk", "wbfm", "am-dsb", "ook"]
    assert published.class_names == corrected.class_names  # the same 24, KNOWN_CLASSES order
    assert published.info["order"] == "classes-txt"


def test_rml2018_unknown_order_is_a_config_error(tmp_path: Path) -> None:
    path = _one_hot_file(tmp_path / "gold.h5", [0])
    with pytest.raises(
        ConfigError,
        match=r"^rml2018_order: unknown order 'paper'; choose corrected or classes-txt$",
    ):
        read_rml2018(path, order="paper")


@pytest.mark.parametrize("order", ["corrected", "classes-txt"])
def test_rml2018_index_reads_labels_and_snr_like_the_full_read(
    rml2018_file, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    path = rml2018_file(n=30, length=16)
    monkeypatch.setattr(radioml, "CHUNK", 7)  # several chunks
    index = read_rml2018_index(path, order)
    whole = read_rml2018(path, order=order)
    assert index.length == 16 and index.class_names == whole.class_names
    np.testing.assert_array_equal(index.labels, whole.labels)
    np.testing.assert_array_equal(index.snr_db, whole.snr_db)


def test_rml2018_index_refuses_a_row_that_is_not_one_hot(tmp_path: Path, data_error) -> None:
    path = _one_hot_file(tmp_path / "gold.h5", [0, 1, 2])
    with h5py.File(path, "r+") as handle:
        handle["Y"][1, 5] = 1
    with data_error(path, "Y row 1 is not one-hot"):
        read_rml2018_index(path)


def test_rml2016_counts_the_records_it_drops(rml2016_file) -> None:
    records = read_rml2016(rml2016_file(mods=("BPSK", "MYSTERY")), skip_unknown=True)
    assert records.info["dropped"] == {"MYSTERY": 9}
    assert "dropped" not in read_rml2016(rml2016_file(mods=("BPSK",))).info
