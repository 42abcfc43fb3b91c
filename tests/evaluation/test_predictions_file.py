"""predictions.npz read back: every array's header is checked before anything is allocated."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npformat

from fedsb.errors import DataError
from fedsb.evaluation.scoring import Predictions, load_predictions, save_predictions

NAMES = ("bpsk", "qpsk", "gfsk")


def _good(n: int = 40) -> Predictions:
    rng = np.random.default_rng(0)
    return Predictions(rng.normal(size=(n, 3)), rng.integers(0, 3, n), np.zeros(n), NAMES)


def _npz(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, blob in members.items():
            archive.writestr(f"{name}.npy", blob)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _members(pred: Predictions) -> dict[str, bytes]:
    return {
        "logits": _npy(pred.logits.astype(np.float32)),
        "labels": _npy(pred.labels),
        "snr_db": _npy(pred.snr_db),
        "class_names": _npy(np.asarray(pred.class_names)),
    }


def test_a_header_that_claims_more_than_the_member_holds_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSB_INPUT_BUDGET", "100T")  # the claim alone gives it away
    header = io.BytesIO()
    npformat.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 3)}
    )
    members = {**_members(_good()), "logits": header.getvalue() + b"\0" * 64}
    _npz(tmp_path / "p.npz", members)
    size = len(members["logits"])
    with pytest.raises(
        DataError, match=f"array 'logits' claims 12,000,000,000,000 bytes in {size}"
    ):
        load_predictions(tmp_path / "p.npz")


def test_a_file_over_the_input_budget_is_refused(tmp_path, monkeypatch):
    save_predictions(_good(4000), tmp_path / "p.npz")
    monkeypatch.setenv("FEDSB_INPUT_BUDGET", "10k")
    with pytest.raises(DataError, match=r"array 'logits' claims .* over the 10\.0 kB input budget"):
        load_predictions(tmp_path / "p.npz")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"labels": _npy(np.zeros(40))}, "labels must be integers, one per record, got float64"),
        ({"labels": _npy(np.zeros(39, np.int64))}, "disagree"),
        ({"snr_db": _npy(np.asarray(["x"] * 40))}, "snr_db must be numbers"),
        ({"class_names": _npy(np.arange(3))}, "class_names must be a list of strings"),
        ({"logits": _npy(np.zeros((0, 3)))}, r"logits must be records x classes numbers"),
        ({"logits": _npy(np.full((40, 3), np.inf))}, "logits hold NaN or Inf"),
        ({"labels": _npy(np.full(40, -1))}, r"labels must lie in 0\.\.2"),
    ],
)
def test_arrays_that_are_no_predictions_are_named(tmp_path, change, problem):
    _npz(tmp_path / "p.npz", {**_members(_good()), **change})
    with pytest.raises(DataError, match=f"^{re.escape(str(tmp_path / 'p.npz'))}: .*{problem}"):
        load_predictions(tmp_path / "p.npz")


def test_a_truncated_file_is_not_readable(tmp_path):
    save_predictions(_good(), tmp_path / "p.npz")
    blob = (tmp_path / "p.npz").read_bytes()
    (tmp_path / "p.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="not a readable predictions file"):
        load_predictions(tmp_path / "p.npz")


def test_what_save_predictions_writes_loads_back_exactly(tmp_path):
    pred = _good()
    save_predictions(pred, tmp_path / "p.npz")
    back = load_predictions(tmp_path / "p.npz")
    np.testing.assert_array_equal(back.logits, pred.logits.astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(back.labels, pred.labels)
    assert back.class_names == NAMES
