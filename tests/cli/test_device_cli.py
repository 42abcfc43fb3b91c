"""``--device`` of ``fedsb evaluate`` and ``fedsb classify``: parsed, checked before any read.

A device this machine lacks, or one that is not auto/cpu/cuda, is exit 2 with one stderr line
naming ``device``, before the run or the data is opened (they need not exist) and with nothing
written.
"""

from __future__ import annotations

import pytest
import torch

from .test_data_cli import run

NO_CUDA = not torch.cuda.is_available()
CUDA_MISSING = (
    f"error: device: 'cuda' but torch {torch.__version__} sees no CUDA device; use 'auto' or 'cpu'"
)
NOT_A_DEVICE = "error: device: 'tpu' is not one of auto, cpu, cuda"


def _argv(command: str, tmp_path, device: str) -> list[str]:
    run_dir, out = str(tmp_path / "no-run"), str(tmp_path / "out")
    tail = ["--run", run_dir, "--device", device]
    if command == "evaluate":
        return ["evaluate", "--data", str(tmp_path / "d.npz"), "-o", out + ".json", *tail]
    return ["classify", str(tmp_path / "r.sigmf-meta"), "--out", out, *tail]


def _refused(command: str, tmp_path, capsys, device: str) -> str:
    code, out, err = run(_argv(command, tmp_path, device), capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written
    return err.strip()


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a GPU")
@pytest.mark.parametrize("command", ["evaluate", "classify"])
def test_cuda_without_a_gpu_is_exit_2_before_anything_is_read(command, tmp_path, capsys):
    assert _refused(command, tmp_path, capsys, "cuda") == CUDA_MISSING


@pytest.mark.parametrize("command", ["evaluate", "classify"])
def test_an_unknown_device_is_exit_2(command, tmp_path, capsys):
    assert _refused(command, tmp_path, capsys, "tpu") == NOT_A_DEVICE


@pytest.mark.parametrize("command", ["evaluate", "classify"])
def test_cpu_and_auto_are_accepted_and_the_run_is_checked_next(command, tmp_path, capsys):
    """With a usable device the next check is the run's: proof the option got through."""
    for device in ("cpu", "auto"):
        code, _, err = run(_argv(command, tmp_path, device), capsys)
        assert code == 2 and "no-run: no such run directory" in err, err


@pytest.mark.parametrize("command", ["evaluate", "classify"])
def test_help_lists_the_device_option(command, capsys):
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0 and "--device" in out and "auto" in out
