"""Text from files, paths and configs prints literally: rich markup and emoji codes are inert."""

from __future__ import annotations

import numpy as np
import pytest

from fedsb.cli.progress import RichReporter, progress_bar
from fedsb.io import save_records

from .conftest import small_records
from .test_data_cli import run

SAMPLES = np.ones(512, np.complex64)


def one_error_line(err: str) -> str:
    """The single non-empty stderr line of a refused command (no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "MarkupError" not in err
    return lines[0]


def test_inspect_prints_a_path_with_markup_literally(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short relative path: the line does not wrap inside it
    save_records(small_records(), tmp_path / "[bold]x.npz")
    code, out, _ = run(["data", "inspect", "[bold]x.npz"], capsys)
    assert code == 0
    assert out.startswith("[bold]x.npz: 6 records x 32 samples"), out


@pytest.mark.parametrize("name", ["[/red]gone.npz", "[bold]gone[/].npz", "a\\"])
def test_error_naming_a_markup_path_is_one_literal_line(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["data", "inspect", name], capsys)
    assert code == 2
    assert one_error_line(err).startswith(f"error: {name}: ")


def test_declared_class_names_print_literally_in_the_table(write_raw_sigmf, capsys):
    meta = write_raw_sigmf(
        SAMPLES,
        [
            {"core:sample_start": 0, "core:sample_count": 256, "core:label": "[/x]bpsk"},
            {"core:sample_start": 256, "core:sample_count": 256, "core:label": ":thumbs_up:"},
        ],
        **{"fedsb:class_names": ["[/x]bpsk", ":thumbs_up:"]},
    )
    code, out, _ = run(["data", "inspect", str(meta), "--length", "128"], capsys)
    assert code == 0
    rows = {line.split()[1]: line.split()[3] for line in out.splitlines() if "│" in line}
    assert rows["[/x]bpsk"] == "2" and rows[":thumbs_up:"] == "2", out
    assert "\N{THUMBS UP SIGN}" not in out


@pytest.mark.parametrize("label", ["[/x]bpsk", ":thumbs_up:", "[bold]qpsk"])
def test_unknown_label_error_names_the_label_literally(label, write_raw_sigmf, capsys):
    meta = write_raw_sigmf(
        SAMPLES, [{"core:sample_start": 0, "core:sample_count": 512, "core:label": label}]
    )
    code, _, err = run(["data", "inspect", str(meta), "--length", "128"], capsys)
    assert code == 2
    line = one_error_line(err)
    assert f"unknown label {label!r} in annotation 0" in line, line


def test_skip_unknown_drops_a_markup_label_and_keeps_the_rest(
    write_raw_sigmf, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    meta = write_raw_sigmf(
        SAMPLES,
        [
            {"core:sample_start": 0, "core:sample_count": 256, "core:label": "[/x]bpsk"},
            {"core:sample_start": 256, "core:sample_count": 256, "core:label": "qpsk"},
        ],
    )
    code, out, _ = run(["data", "inspect", meta.name, "--length", "128", "--skip-unknown"], capsys)
    assert code == 0
    assert "2 records x 128 samples, 1 classes" in out
    assert "qpsk" in out and "[/x]" not in out


def test_reporter_lines_and_bar_descriptions_print_literally(capsys):
    reporter = RichReporter()
    reporter.info("[/red] :thumbs_up: [bold]run-1")
    with progress_bar("[/x]rounds :smile:", 2) as advance:
        advance(2)
    err = capsys.readouterr().err
    assert "[/red] :thumbs_up: [bold]run-1" in err
    assert "[/x]rounds :smile:" in err


def test_model_info_title_shows_bracket_target_patterns(capsys):
    code, out, _ = run(["model", "info", "--set", "adapter.targets=['[a-z]*']"], capsys)
    assert code == 0
    assert "targets [a-z]*, head train" in out, out
