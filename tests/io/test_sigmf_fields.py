"""SigMF fields beyond the label: description fallback, SNR sources, attributes, groups."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from fedsb.io import read_sigmf
from fedsb.io.sigmf_read import read_sigmf_source

L = 16


def _ramp(n: int) -> np.ndarray:
    k = np.arange(n, dtype=np.float32)
    return (k + 1j * -k).astype(np.complex64)


def _write(
    directory: Path,
    samples: int,
    annotations: list[dict],
    captures: list[dict] | None = None,
    name: str = "rec",
    **glob: object,
) -> Path:
    """A hand-made cf32 recording whose sample k is k - jk (windows tell where they came from)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.sigmf-data").write_bytes(_ramp(samples).tobytes())
    meta = {
        "global": {"core:datatype": "cf32_le", "core:version": "1.2.6", **glob},
        "captures": captures if captures is not None else [{"core:sample_start": 0}],
        "annotations": annotations,
    }
    path = directory / f"{name}.sigmf-meta"
    path.write_text(json.dumps(meta))
    return path


def _ann(start: int, count: int, **fields: object) -> dict:
    return {"core:sample_start": start, "core:sample_count": count, **fields}


def test_annotation_description_stands_in_for_a_missing_label(tmp_path, caplog) -> None:
    anns = [
        _ann(0, 2 * L, **{"core:description": "QPSK"}),
        _ann(2 * L, L, **{"core:label": "bpsk"}),
        _ann(3 * L, L, **{"core:description": "16QAM"}),
    ]
    path = _write(tmp_path, 4 * L, anns)
    with caplog.at_level(logging.WARNING, logger="fedsb.io.sigmf_spans"):
        records = read_sigmf(path, L)
    assert records.label_names.tolist() == ["qpsk", "qpsk", "bpsk", "16qam"]
    notices = [r for r in caplog.records if "core:description" in r.getMessage()]
    assert len(notices) == 1  # one notice per file, not per annotation
    assert "2 annotation(s) without core:label" in notices[0].getMessage()


def test_global_description_labels_the_whole_recording_per_capture_segment(
    tmp_path, caplog
) -> None:
    captures = [
        {"core:sample_start": 0, "capture_details:SNRdB": 3.0},
        {"core:sample_start": 3 * L, "capture_details:SNRdB": 9.5, "core:frequency": 2.4e9},
    ]
    notes = [_ann(L, 4, **{"core:comment": "a note, not a class span"})]
    path = _write(tmp_path, 5 * L, notes, captures, **{"core:description": "GMSK"})
    with caplog.at_level(logging.WARNING, logger="fedsb.io.sigmf_spans"):
        source = read_sigmf_source(path, L)
    records = source.records
    assert records.label_names.tolist() == ["gmsk"] * 5
    np.testing.assert_array_equal(records.iq[:, 0], _ramp(5 * L)[::L])
    np.testing.assert_array_equal(records.snr_db, [3.0, 3.0, 3.0, 9.5, 9.5])
    np.testing.assert_array_equal(source.groups, [0, 0, 0, 1, 1])  # one group per segment
    assert source.attrs["core:frequency"].tolist() == ["", "", "", "2400000000.0", "2400000000.0"]
    assert sum("using core:description 'GMSK'" in r.getMessage() for r in caplog.records) == 1


def test_a_global_description_that_names_no_class_labels_nothing(tmp_path, data_error) -> None:
    path = _write(tmp_path, 2 * L, [], **{"core:description": "lab capture, roof antenna"})
    with data_error(
        path,
        "no annotations with core:label, and core:description 'lab capture, roof antenna' "
        "names no class: nothing says what it holds",
    ):
        read_sigmf(path, L)
    labelled = _write(tmp_path, 2 * L, [_ann(0, L, **{"core:label": "bpsk"})], name="ok")
    source = read_sigmf_source(tmp_path, L, skip_unknown=True)  # the unlabelled one drops out
    assert source.records.label_names.tolist() == ["bpsk"]
    assert source.attrs["file"].tolist() == [str(labelled)]
    assert source.dropped == {"lab capture, roof antenna": 2}


def test_no_label_and_no_description_is_still_refused(tmp_path, data_error) -> None:
    path = _write(tmp_path, 2 * L, [_ann(0, L, **{"core:comment": "x"})])
    with data_error(path, "no annotations with core:label \\(and no core:description\\)"):
        read_sigmf(path, L)


def test_snr_comes_from_the_most_specific_place(tmp_path) -> None:
    captures = [
        {"core:sample_start": 0, "capture_details:SNRdB": 1.0},
        {"core:sample_start": 4 * L, "capture_details:SNRdB": 2.0},
    ]
    anns = [
        _ann(0, L, **{"core:label": "bpsk", "capture_details:SNRdB": 11.0}),
        _ann(L, L, **{"core:label": "bpsk", "core:comment": "snr_db=12.5"}),
        _ann(2 * L, L, **{"core:label": "bpsk"}),  # capture 0's SNR
        _ann(4 * L, L, **{"core:label": "bpsk"}),  # capture 1's SNR
        _ann(5 * L, L, **{"core:label": "bpsk", "fedsb:snr_db": 7.0, "capture_details:SNRdB": 1}),
    ]
    records = read_sigmf(_write(tmp_path, 6 * L, anns, captures), L)
    np.testing.assert_array_equal(records.snr_db, [11.0, 12.5, 1.0, 2.0, 7.0])


def test_records_without_any_snr_keep_nan(tmp_path) -> None:
    anns = [_ann(0, L, **{"core:label": "bpsk"}), _ann(L, L, **{"core:label": "qpsk"})]
    records = read_sigmf(_write(tmp_path, 2 * L, anns), L)
    assert np.isnan(records.snr_db).all() and len(records) == 2


def test_a_chosen_snr_key_wins_and_may_sit_on_the_capture(tmp_path, caplog) -> None:
    captures = [{"core:sample_start": 0, "my:snr": -4}]
    anns = [
        _ann(0, L, **{"core:label": "bpsk", "my:snr": "6.5", "capture_details:SNRdB": 30}),
        _ann(L, L, **{"core:label": "bpsk", "capture_details:SNRdB": 30}),
    ]
    path = _write(tmp_path, 2 * L, anns, captures)
    assert read_sigmf_source(path, L, snr_key="my:snr").records.snr_db.tolist() == [6.5, -4.0]
    assert read_sigmf_source(path, L).records.snr_db.tolist() == [30.0, 30.0]
    with caplog.at_level(logging.WARNING):
        read_sigmf_source(path, L, snr_key="my:snr_db")
    assert "no annotation or capture segment has the SNR field 'my:snr_db'" in caplog.text


def test_a_chosen_snr_key_that_is_not_a_number_is_an_error(tmp_path, data_error) -> None:
    anns = [
        _ann(0, L, **{"core:label": "bpsk"}),
        _ann(L, L, **{"core:label": "bpsk", "x:snr": "hi"}),
    ]
    path = _write(tmp_path, 2 * L, anns)
    with data_error(path, "span at sample 16: x:snr is 'hi', not a number"):
        read_sigmf_source(path, L, snr_key="x:snr")


def test_attributes_groups_and_drop_counts_across_recordings(tmp_path) -> None:
    first = _write(
        tmp_path / "d",
        4 * L,
        [
            _ann(0, 3 * L, **{"core:label": "bpsk", "core:comment": "burst A"}),
            _ann(3 * L, L, **{"core:label": "Mystery-9"}),
        ],
        [{"core:sample_start": 0, "core:frequency": 915e6}],
        name="a",
        **{"core:hw": "usrp-b210", "core:author": "ann", "core:extensions": []},
    )
    _write(
        tmp_path / "d",
        2 * L,
        [_ann(0, 2 * L, **{"core:label": "qpsk", "core:hw": "annotation wins"})],
        name="b",
        **{"core:hw": "rtl-sdr"},
    )
    source = read_sigmf_source(tmp_path / "d", L, skip_unknown=True)
    assert source.records.label_names.tolist() == ["bpsk"] * 3 + ["qpsk"] * 2
    np.testing.assert_array_equal(source.groups, [0, 0, 0, 1, 1])
    assert source.attrs["core:hw"].tolist() == ["usrp-b210"] * 3 + ["annotation wins"] * 2
    assert source.attrs["core:author"].tolist() == ["ann"] * 3 + [""] * 2
    assert source.attrs["core:comment"].tolist() == ["burst A"] * 3 + [""] * 2
    assert source.attrs["core:frequency"].tolist()[:3] == ["915000000.0"] * 3
    assert (
        source.attrs["file"].tolist()
        == [str(first)] * 3 + [str(tmp_path / "d" / "b.sigmf-meta")] * 2
    )
    assert "core:extensions" not in source.attrs  # a list is no scalar
    assert source.dropped == {"Mystery-9": 1}


def test_read_sigmf_is_unchanged_by_the_new_fields(tmp_path, make_records, same) -> None:
    from fedsb.io import write_sigmf

    records = make_records(n=7, length=L)
    path = write_sigmf(records, tmp_path / "r.sigmf-meta")
    same(records, read_sigmf(path, L))
    source = read_sigmf_source(path, L)
    same(records, source.records)
    np.testing.assert_array_equal(source.groups, np.arange(7))


@pytest.mark.parametrize("length", [L, 2 * L])
def test_windows_of_one_annotation_share_a_group(tmp_path, length) -> None:
    anns = [_ann(0, 4 * L, **{"core:label": "bpsk"}), _ann(4 * L, 4 * L, **{"core:label": "qpsk"})]
    source = read_sigmf_source(_write(tmp_path, 8 * L, anns), length)
    per = 4 * L // length
    np.testing.assert_array_equal(source.groups, np.repeat([0, 1], per))
