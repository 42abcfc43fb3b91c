"""fedsb report / paper on run directories with one broken file each: a one-line DataError
naming that file and the problem, nothing written; a missing optional file only drops what it
feeds."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fedsb.errors import DataError
from fedsb.evaluation.scoring import load_predictions
from fedsb.report.build import build_report

from ..cli.test_data_cli import run as cli


@pytest.fixture(scope="module")
def finished(workspace, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "run"
    workspace.run(out)
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _final_test_acc(path: Path) -> None:
    rows = path.read_text().splitlines()
    last = json.loads(rows[-1])
    last["test_acc"] = "high"
    path.write_text("\n".join([*rows[:-1], json.dumps(last)]) + "\n")


def _predictions(**arrays) -> Callable[[Path], None]:
    return lambda p: np.savez(p, **arrays)


GOOD = {
    "labels": np.zeros(4, np.int64),
    "snr_db": np.zeros(4, np.float32),
    "class_names": np.asarray(["bpsk", "qpsk", "gfsk"]),
}
MUTATIONS = {
    # metrics.jsonl
    "rows-list": ("metrics.jsonl", b"[1, 2]\n", r"line 1 is not a JSON object \(got list\)"),
    "rows-string": ("metrics.jsonl", b'"x"\n', r"line 1 is not a JSON object \(got str\)"),
    "rows-number": ("metrics.jsonl", b"3\n", r"line 1 is not a JSON object \(got int\)"),
    "rows-field": ("metrics.jsonl", _final_test_acc, r"row 4: test_acc: expected a finite num"),
    "rows-binary": ("metrics.jsonl", b"\xff\xfe\x00\n", "not UTF-8 text"),
    # predictions.npz
    "pred-garbage": ("predictions.npz", b"random bytes" * 9, "not a readable predictions file"),
    "pred-no-logits": ("predictions.npz", _predictions(**GOOD), "missing array 'logits'"),
    "pred-shape": (
        "predictions.npz",
        _predictions(logits=np.zeros((4, 3, 2)), **GOOD),
        r"logits must be records x classes numbers, got \(4, 3, 2\)",
    ),
    "pred-object": (
        "predictions.npz",
        _predictions(logits=np.asarray([None, 1], dtype=object), **GOOD),
        "array 'logits' holds Python objects",
    ),
    "pred-names": (
        "predictions.npz",
        _predictions(logits=np.zeros((4, 2), np.float32), **GOOD),
        "2 logit columns for 3 class names",
    ),
    "pred-labels": (
        "predictions.npz",
        _predictions(logits=np.zeros((4, 3)), **{**GOOD, "labels": np.full(4, 7)}),
        r"labels must lie in 0\.\.2",
    ),
    "pred-nan": (
        "predictions.npz",
        _predictions(logits=np.full((4, 3), np.nan), **GOOD),
        "logits hold NaN or Inf",
    ),
    # evaluation.json
    "eval-garbage": ("evaluation.json", b"{oops", r"not readable JSON \(JSONDecodeError\)"),
    "eval-deep": ("evaluation.json", b"[" * 100_000 + b"]" * 100_000, "RecursionError"),
    "eval-list": ("evaluation.json", b"[1, 2, 3]", "expected an object, got a list"),
    "eval-field": (
        "evaluation.json",
        lambda p: _edit_json(p, lambda d: d["test"]["per_snr"][0].update(accuracy="most")),
        r"test\.per_snr\[0\]\.accuracy: expected a finite number, got 'most'",
    ),
    "eval-confusion": (
        "evaluation.json",
        lambda p: _edit_json(p, lambda d: d["test"]["confusion"].pop()),
        "test.confusion must be 3 x 3",
    ),
    "eval-clients": (
        "evaluation.json",
        lambda p: _edit_json(p, lambda d: d["clients"][1].pop("client")),
        r"clients\[1\]\.client: missing",
    ),
    # partition.json
    "part-garbage": ("partition.json", b"\x00\x01", "not readable JSON"),
    "part-object": ("partition.json", b'{"clients": 3}', "expected a list, got an object"),
    "part-counts": (
        "partition.json",
        lambda p: _edit_json(p, lambda d: d[2]["counts"].append(5)),
        r"\[2\]\.counts: expected 3 counts",
    ),
    # config.toml
    "config-garbage": ("config.toml", b"rounds = = 3", "invalid TOML"),
    "config-binary": ("config.toml", b"\xff\xfe rounds", "not UTF-8 text"),
    "config-table": ("config.toml", b"adapter = 3\n", "adapter: expected an object, got 3"),
    "config-type": ("config.toml", b'[partition]\nclients = "ten"\n', "partition.clients"),
}


def _break(run: Path, name: str) -> Path:
    member, content, _ = MUTATIONS[name]
    if callable(content):
        content(run / member)
    else:
        (run / member).write_bytes(content)
    return run / member


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_broken_run_file_is_a_one_line_error_naming_it(finished, tmp_path, name):
    run = _copy(finished, tmp_path)
    broken = _break(run, name)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    with pytest.raises(DataError, match=f"^{re.escape(str(broken))}: .*{MUTATIONS[name][2]}"):
        build_report(run)
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("command", ["report", "paper"])
def test_the_cli_says_it_in_one_line_with_exit_2(finished, tmp_path, capsys, command):
    run = _copy(finished, tmp_path)
    _break(run, "rows-list")
    code, _, err = cli([command, str(run)], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [f"error: {run / 'metrics.jsonl'}: line 1 is not a JSON "
                                        "object (got list)"]  # fmt: skip


@pytest.mark.parametrize(
    ("missing", "absent"),
    [
        ("evaluation.json", {"snr", "confusion"}),
        ("partition.json", {"partition"}),
        ("predictions.npz", {"reliability", "pr"}),
        ("config.toml", set()),
    ],
)
def test_a_missing_optional_file_drops_only_what_it_feeds(finished, tmp_path, missing, absent):
    run = _copy(finished, tmp_path)
    (run / missing).unlink()
    report = build_report(run)
    made = {p.stem for p in report.figures}
    assert made.isdisjoint(absent) and {"rounds", "agreement"} <= made
    assert report.html.is_file()


def test_good_predictions_still_load(finished):
    pred = load_predictions(finished / "predictions.npz")
    with np.load(finished / "predictions.npz") as z:
        np.testing.assert_array_equal(pred.logits, z["logits"].astype(np.float64))
        assert pred.class_names == tuple(z["class_names"])
