"""SigMF: exact round trips, window cutting, datatypes, labels and directories."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
from sigmf import sigmffile
from sigmf.validate import validate

from fedsb.errors import DataError
from fedsb.io import read_sigmf, write_sigmf

L = 32


def _ramp(n: int) -> np.ndarray:
    """Samples whose value tells their index: easy to check which ones a window holds."""
    k = np.arange(n, dtype=np.float32)
    return (k + 1j * -k).astype(np.complex64)


def _ann(start: int, count: int | None, label: str, **extra) -> dict:
    ann = {"core:sample_start": start, "core:label": label, **extra}
    if count is not None:
        ann["core:sample_count"] = count
    return ann


# ------------------------------------------------------------------------------ round trips
def test_pair_round_trip_is_exact(tmp_path: Path, make_records, same) -> None:
    records = make_records(n=15, length=L)
    meta_path = write_sigmf(records, tmp_path / "rec.sigmf-meta")
    assert meta_path == tmp_path / "rec.sigmf-meta"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.sigmf-data", "rec.sigmf-meta"]
    back = read_sigmf(meta_path, L)
    same(records, back)
    assert back.info["written_with"] == records.info
    same(records, read_sigmf(tmp_path / "rec.sigmf-data", L))


def test_archive_round_trip_is_exact(tmp_path: Path, make_records, same) -> None:
    records = make_records(n=9, length=L, classes=("wbfm", "am-dsb"))
    path = write_sigmf(records, tmp_path / "rec.sigmf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.sigmf"]
    same(records, read_sigmf(path, L))


def test_written_metadata_is_valid_sigmf_with_declared_extension(
    tmp_path: Path, make_records
) -> None:
    records = make_records(n=6, length=L)
    meta = json.loads(write_sigmf(records, tmp_path / "r.sigmf-meta").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an undeclared extension would warn
        validate(meta)
    glob = meta["global"]
    assert glob["core:datatype"] == "cf32_le"
    assert {"name": "fedsb", "version": "1.0.0", "optional": True} in glob["core:extensions"]
    assert glob["fedsb:class_names"] == list(records.class_names)
    assert glob["core:sample_rate"] == records.sample_rate
    for i, ann in enumerate(meta["annotations"]):
        assert ann["core:sample_start"] == i * L and ann["core:sample_count"] == L
        assert ann["core:label"] == records.class_names[records.labels[i]]
        snr = records.meta["snr_db"][i]
        if np.isnan(snr):
            assert "fedsb:snr_db" not in ann and "core:comment" not in ann
        else:
            assert ann["fedsb:snr_db"] == snr and ann["core:comment"] == f"snr_db={float(snr)!r}"


def test_data_file_is_plain_cf32_le(tmp_path: Path, make_records) -> None:
    records = make_records(n=4, length=L)
    write_sigmf(records, tmp_path / "r.sigmf-meta")
    raw = np.fromfile(tmp_path / "r.sigmf-data", dtype="<c8")
    assert np.array_equal(raw, records.iq.ravel())


def test_failed_write_leaves_existing_pair_untouched(
    tmp_path: Path, make_records, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta_path = write_sigmf(make_records(seed=1, length=L), tmp_path / "r.sigmf-meta")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_dump(self, handle, pretty=True) -> None:
        handle.write("{ half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sigmffile.SigMFFile, "dump", broken_dump)
    with pytest.raises(DataError, match="No space left on device"):
        write_sigmf(make_records(seed=2, length=L), meta_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_failed_archive_write_leaves_existing_archive_untouched(
    tmp_path: Path, make_records, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_sigmf(make_records(seed=1, length=L), tmp_path / "r.sigmf")
    before = path.read_bytes()

    def broken_archive(self, name=None, fileobj=None, **kwargs) -> None:
        fileobj.write(b"partial tar")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(sigmffile.SigMFFile, "archive", broken_archive)
    with pytest.raises(DataError, match="Input/output error"):
        write_sigmf(make_records(seed=2, length=L), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.sigmf"]


def test_writing_an_empty_set_is_an_error(tmp_path: Path, make_records) -> None:
    empty = make_records(n=3).subset(slice(0, 0))
    with pytest.raises(DataError, match="empty"):
        write_sigmf(empty, tmp_path / "e.sigmf-meta")


# ------------------------------------------------------------------------------ windows
def test_windows_do_not_overlap_and_stop_at_span_end(write_raw_sigmf) -> None:
    data = _ramp(200)
    path = write_raw_sigmf(data, [_ann(10, 100, "bpsk"), _ann(120, 70, "qpsk")])
    records = read_sigmf(path, L)
    starts = [10, 42, 74, 120, 152]  # 100 -> 3 windows, 70 -> 2 windows
    assert np.array_equal(records.iq, np.stack([data[s : s + L] for s in starts]))
    assert records.label_names.tolist() == ["bpsk"] * 3 + ["qpsk"] * 2
    assert records.class_names == ("bpsk", "qpsk")


def test_hop_gives_overlapping_windows(write_raw_sigmf) -> None:
    data = _ramp(120)
    records = read_sigmf(write_raw_sigmf(data, [_ann(0, 100, "bpsk")]), L, hop=16)
    starts = range(0, 100 - L + 1, 16)  # 0, 16, 32, 48, 64
    assert np.array_equal(records.iq, np.stack([data[s : s + L] for s in starts]))


def test_missing_sample_count_runs_to_the_end_of_data(write_raw_sigmf) -> None:
    data = _ramp(100)
    records = read_sigmf(write_raw_sigmf(data, [_ann(30, None, "bpsk")]), L)
    assert np.array_equal(records.iq, np.stack([data[30:62], data[62:94]]))


def test_short_span_gives_no_window_and_is_logged(
    write_raw_sigmf, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_raw_sigmf(_ramp(100), [_ann(0, 10, "qpsk"), _ann(10, 40, "bpsk")])
    with caplog.at_level(logging.INFO, logger="fedsb.io.sigmf_read"):
        records = read_sigmf(path, L)
    assert len(records) == 1 and records.class_names == ("bpsk",)
    assert "shorter than 32 samples" in caplog.text


def test_annotations_without_label_are_ignored(write_raw_sigmf) -> None:
    ann = [
        {"core:sample_start": 0, "core:sample_count": 64, "core:comment": "a note"},
        _ann(0, 64, "bpsk"),
    ]
    assert len(read_sigmf(write_raw_sigmf(_ramp(64), ann), L)) == 2


# ------------------------------------------------------------------------------ labels and meta
def test_labels_are_canonicalised_and_ordered_like_known_classes(write_raw_sigmf) -> None:
    ann = [_ann(0, L, "QAM16"), _ann(L, L, "BPSK"), _ann(2 * L, L, "16-QAM")]
    records = read_sigmf(write_raw_sigmf(_ramp(3 * L), ann), L)
    assert records.class_names == ("bpsk", "16qam")
    assert records.labels.tolist() == [1, 0, 1]


def test_snr_comes_from_extension_then_comment_then_nan(write_raw_sigmf) -> None:
    ann = [
        _ann(0, L, "bpsk", **{"fedsb:snr_db": 4.5, "core:comment": "snr_db=99"}),
        _ann(L, L, "bpsk", **{"core:comment": "burst, SNR_dB = -3.25 dB"}),
        _ann(2 * L, L, "bpsk"),
    ]
    records = read_sigmf(write_raw_sigmf(_ramp(3 * L), ann), L)
    assert records.meta["snr_db"].dtype == np.float64
    assert np.array_equal(records.snr_db, [4.5, -3.25, np.nan], equal_nan=True)


def test_numeric_fedsb_fields_become_meta_and_missing_ones_nan(write_raw_sigmf) -> None:
    ann = [_ann(0, 2 * L, "bpsk", **{"fedsb:sps": 4}), _ann(2 * L, L, "bpsk")]
    records = read_sigmf(write_raw_sigmf(_ramp(3 * L), ann), L)
    assert np.array_equal(records.meta["sps"], [4, 4, np.nan], equal_nan=True)


def test_skip_unknown_drops_only_unknown_spans(write_raw_sigmf) -> None:
    path = write_raw_sigmf(_ramp(2 * L), [_ann(0, L, "mystery"), _ann(L, L, "qpsk")])
    records = read_sigmf(path, L, skip_unknown=True)
    assert records.class_names == ("qpsk",)
    assert np.array_equal(records.iq[0], _ramp(2 * L)[L:])


# ------------------------------------------------------------------------------ datatypes
@pytest.mark.parametrize(
    ("datatype", "raw", "expected"),
    [
        ("ci16_le", np.array([32767, -32768, 0, 16384], "<i2"), [1 - 2**-15 - 1j, 0.5j]),
        ("ci16_be", np.array([32767, -32768, 0, 16384], ">i2"), [1 - 2**-15 - 1j, 0.5j]),
        ("ci8", np.array([127, -128, 64, 0], "i1"), [127 / 128 - 1j, 0.5]),
        ("cu8", np.array([255, 0, 128, 192], "u1"), [127 / 128 - 1j, 0.5j]),
        ("ri16_le", np.array([32767, -16384], "<i2"), [1 - 2**-15, -0.5]),
        ("rf32_le", np.array([0.25, -2.0], "<f4"), [0.25, -2.0]),
        ("cf32_be", np.array([0.25, -2.0, 1.5, 3.0], ">f4"), [0.25 - 2j, 1.5 + 3j]),
        ("cf64_le", np.array([0.25, -2.0, 1.5, 3.0], "<f8"), [0.25 - 2j, 1.5 + 3j]),
        ("ci32_le", np.array([2**31 - 1, -(2**31), 0, 2**30], "<i4"), [1 - 1j, 0.5j]),
    ],
)
def test_datatypes_are_scaled_to_complex64(
    write_raw_sigmf, datatype: str, raw: np.ndarray, expected: list[complex]
) -> None:
    path = write_raw_sigmf(raw, [_ann(0, 2, "bpsk")], **{"core:datatype": datatype})
    records = read_sigmf(path, 2)
    assert records.iq.dtype == np.complex64
    np.testing.assert_allclose(records.iq[0], np.asarray(expected, np.complex128), atol=1e-6)


def test_ci16_full_scale_reads_as_one(write_raw_sigmf) -> None:
    raw = np.full(2 * L, 32767, "<i2")
    records = read_sigmf(
        write_raw_sigmf(raw, [_ann(0, L, "bpsk")], **{"core:datatype": "ci16_le"}), L
    )
    assert records.iq.dtype == np.complex64
    np.testing.assert_allclose(records.iq.real, 1.0, atol=1e-4)
    np.testing.assert_allclose(records.iq.imag, 1.0, atol=1e-4)


def test_real_data_gets_zero_imaginary_part(write_raw_sigmf) -> None:
    raw = np.linspace(-1, 1, L).astype("<f4")
    records = read_sigmf(
        write_raw_sigmf(raw, [_ann(0, L, "bpsk")], **{"core:datatype": "rf32_le"}), L
    )
    assert np.array_equal(records.iq[0].real, raw) and not records.iq.imag.any()


def test_multichannel_uses_channel_zero(write_raw_sigmf, caplog: pytest.LogCaptureFixture) -> None:
    ch0, ch1 = _ramp(L), _ramp(L) * 10 + 1
    interleaved = np.stack([ch0, ch1], axis=1).ravel()
    path = write_raw_sigmf(interleaved, [_ann(0, L, "bpsk")], **{"core:num_channels": 2})
    with caplog.at_level(logging.WARNING, logger="fedsb.io.sigmf_read"):
        records = read_sigmf(path, L)
    assert np.array_equal(records.iq[0], ch0)
    assert "2 channels; using channel 0" in caplog.text


# ------------------------------------------------------------------------------ directories
def test_directory_reads_every_recording_sorted_and_recursively(
    tmp_path: Path, write_raw_sigmf, make_records
) -> None:
    root = tmp_path / "captures"
    write_raw_sigmf(_ramp(L), [_ann(0, L, "QPSK")], name="b", directory=root / "sub")
    write_raw_sigmf(_ramp(2 * L) * 2, [_ann(0, 2 * L, "bpsk")], name="a", directory=root)
    write_raw_sigmf(_ramp(L), [_ann(0, L, "mystery")], name="hidden", directory=root / ".cache")
    write_sigmf(make_records(n=2, length=L, classes=("8psk",), sample_rate=1.0), root / "c.sigmf")
    records = read_sigmf(root, L)
    assert records.class_names == ("bpsk", "qpsk", "8psk")
    assert records.label_names.tolist() == ["bpsk", "bpsk", "8psk", "8psk", "qpsk"]
    assert np.array_equal(records.iq[4], _ramp(L))  # a, c.sigmf, sub/b in path order
    assert records.info["recordings"] == 3


def test_directory_with_shared_declared_classes_keeps_them(tmp_path: Path, make_records) -> None:
    classes = ("qpsk", "bpsk", "unused")
    write_sigmf(make_records(n=3, length=L, classes=classes, seed=1), tmp_path / "x.sigmf-meta")
    write_sigmf(make_records(n=4, length=L, classes=classes, seed=2), tmp_path / "y.sigmf-meta")
    records = read_sigmf(tmp_path, L)
    assert records.class_names == classes and len(records) == 7


def test_directory_meta_missing_in_one_recording_is_nan(tmp_path: Path, write_raw_sigmf) -> None:
    write_raw_sigmf(_ramp(L), [_ann(0, L, "bpsk", **{"fedsb:sps": 8})], name="a")
    write_raw_sigmf(_ramp(L), [_ann(0, L, "bpsk")], name="b")
    write_raw_sigmf(_ramp(L), [_ann(0, L, "bpsk", **{"fedsb:sps": 2.5})], name="c")
    records = read_sigmf(tmp_path, L)
    assert records.meta["sps"].dtype == np.float64
    assert np.array_equal(records.meta["sps"], [8, np.nan, 2.5], equal_nan=True)
