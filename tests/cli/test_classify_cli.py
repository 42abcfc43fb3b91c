"""``fedsb classify`` and ``fedsb export`` on the command line: output, and one-line refusals."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from fedsb.runs import MODEL_FILE

from ..federated.conftest import workspace  # noqa: F401  (the tiny pretrained backbone)
from ..signals.bursts_data import burst_recording, noise, write_pair
from .test_data_cli import run as cli


@pytest.fixture(scope="module")
def trained(workspace, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("classify_cli")
    workspace.run(root / "run")
    return root


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_classify_into_the_inputs_folder_writes_beside_and_changes_nothing(trained, capsys):
    rec = trained / "rec"
    iq, truth = burst_recording(("bpsk", "qpsk"), 2, 1024, 15.0, seed=1)
    meta = write_pair(rec / "cap", iq)
    before = _files(rec)
    code, out, err = cli(
        ["classify", str(meta), "--run", str(trained / "run"), "--out", str(rec)], capsys
    )
    assert code == 0, err
    assert f"{meta}: 4 bursts (detection)" in out and "wrote" in out
    assert "classifying (samples)" in err  # the progress bar, on stderr
    after = _files(rec)
    assert {k: after[k] for k in before} == before  # the user's files are as they were
    assert set(after) - set(before) == {
        "cap.fedsb.sigmf-meta",
        "cap.fedsb.csv",
        "cap.fedsb.json",
        "cap.fedsb.sigmf-data",  # a link to cap.sigmf-data
    }
    assert (rec / "cap.fedsb.sigmf-data").is_symlink()
    bursts = json.loads((rec / "cap.fedsb.json").read_text())["bursts"]
    assert len(bursts) == len(truth)
    # again into the same folder: its own outputs are replaced, nothing else
    code, _, err = cli(
        ["classify", str(meta), "--run", str(trained / "run"), "--out", str(rec)], capsys
    )
    assert code == 0, err
    assert _files(rec).keys() == after.keys()


def test_export_writes_the_three_files(trained, capsys, tmp_path):
    code, out, err = cli(
        ["export", "--run", str(trained / "run"), "--out", str(tmp_path / "m")], capsys
    )
    assert code == 0, err
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "model.safetensors",
        "model.torchscript.pt",
        "model.json",
    }
    assert "torchscript" in out and "model.json" in out


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", r"nope\.sigmf-meta: file not found"),
        ("not-a-run", r"model\.safetensors: no such checkpoint"),
        ("mode", r"data: 'move' is not one of auto, link, copy"),
        ("out-file", r"out\.txt: not a directory \(--out takes a folder\)"),
        ("keep", r"keep: must be in \(0, 1\], got 1\.5"),
        ("calibrate", r"nope\.npz: file not found"),
        ("overlap", r"overlap: must be in \[0, 1\), got 1\.0"),
        ("export-into-run", r"out: .* holds a run; its model\.safetensors would be replaced"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(trained, tmp_path, capsys, case, message):
    meta = write_pair(tmp_path / "r", noise(4096, 1.0, np.random.default_rng(0)))
    run_dir, out = trained / "run", tmp_path / "out"
    argv = ["classify", str(meta), "--run", str(run_dir), "--out", str(out)]
    if case == "missing":
        argv[1] = str(tmp_path / "nope.sigmf-meta")
    elif case == "not-a-run":
        argv[3] = str(tmp_path)
    elif case == "mode":
        argv += ["--data", "move"]
    elif case == "out-file":
        (tmp_path / "out.txt").write_text("x")
        argv[5] = str(tmp_path / "out.txt")
    elif case == "keep":
        argv += ["--calibrate", str(meta), "--keep", "1.5"]
    elif case == "calibrate":
        argv += ["--calibrate", str(tmp_path / "nope.npz")]
    elif case == "overlap":
        argv += ["--overlap", "1"]
    elif case == "export-into-run":
        argv = ["export", "--run", str(run_dir), "--out", str(run_dir)]
    before, model = _files(tmp_path), (run_dir / MODEL_FILE).read_bytes()
    code, _, err = cli(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, " ".join(err.split())), err
    assert _files(tmp_path) == before and not out.exists()
    assert (run_dir / MODEL_FILE).read_bytes() == model
