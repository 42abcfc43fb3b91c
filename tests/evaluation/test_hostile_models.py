"""`fedsb evaluate --run RUN` on a run whose model or config is broken: a one-line DataError
naming RUN/model.safetensors (or RUN/config.toml) and the problem, before any data is read."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from fedsb.errors import DataError
from fedsb.evaluation.evaluate_run import evaluate_run, load_run_model
from fedsb.io.load import save_records
from fedsb.models.checkpoint import load_checkpoint, save_checkpoint

from ..cli.test_data_cli import run as cli
from ..federated.conftest import workspace  # noqa: F401  (the tiny pretrained backbone)
from .test_evaluate_run import _records


@pytest.fixture(scope="module")
def finished(workspace, tmp_path_factory) -> Path:  # noqa: F811
    root = tmp_path_factory.mktemp("hostile-model")
    workspace.run(root / "run")
    save_records(_records(256), root / "data.npz")
    return root / "run"


def _broken(finished: Path, tmp_path: Path, edit) -> Path:
    """A copy of the run whose model.safetensors is ``edit(state, meta)`` of the real one."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    state, meta = load_checkpoint(run / "model.safetensors")
    edit(state, meta)
    save_checkpoint(run / "model.safetensors", state, meta)
    return run


def _error(run: Path, problem: str, file: str = "model.safetensors") -> None:
    with pytest.raises(DataError, match=f"^{re.escape(str(run / file))}: {problem}$"):
        load_run_model(run)


def test_a_nan_weight_is_named(finished, tmp_path):
    name = "stages.1.0.conv2.weight"

    def poison(state, meta):
        assert name in state
        state[name] = state[name].clone()
        state[name].view(-1)[3] = float("nan")

    _error(_broken(finished, tmp_path, poison), f"weight '{name}' holds NaN or Inf")


@pytest.mark.parametrize("key", ["images", "class_names", "model", "in_channels", "image_size"])
def test_metadata_without_a_key_is_named(finished, tmp_path, key):
    run = _broken(finished, tmp_path, lambda state, meta: meta.pop(key))
    _error(run, f"metadata '{key}' is missing or not a (dict|list|int)")


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda s, m: m.update(class_names=[]), "metadata 'class_names' must be a non-empty list"),
        (lambda s, m: m.update(image_size=0), "metadata 'in_channels' and 'image_size' must be"),
        (lambda s, m: m["model"].update(arch="cnn"), "metadata 'model': arch: 'cnn' is not one"),
        (lambda s, m: m["model"].update(widths=[16]), "metadata 'model': widths and blocks"),
        (
            lambda s, m: m["model"].update(widths=[8 * 10**8, 16 * 10**8]),
            r"metadata describes no buildable model \(Storage size calculation overflowed",
        ),
        (lambda s, m: m.update(images={"size": "big"}), "metadata 'images': size: expected an"),
        (lambda s, m: m.update(temperature="hot"), "metadata 'temperature' is not a number: 'hot'"),
        (lambda s, m: m.update(temperature=-1.0), "metadata 'temperature' must be > 0, got -1.0"),
    ],
)
def test_metadata_values_that_describe_no_model_are_named(finished, tmp_path, edit, problem):
    _error(_broken(finished, tmp_path, edit), problem + ".*")


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda s, m: s.pop("head.weight"), "missing tensor 'head.weight'"),
        (lambda s, m: s.update(extra=torch.zeros(2)), "unexpected tensor 'extra'"),
        (
            lambda s, m: s.update({"head.bias": torch.zeros(7)}),
            r"'head.bias' is \(7,\), the model's is \(3,\)",
        ),
        (
            lambda s, m: m.update(in_channels=5),
            r"'stem\.conv\.weight' is \(16, 2, 3, 3\), the model's is \(16, 5, 3, 3\)",
        ),
        (  # petabytes of weights claimed: shapes are compared before anything is allocated
            lambda s, m: m["model"].update(widths=[8 * 10**6, 16 * 10**6]),
            r"'stem\.conv\.weight' is \(16, 2, 3, 3\), the model's is \(8000000, 2, 3, 3\)",
        ),
    ],
)
def test_tensors_that_do_not_fit_the_architecture_are_named(finished, tmp_path, edit, problem):
    run = _broken(finished, tmp_path, edit)
    _error(run, f"tensors do not fit the model in its metadata: {problem}")


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (b"data = 3\n", "missing or without data.generator.length"),
        (b"[data.generator]\nlength = 0\n", "data.generator.length must be >= 1, got 0"),
        (b"\xff\xfe", "missing or without data.generator.length"),
    ],
)
def test_a_broken_config_is_named(finished, tmp_path, config, problem):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "config.toml").write_bytes(config)
    _error(run, problem, "config.toml")


def test_the_cli_says_it_in_one_line_with_exit_2_and_writes_nothing(finished, tmp_path, capsys):
    def poison(state, meta):
        first = next(iter(state))
        state[first] = torch.full_like(state[first], float("inf"))

    run = _broken(finished, tmp_path, poison)
    before = sorted(p.name for p in run.iterdir())
    data = finished.parent / "data.npz"
    code, _, err = cli(["evaluate", "--run", str(run), "--data", str(data)], capsys)
    first = next(iter(load_checkpoint(run / "model.safetensors")[0]))
    assert code == 2 and "Traceback" not in err
    want = f"error: {run / 'model.safetensors'}: weight '{first}' holds NaN or Inf"
    assert err.strip().splitlines() == [want]
    assert sorted(p.name for p in run.iterdir()) == before


def test_the_unbroken_run_still_evaluates(finished):
    result, pred = evaluate_run(finished, finished.parent / "data.npz")
    assert result["records"] == len(pred.labels) == 36
