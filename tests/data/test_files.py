"""The user's own files: path expansion, loading into one set, groups, classes, caps, windows."""

from __future__ import annotations

import json
import logging
import pickle
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from fedsb.data.files import FileRecords, expand_paths, load_files
from fedsb.data.sources import model_rows, open_source
from fedsb.errors import ConfigError, DataError
from fedsb.io.labels import RML2018_CLASSES_TXT, RML2018_NAMES
from fedsb.io.load import save_records
from fedsb.io.radioml import read_rml2018
from fedsb.signals.recordset import RecordSet


def _traced(n: int, length: int, classes: tuple[str, ...], labels=None, **meta) -> RecordSet:
    """Record i, sample t holds i + 1j * t: every window says where it was cut from."""
    iq = (np.arange(n)[:, None] + 1j * np.arange(length)[None, :]).astype(np.complex64)
    labels = np.arange(n) % len(classes) if labels is None else np.asarray(labels)
    meta = {k: np.asarray(v) for k, v in meta.items()}
    return RecordSet(iq, labels.astype(np.int64), classes, meta, 1e6)


def _npz(path: Path, records: RecordSet) -> Path:
    save_records(records, path)
    return path


def _sigmf(path: Path, samples: int, annotations: list[dict], **glob) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    iq = (np.arange(samples) * (1 + 1j)).astype(np.complex64)
    path.with_suffix(".sigmf-data").write_bytes(iq.tobytes())
    meta = {
        "global": {"core:datatype": "cf32_le", "core:version": "1.2.6", **glob},
        "captures": [{"core:sample_start": 0}],
        "annotations": annotations,
    }
    path.write_text(json.dumps(meta))
    return path


def _ann(start: int, count: int, label: str, **extra) -> dict:
    return {"core:sample_start": start, "core:sample_count": count, "core:label": label, **extra}


def _gold(path: Path, cols: list[int], length: int = 32) -> Path:
    """A GOLD-style RML2018 file: record i hot in column cols[i], X = i, SNR = 2 i - 20."""
    n = len(cols)
    y = np.zeros((n, 24), dtype=np.int64)
    y[np.arange(n), cols] = 1
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None, None], length, axis=1)
    with h5py.File(path, "w") as handle:
        handle["X"] = np.concatenate([x, x], axis=2)
        handle["Y"] = y
        handle["Z"] = (2.0 * np.arange(n) - 20).reshape(n, 1)
    return path


def _rml2016(path: Path, mods: tuple[str, ...], n: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    data = {(m, 0): rng.standard_normal((n, 2, 128)).astype(np.float32) for m in mods}
    path.write_bytes(pickle.dumps(data, protocol=2))
    return path


def _error(path: Path | str | None, problem: str):
    start = "" if path is None else re.escape(str(path)) + ": "
    return pytest.raises(DataError, match=r"\A" + start + problem + r"\Z")


# ------------------------------------------------------------------------------ expand_paths
def test_files_globs_and_directories_expand_in_order_each_once(tmp_path: Path) -> None:
    rec = _traced(4, 8, ("bpsk",))
    for name in ("b.npz", "a.npz", "c.npz"):
        _npz(tmp_path / "npz" / name, rec)
    (tmp_path / "npz" / "README.txt").write_text("notes")
    found = expand_paths(["npz/c.npz", "npz/*.npz", "npz", "./npz/a.npz"], base=tmp_path)
    assert found == [tmp_path / "npz" / n for n in ("c.npz", "a.npz", "b.npz")]


def test_a_directory_of_sigmf_recordings_is_one_source(tmp_path: Path) -> None:
    for name in ("x", "y"):
        _sigmf(tmp_path / "caps" / "sub" / f"{name}.sigmf-meta", 16, [_ann(0, 16, "bpsk")])
    assert expand_paths([tmp_path / "caps"]) == [tmp_path / "caps"]
    # a glob over the same files names each recording once (its .sigmf-data folds into it)
    found = expand_paths(["caps/sub/*"], base=tmp_path)
    assert found == [tmp_path / "caps" / "sub" / f"{n}.sigmf-meta" for n in ("x", "y")]


def test_a_mixed_directory_gives_each_supported_file(tmp_path: Path) -> None:
    _sigmf(tmp_path / "m" / "r.sigmf-meta", 16, [_ann(0, 16, "bpsk")])
    _npz(tmp_path / "m" / "s.npz", _traced(2, 8, ("bpsk",)))
    _gold(tmp_path / "m" / "g.h5", [0])
    (tmp_path / "m" / ".hidden.npz").write_bytes(b"")
    (tmp_path / "m" / "classes.txt").write_text("x")
    assert expand_paths([tmp_path / "m"]) == [
        tmp_path / "m" / n for n in ("g.h5", "r.sigmf-meta", "s.npz")
    ]


def test_specs_that_match_nothing_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with _error(tmp_path / "*.npz", "matches no file"):
        expand_paths(["*.npz"], base=tmp_path)
    with _error(tmp_path / "gone.npz", r"matches no file \(no such file or directory\)"):
        expand_paths(["gone.npz"], base=tmp_path)
    with _error(tmp_path / "empty", "matches no file: no data file .* in this directory"):
        expand_paths([tmp_path / "empty"])
    with _error(tmp_path / "*.txt", r"matches no data file \(1 matches, none of type .*\)"):
        expand_paths(["*.txt"], base=tmp_path)
    with _error(tmp_path / "notes.txt", "unknown file type; expected one of .*"):
        expand_paths([tmp_path / "notes.txt"])


# ------------------------------------------------------------------------------ load_files
def test_formats_join_into_one_class_list_with_file_attributes(tmp_path: Path) -> None:
    a = _npz(tmp_path / "one" / "a.npz", _traced(4, 128, ("QAM16", "bpsk")))
    b = _rml2016(tmp_path / "two" / "b.pkl", ("BPSK", "8PSK"))
    c = _sigmf(tmp_path / "two" / "c.sigmf-meta", 256, [_ann(0, 256, "gfsk")])
    steps = []
    loaded = load_files([a, b, c], length=128, advance=steps.append)
    r = loaded.records
    assert steps == [1, 1, 1]
    assert r.class_names == ("bpsk", "8psk", "16qam", "gfsk")  # KNOWN_CLASSES order
    assert (
        r.label_names.tolist() == ["16qam", "bpsk"] * 2 + ["8psk"] * 2 + ["bpsk"] * 2 + ["gfsk"] * 2
    )
    assert loaded.attrs["file"].tolist() == [str(a)] * 4 + [str(b)] * 4 + [str(c)] * 2
    assert loaded.attrs["directory"].tolist() == [str(a.parent)] * 4 + [str(b.parent)] * 6
    assert loaded.attrs["core:label"].tolist() == [""] * 8 + ["gfsk"] * 2
    np.testing.assert_array_equal(loaded.groups, [0, 1, 2, 3, 4, 5, 6, 7, 8, 8])
    assert r.meta["snr_db"][4:8].tolist() == [0.0] * 4 and np.isnan(r.meta["snr_db"][:4]).all()
    assert r.sample_rate == 1e6


def test_long_records_are_cut_into_windows_of_one_group(tmp_path: Path) -> None:
    snr = np.array([1.0, 2.0, np.nan])
    path = _npz(tmp_path / "long.npz", _traced(3, 100, ("bpsk",), snr_db=snr))
    loaded = load_files([path], length=32)  # 3 whole windows each, 4 samples left over
    iq = loaded.records.iq
    assert iq.shape == (9, 32)
    np.testing.assert_array_equal(iq.real[:, 0], np.repeat([0, 1, 2], 3))
    np.testing.assert_array_equal(iq.imag[:, 0], np.tile([0, 32, 64], 3))
    np.testing.assert_array_equal(loaded.groups, np.repeat([0, 1, 2], 3))
    np.testing.assert_array_equal(loaded.records.snr_db, np.repeat(snr, 3))


def test_short_records_are_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "short.npz", _traced(2, 128, ("bpsk",)))
    with _error(path, "records are 128 samples long, shorter than the model's 1024"):
        load_files([path], length=1024)
    gold = _gold(tmp_path / "g.h5", [3, 4], length=128)
    with _error(gold, "records are 128 samples long, shorter than the model's 1024"):
        load_files([gold], length=1024)


def test_sigmf_windows_stay_inside_their_annotation_and_group(tmp_path: Path) -> None:
    anns = [_ann(0, 40, "bpsk"), _ann(40, 20, "qpsk"), _ann(60, 5, "bpsk")]
    path = _sigmf(tmp_path / "r.sigmf-meta", 70, anns, **{"core:hw": "usrp"})
    loaded = load_files([path], length=16)
    np.testing.assert_array_equal(loaded.records.iq.real[:, 0], [0, 16, 40])
    np.testing.assert_array_equal(loaded.groups, [0, 0, 1])
    assert loaded.attrs["core:hw"].tolist() == ["usrp"] * 3


def test_npz_group_or_burst_columns_keep_records_together(tmp_path: Path) -> None:
    burst = _traced(6, 8, ("bpsk",), burst=[7, 7, 3, 3, 3, 9])
    grouped = _traced(4, 8, ("bpsk",), group=[0.0, np.nan, 0.0, np.nan], burst=[1, 1, 1, 1])
    loaded = load_files(
        [_npz(tmp_path / "a.npz", burst), _npz(tmp_path / "b.npz", grouped)], length=8
    )
    # "group" wins over "burst"; NaN: a record alone; files never share a group
    np.testing.assert_array_equal(loaded.groups, [1, 1, 0, 0, 0, 2, 3, 4, 3, 5])


def test_classes_select_order_and_alias_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "a.npz", _traced(6, 8, ("bpsk", "QAM16", "8psk")))
    loaded = load_files([path], length=8, classes=("16QAM", "bpsk", "8psk"))
    assert loaded.records.class_names == ("16qam", "bpsk", "8psk")
    assert loaded.records.label_names.tolist() == ["bpsk", "16qam", "8psk"] * 2
    with _error(
        path,
        r"records of classes not in the class list: 8psk \(2 records\) \(the list is 16qam, "
        r"bpsk; --drop-unknown leaves them out\)",
    ):
        load_files([path], length=8, classes=("qam16", "bpsk"))
    kept = load_files([path], length=8, classes=("qam16", "bpsk"), drop_unknown=True)
    assert len(kept) == 4 and kept.dropped == {"8psk": 2}
    with _error(path, r"no record of the classes asked for \(gfsk\)"):
        load_files([path], length=8, classes=("gfsk",), drop_unknown=True)


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        (("bpsk", "qsk"), r"classes: unknown class 'qsk' \(no alias and no file has it\)"),
        (("16qam", "QAM16"), r"classes: '16qam' is listed twice \('QAM16' is an alias of it\)"),
        ("bpsk", r"classes: expected a non-empty list of class names, got 'bpsk'"),
        (("bpsk", "bpsk"), r"classes: 'bpsk' is listed twice"),
    ],
)
def test_bad_class_lists_are_config_errors(tmp_path: Path, classes, message) -> None:
    path = _npz(tmp_path / "a.npz", _traced(2, 8, ("bpsk", "16qam")))
    with pytest.raises(ConfigError, match=r"\A" + message + r"\Z"):
        load_files([path], length=8, classes=classes)


def test_custom_class_names_a_file_holds_can_be_selected(tmp_path: Path) -> None:
    path = _npz(tmp_path / "a.npz", _traced(4, 8, ("drone-a", "drone-b")))
    loaded = load_files([path], length=8, classes=("drone-b", "drone-a"))
    assert loaded.records.class_names == ("drone-b", "drone-a")
    assert loaded.records.labels.tolist() == [1, 0, 1, 0]


def test_unknown_classes_are_judged_on_the_records_not_the_declared_list(tmp_path: Path) -> None:
    """An RML2018 file declares all 24 classes; one holding only bpsk/qpsk must load."""
    gold = _gold(tmp_path / "g.h5", [3, 4, 4, 3])  # BPSK, QPSK in the corrected order
    loaded = load_files([gold], length=32, classes=("bpsk", "qpsk"))
    assert loaded.records.label_names.tolist() == ["bpsk", "qpsk", "qpsk", "bpsk"]
    assert len(read_rml2018(gold).class_names) == 24
    options = {"skip_unknown": False, "snr_key": "", "rml2018_order": "corrected"}
    rows, labels = model_rows(open_source(gold, 32, **options), ("qpsk", "bpsk"), drop=False)
    assert rows.tolist() == [0, 1, 2, 3] and labels.tolist() == [1, 0, 0, 1]
    mixed = open_source(_gold(tmp_path / "m.h5", [3, 5]), 32, **options)
    with _error(tmp_path / "m.h5", "classes the model was not trained on: 8psk .*--drop-unknown.*"):
        model_rows(mixed, ("qpsk", "bpsk"), drop=False)
    rows, labels = model_rows(mixed, ("qpsk", "bpsk"), drop=True)
    assert rows.tolist() == [0] and labels.tolist() == [1]


def test_rml2018_order_option_against_a_hand_made_file(tmp_path: Path) -> None:
    gold = _gold(tmp_path / "g.h5", [0, 8, 22])
    corrected = load_files([gold], length=32)
    assert corrected.records.label_names.tolist() == [
        n.lower() for n in (RML2018_NAMES[0], RML2018_NAMES[8], RML2018_NAMES[22])
    ]  # ook, 16apsk, gmsk
    published = load_files([gold], length=32, rml2018_order="classes-txt")
    assert [RML2018_CLASSES_TXT[c] for c in (0, 8, 22)] == ["32PSK", "BPSK", "OOK"]
    assert published.records.label_names.tolist() == ["32psk", "bpsk", "ook"]
    with pytest.raises(
        ConfigError,
        match=r"\Arml2018_order: unknown order 'txt'; choose corrected or classes-txt\Z",
    ):
        load_files([gold], length=32, rml2018_order="txt")


def test_rml2018_reads_only_the_rows_it_keeps_and_windows_them(tmp_path: Path) -> None:
    gold = _gold(tmp_path / "g.h5", [3, 4, 5, 3, 4, 5, 3, 4], length=64)
    steps = []
    loaded = load_files(
        [gold], length=32, classes=("bpsk", "qpsk"), drop_unknown=True, advance=steps.append
    )
    assert steps == [1]
    r = loaded.records
    np.testing.assert_array_equal(r.iq.real[:, 0], np.repeat([0, 1, 3, 4, 6, 7], 2))
    np.testing.assert_array_equal(r.snr_db, np.repeat([-20, -18, -14, -12, -8, -6], 2))
    np.testing.assert_array_equal(loaded.groups, np.repeat(np.arange(6), 2))
    assert loaded.dropped == {"8psk": 4}
    capped = load_files(
        [gold], length=32, classes=("bpsk", "qpsk"), drop_unknown=True, max_records=4, seed=2
    )
    assert len(capped) == 4 and len(set(capped.records.iq.real[:, 0].tolist())) == 2


def test_caps_take_whole_groups_and_are_deterministic(tmp_path: Path) -> None:
    records = _traced(
        40, 8, ("bpsk", "qpsk"), labels=np.arange(40) // 2 % 2, burst=np.arange(40) // 2
    )
    path = _npz(tmp_path / "a.npz", records)
    first = load_files([path], length=8, max_per_class=6, seed=5)
    again = load_files([path], length=8, max_per_class=6, seed=5)
    other = load_files([path], length=8, max_per_class=6, seed=6)
    assert first.records.counts().tolist() == [6, 6]
    np.testing.assert_array_equal(first.records.iq, again.records.iq)
    assert not np.array_equal(first.records.iq, other.records.iq)
    source = first.records.iq.real[:, 0].astype(int)
    assert all(
        np.isin(source[source // 2 == b], [2 * b, 2 * b + 1]).sum() == 2 for b in source // 2
    )
    total = load_files([path], length=8, max_records=9, seed=1)
    assert len(total) == 8  # whole pairs only: 4 of them fit in 9
    with pytest.raises(ConfigError, match="no whole group fits the cap .*holds 2"):
        load_files([path], length=8, max_records=1)


def test_snr_key_names_an_npz_column(tmp_path: Path) -> None:
    path = _npz(tmp_path / "a.npz", _traced(3, 8, ("bpsk",), my_snr=[1, 2, 3]))
    assert load_files([path], length=8, snr_key="my_snr").records.snr_db.tolist() == [1, 2, 3]
    assert np.isnan(load_files([path], length=8).records.snr_db).all()


def test_different_sample_rates_are_refused(tmp_path: Path) -> None:
    a = _npz(tmp_path / "a.npz", _traced(2, 8, ("bpsk",)))
    fast = _traced(2, 8, ("bpsk",))
    b = _npz(tmp_path / "b.npz", RecordSet(fast.iq, fast.labels, fast.class_names, {}, 2e6))
    with _error(
        b,
        f"sample rate 2e\\+06 Hz differs from 1e\\+06 Hz of {re.escape(str(a))}; "
        "load them separately",
    ):
        load_files([a, b], length=8)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"length": 0}, "length: must be an integer >= 1, got 0"),
        ({"max_records": -1}, "max_records: must be an integer >= 0, got -1"),
        ({"max_per_class": 1.5}, "max_per_class: must be an integer >= 0, got 1.5"),
        ({"seed": True}, "seed: must be an integer >= 0, got True"),
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, option, message) -> None:
    path = _npz(tmp_path / "a.npz", _traced(2, 8, ("bpsk",)))
    with pytest.raises(ConfigError, match=r"\A" + re.escape(message) + r"\Z"):
        load_files([path], **{"length": 8, **option})


def test_file_records_subset_and_concat_keep_groups_apart(tmp_path: Path) -> None:
    loaded = load_files([_npz(tmp_path / "a.npz", _traced(4, 8, ("bpsk",)))], length=8)
    assert loaded.subset([3, 1]).groups.tolist() == [3, 1]
    both = FileRecords.concat([loaded.subset([0, 1]), loaded.subset([0, 1])])
    assert both.groups.tolist() == [0, 1, 2, 3]  # the same numbers in two parts stay apart
    assert both.attrs["file"].tolist() == [str(tmp_path / "a.npz")] * 4
    np.testing.assert_array_equal(both.records.iq, loaded.records.iq[[0, 1, 0, 1]])


def test_unused_classes_asked_for_are_logged(tmp_path: Path, caplog) -> None:
    path = _npz(tmp_path / "a.npz", _traced(2, 8, ("bpsk",)))
    with caplog.at_level(logging.WARNING, logger="fedsb.data.files"):
        loaded = load_files([path], length=8, classes=("bpsk", "qpsk"))
    assert loaded.records.counts().tolist() == [2, 0]
    assert "no records of class(es) qpsk" in caplog.text


def test_a_file_with_no_record_left_after_dropping_is_fine_beside_others(tmp_path: Path) -> None:
    gold = _gold(tmp_path / "g.h5", [5, 5])  # 8psk only
    path = _npz(tmp_path / "a.npz", _traced(3, 32, ("bpsk",)))
    loaded = load_files([gold, path], length=32, classes=("bpsk",), drop_unknown=True)
    assert loaded.records.label_names.tolist() == ["bpsk"] * 3 and loaded.dropped == {"8psk": 2}
    assert loaded.attrs["file"].tolist() == [str(path)] * 3
