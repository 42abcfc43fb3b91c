"""The round checkpoint: immutable progress records, the prefixed key helpers, the metadata
format of every run directory written so far, and one-line errors for malformed metadata."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from fedsb.errors import DataError
from fedsb.federated.progress import (
    Progress,
    Totals,
    load_progress,
    save_progress,
    split_prefixed,
    with_prefix,
)
from fedsb.models.checkpoint import load_checkpoint, save_checkpoint


def test_split_prefixed_keeps_only_the_prefix_and_strips_it_once():
    state = {"global.a": 1, "global.global.b": 2, "opt.m.a": 3, "xglobal.c": 4}
    assert split_prefixed(state, "global.") == {"a": 1, "global.b": 2}
    assert split_prefixed(state, "opt.") == {"m.a": 3}
    assert split_prefixed(with_prefix({"m.a": 5, "v.a": 6}, "opt."), "opt.") == {"m.a": 5, "v.a": 6}


def test_totals_are_immutable():
    totals = Totals(1.0, (0, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        totals.bytes = 2.0  # type: ignore[misc]
    assert dataclasses.replace(totals, bytes=3.0) == Totals(3.0, (0, 2)) and totals.bytes == 1.0


def test_the_checkpoint_keeps_the_metadata_format_and_round_trips(tmp_path):
    path = tmp_path / "state.safetensors"
    glob = {"head.bias": torch.arange(3.0)}
    opt = {"m.head.bias": torch.ones(3, dtype=torch.float64)}
    save_progress(path, Progress(glob, opt, 4, Totals(1234.0, (3, 0, 7))))
    tensors, meta = load_checkpoint(path)
    assert set(tensors) == {"global.head.bias", "opt.m.head.bias"}
    assert meta == {
        "kind": "federated-state",
        "round": 4,
        "totals": {"bytes": 1234.0, "dp_steps": [3, 0, 7]},
    }
    got = load_progress(path)
    assert (got.done, got.totals) == (4, Totals(1234.0, (3, 0, 7)))
    assert torch.equal(got.global_state["head.bias"], glob["head.bias"])
    assert torch.equal(got.opt_state["m.head.bias"], opt["m.head.bias"])


def test_a_checkpoint_written_by_the_old_server_loads(tmp_path):
    """The old loop wrote its mutable totals dict as is (integer byte counts possible)."""
    path = tmp_path / "state.safetensors"
    tensors = {"global.r": torch.eye(2), "opt.v.r": torch.zeros(2, 2)}
    totals = {"bytes": 5000, "dp_steps": [0, 0]}
    save_checkpoint(path, tensors, {"kind": "federated-state", "round": 2, "totals": totals})
    got = load_progress(path)
    assert got.done == 2 and got.totals == Totals(5000, (0, 0))
    assert got.totals.as_meta() == totals  # saved again unchanged
    assert set(got.global_state) == {"r"} and set(got.opt_state) == {"v.r"}


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        ({"round": 1}, 'metadata "totals" is not {"bytes": number, "dp_steps": [int]}'),
        ({"round": 1, "totals": {"bytes": "x", "dp_steps": []}}, 'metadata "totals" is not'),
        ({"round": 1, "totals": {"bytes": 1.0, "dp_steps": [1.5]}}, 'metadata "totals" is not'),
        ({"round": 1, "totals": [1.0]}, 'metadata "totals" is not'),
        ({"round": "1", "totals": {}}, "metadata \"round\" is not a round number, got '1'"),
        ({"round": -1, "totals": {}}, 'metadata "round" is not a round number, got -1'),
    ],
)
def test_malformed_metadata_is_a_one_line_data_error(tmp_path, meta, problem):
    path = tmp_path / "state.safetensors"
    save_checkpoint(path, {"global.r": torch.eye(2)}, {"kind": "federated-state", **meta})
    before = path.read_bytes()
    with pytest.raises(DataError, match=rf"\A{re.escape(str(path))}: {re.escape(problem)}"):
        load_progress(path)
    assert path.read_bytes() == before  # only read
