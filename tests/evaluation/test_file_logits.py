"""`fedsb evaluate` reads its data a chunk at a time, from several files, globs and directories."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from fedsb.data import sources
from fedsb.data.imageset import images_from_records
from fedsb.evaluation.evaluate_run import evaluate_run, load_classifier
from fedsb.evaluation.file_logits import ReadOptions, file_logits
from fedsb.io.load import save_records
from fedsb.signals.recordset import RecordSet
from fedsb.training.loop import predict

from ..cli.test_data_cli import run as cli
from ..federated.conftest import workspace  # noqa: F401  (the tiny pretrained backbone)
from .test_evaluate_run import _records


@pytest.fixture(scope="module")
def finished(workspace, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("file-logits")
    workspace.run(root / "run")
    return root, workspace


def _gold(path: Path, records: RecordSet, columns: list[int]) -> Path:
    """An RML2018-layout file of ``records``, record i one-hot in column ``columns[label]``."""
    n = len(records)
    y = np.zeros((n, 24), dtype=np.int64)
    y[np.arange(n), np.asarray(columns)[records.labels]] = 1
    with h5py.File(path, "w") as handle:
        handle["X"] = np.stack([records.iq.real, records.iq.imag], axis=-1)
        handle["Y"] = y
        handle["Z"] = np.nan_to_num(records.snr_db).reshape(n, 1)
    return path


def test_chunked_logits_equal_one_pass_over_all_images(finished):
    """Reference: the run's model on every record's images at once (``predict``)."""
    root, ws = finished
    records = _records(256, seed=21)
    save_records(records, root / "all.npz")
    loaded, _ = load_classifier(root / "run")
    pred, counts = file_logits(loaded, [root / "all.npz"], batch=5)
    images = images_from_records(records, ws.config().data)
    want = predict(loaded.model, images).double().numpy()
    np.testing.assert_allclose(pred.logits, want, rtol=1e-5, atol=1e-5)
    assert pred.labels.tolist() == records.labels.tolist() and counts[0].record_length == 256
    np.testing.assert_array_equal(pred.snr_db, records.snr_db)


def test_an_rml2018_file_is_read_only_a_chunk_of_rows_at_a_time(finished, monkeypatch):
    root, _ = finished
    records = _records(512, classes=("bpsk", "qpsk"), seed=22)
    path = _gold(root / "gold.h5", records, [3, 4])  # BPSK, QPSK in the corrected order
    asked: list[int] = []
    opened = sources._rml2018

    def counting(*args):
        source = opened(*args)
        read = source.read
        source.read = lambda rows: (asked.append(len(rows)), read(rows))[1]
        return source

    monkeypatch.setattr(sources, "_rml2018", counting)
    loaded, _ = load_classifier(root / "run")
    pred, counts = file_logits(loaded, [path], batch=7)
    assert counts[0].record_length == 512 and counts[0].records == len(pred.labels)
    assert len(pred.labels) == 2 * len(records)  # two 256-sample windows
    assert max(asked) <= 7 and sum(asked) == 2 * len(records)
    whole, _ = file_logits(loaded, [path], batch=10_000)
    np.testing.assert_allclose(pred.logits, whole.logits, rtol=1e-6, atol=1e-6)
    assert pred.labels.tolist() == np.repeat(records.labels, 2).tolist()  # bpsk 0, qpsk 1


def test_cli_takes_several_specs_and_counts_every_record(finished, tmp_path, capsys):
    """A glob and a directory: the union of their records, each file once."""
    root, _ = finished
    folder = tmp_path / "site"
    folder.mkdir()
    parts = [_records(256, seed=s) for s in (23, 24, 25)]
    for i, part in enumerate(parts[:2]):
        save_records(part, folder / f"p{i}.npz")
    save_records(parts[2], tmp_path / "extra.npz")
    out = tmp_path / "e.json"
    argv = ["evaluate", "--run", str(root / "run"), "--out", str(out)]
    specs = ["--data", str(folder), "--data", str(tmp_path / "*.npz"), "--data", str(folder)]
    code, stdout, _ = cli([*argv, *specs], capsys)
    assert code == 0, stdout
    for name in ("p0.npz", "p1.npz", "extra.npz"):
        assert f"{name}: 36 records, " in stdout
    result = json.loads(out.read_text())
    assert result["records"] == sum(len(p) for p in parts) and len(result["data"]) == 3
    # each file's accuracy, against the file scored alone
    for entry in result["per_source"]:
        alone, _ = evaluate_run(root / "run", entry["data"])
        assert entry["records"] == alone["records"]
        assert entry["accuracy"] == pytest.approx(alone["accuracy"])
    single, _ = evaluate_run(root / "run", folder / "p0.npz")
    assert isinstance(single["data"], str) and single["records"] == len(parts[0])
    assert "per_source" not in single


def test_the_rml2018_order_option_reaches_evaluate(finished, tmp_path, capsys):
    """Columns 3 and 4 are BPSK, QPSK when corrected, FM and GMSK in the published classes.txt."""
    root, _ = finished
    records = _records(256, classes=("bpsk", "qpsk"), seed=26)
    path = _gold(tmp_path / "g.h5", records, [3, 4])
    argv = ["evaluate", "--run", str(root / "run"), "--data", str(path)]
    code, _, err = cli([*argv, "--out", str(tmp_path / "a.json")], capsys)
    assert code == 0, err
    code, _, err = cli([*argv, "--rml2018-order", "classes-txt"], capsys)
    assert code == 2 and "classes the model was not trained on: gmsk, wbfm" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli([*argv, "--rml2018-order", "sorted"], capsys)
    assert code == 2 and "unknown order 'sorted'" in err
    assert not (root / "run" / "eval.json").exists()


def test_a_glob_that_matches_nothing_is_one_line(finished, tmp_path, capsys):
    root, _ = finished
    argv = ["evaluate", "--run", str(root / "run"), "--data", str(tmp_path / "none*.npz")]
    code, _, err = cli(argv, capsys)
    assert code == 2 and "matches no file" in err and len(err.strip().splitlines()) == 1
    assert ReadOptions().rml2018_order == "corrected"
