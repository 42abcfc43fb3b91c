"""Run directories and checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from fedsb.errors import DataError
from fedsb.models.checkpoint import load_checkpoint, save_checkpoint
from fedsb.runs import RunDir


def test_metrics_rows_append_and_nan_becomes_null(tmp_path):
    run = RunDir(tmp_path / "run")
    run.log(epoch=1, loss=0.5, acc={"-10": math.nan})
    run.log(epoch=2, loss=0.25, acc={"-10": 0.5})
    rows = run.rows()
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["acc"]["-10"] is None and rows[1]["acc"]["-10"] == 0.5
    assert (run.path / "figures").is_dir()


def test_checkpoint_round_trip_keeps_tensors_and_metadata(tmp_path):
    state = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    meta = {"kind": "backbone", "class_names": ["a", "b"], "nested": {"x": 1.5}}
    path = save_checkpoint(tmp_path / "m.safetensors", state, meta)
    got, got_meta = load_checkpoint(path)
    assert got_meta == meta
    assert set(got) == {"w", "b"} and all(torch.equal(got[k], state[k]) for k in state)


def test_bad_checkpoints_are_one_line_data_errors(tmp_path):
    with pytest.raises(DataError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 20)
    with pytest.raises(DataError, match="not a readable checkpoint"):
        load_checkpoint(junk)
