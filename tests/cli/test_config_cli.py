"""Bad numbers in configs and options: exit code 2 and one stderr line naming the dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_data_cli import run

RUN_TOML = str(Path(__file__).resolve().parents[2] / "configs" / "run.toml")


def refused(argv: list[str], capsys) -> tuple[str, str]:
    """(stdout, the one stderr line) of a command that must exit 2 without a traceback."""
    code, out, err = run(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "Traceback" not in err
    return out, lines[0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("partition.dirichlet_alpha=nan", "partition.dirichlet_alpha: expected a number, got nan"),
        ("partition.snr_window_db=nan", "partition.snr_window_db: expected a number, got nan"),
        ("client.lr=nan", "client.lr: expected a number, got nan"),
        ("client.lr=inf", "client.lr: must be finite, got inf"),
        ("partition.seed=-1", "partition.seed: must be >= 0, got -1"),
        ("data.seed=-1", "data.seed must be >= 0, got -1"),
        ("seed=-1", "seed: must be >= 0, got -1"),
        ("partition.quantity_sigma=inf", "partition.quantity_sigma: must be finite, got inf"),
    ],
)
def test_run_dry_run_refuses_bad_numbers(override, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, line = refused(["run", "--config", RUN_TOML, "--dry-run", "--set", override], capsys)
    assert line == f"error: {message}"  # an override: no file name before the key


def test_run_dry_run_accepts_an_snr_window_over_the_whole_range(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--config", RUN_TOML, "--dry-run", "--set", "partition.snr_window_db=inf"]
    code, out, _ = run(argv, capsys)
    assert code == 0 and out.count("-10..20") == 10, out  # every client: the whole range


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--rank", "100000"],
            "adapter.rank: 100000 is larger than every target layer allows (at most 256 here: "
            "min(d_out, d_in) of the widest target)",
        ),
        (["--rank", "0"], "adapter.rank: must be >= 1, got 0"),
        (["--set", "adapter.alpha=nan"], "adapter.alpha: expected a number, got nan"),
        (
            ["--set", "adapter.targets=['nosuch*']"],
            "adapter.targets: no nn.Linear/nn.Conv2d layer matches targets ['nosuch*'] "
            "(head excluded; layers: 'stem.conv', ",
        ),
    ],
)
def test_model_info_refuses_bad_adapters_before_printing(argv, message, capsys):
    out, line = refused(["model", "info", *argv], capsys)
    assert line.startswith(f"error: {message}"), line
    assert out == ""  # nothing half-printed
