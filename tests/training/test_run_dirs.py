"""Run directories: torn and corrupt metrics rows, unusable --out targets, config-relative paths."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from fedsb.config import config_hash, load_config, save_config
from fedsb.errors import ConfigError, DataError
from fedsb.federated.config import RunConfig
from fedsb.federated.server import FederatedError, check_sub_run_dirs
from fedsb.federated.sweep import run_sweep
from fedsb.paths import resolve_config_paths
from fedsb.reporter import SilentReporter
from fedsb.runs import MODEL_FILE, RunDir, check_file_out, check_sub_runs, read_rows, write_json
from fedsb.training.config import FinetuneConfig, PretrainConfig
from fedsb.training.finetune import finetune
from fedsb.training.pretrain import pretrain, resolve_pretrained

REPO = Path(__file__).resolve().parents[2]


def _metrics(tmp_path: Path, text: bytes) -> Path:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(text)
    return path


# -- metrics.jsonl rows ----------------------------------------------------------------------


def test_a_torn_last_row_is_dropped_and_logged(tmp_path, caplog):
    path = _metrics(tmp_path, b'{"round": 0}\n{"round": 1}\n{"round": 2, "test_a')
    with caplog.at_level(logging.WARNING):
        assert read_rows(path) == [{"round": 0}, {"round": 1}]
    assert f"{path}: dropped line 3, a row torn mid-write" in caplog.text


def test_a_complete_last_row_without_newline_is_kept(tmp_path):
    path = _metrics(tmp_path, b'{"round": 0}\n\n{"round": 1}')
    assert read_rows(path) == [{"round": 0}, {"round": 1}]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b'{"round": 0}\n{"rou\n{"round": 1}\n', "line 2 is not JSON"),
        (b'{"round": 0}\n{"round": 1\n', "line 2 is not JSON"),  # has its newline: not torn
        (b"[1, 2]\n", r"line 1 is not a JSON object \(got list\)"),
        (b'{"round": 0}\n"x"\n', r"line 2 is not a JSON object \(got str\)"),
        (b'{"round": 0}\n3', r"line 2 is not a JSON object \(got int\)"),  # parses: not torn
        (b'{"round": 0}\n\xff\xfe\n', "not UTF-8 text"),
        (b"[" * 100_000 + b"\n", "line 1 is not JSON"),
    ],
)
def test_corrupt_rows_are_one_line_errors_naming_file_and_line(tmp_path, text, problem):
    path = _metrics(tmp_path, text)
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}: {problem}$"):
        read_rows(path)
    with pytest.raises(DataError, match=problem):
        RunDir(tmp_path).rows()


def test_no_metrics_file_is_no_rows(tmp_path):
    assert read_rows(tmp_path / "metrics.jsonl") == []


# -- unusable --out --------------------------------------------------------------------------


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("I am a file")
    return path


def test_a_file_is_not_a_run_directory(a_file):
    with pytest.raises(ConfigError, match=f"^out: {re.escape(str(a_file))} is a file, not a run"):
        RunDir(a_file)
    assert a_file.read_text() == "I am a file"


@pytest.mark.parametrize("below", ["run", "deeper/run"])
def test_a_path_below_a_file_cannot_be_written(a_file, below):
    target = a_file / below
    for path, write in ((target, RunDir), (target / "e.json", lambda p: write_json(p, {"a": 1}))):
        with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: cannot write here \(Not a"):
            write(path)
    assert a_file.read_text() == "I am a file"


def test_a_path_where_nothing_can_be_made_is_refused():
    target = Path("/proc/fedsb-no-such-run")  # procfs: no new entries, even for root
    with pytest.raises(DataError, match=f"^{target}: cannot write here \\(.+\\)$"):
        RunDir(target)
    assert not target.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory anyway")
def test_a_read_only_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(DataError, match=r"cannot write here \(Permission denied\)"):
            RunDir(locked / "run")
    finally:
        locked.chmod(0o700)


def test_write_json_into_a_directory_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"cannot write here \(Is a directory\)$"):
        write_json(tmp_path, {"a": 1})


def test_an_output_file_is_checked_without_creating_anything(tmp_path, a_file):
    target = tmp_path / "new" / "deeper" / "eval.json"
    assert check_file_out(target) == target and not (tmp_path / "new").exists()
    with pytest.raises(DataError, match=r"e\.json: cannot write here \(Not a directory\)$"):
        check_file_out(a_file / "e.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # the probe is gone


def test_pretrain_and_finetune_check_out_before_any_work(a_file, tmp_path):
    with pytest.raises(ConfigError, match="is a file, not a run directory"):
        pretrain(PretrainConfig(), a_file)
    # reached only after --out: this spec would fail with "expected a run directory"
    cfg = FinetuneConfig(pretrained=str(tmp_path / "nowhere.bin"))
    with pytest.raises(ConfigError, match="is a file, not a run directory"):
        finetune(cfg, a_file)
    assert a_file.read_text() == "I am a file"


# -- several methods into one --out ----------------------------------------------------------


@pytest.mark.parametrize("holds", ["metrics.jsonl", "config.toml"])
def test_sub_runs_are_refused_inside_a_run(tmp_path, holds):
    run = tmp_path / "finished"
    run.mkdir()
    (run / holds).write_text("")
    message = f"^out: {re.escape(str(run))} already holds a run"
    with pytest.raises(ConfigError, match=message):
        check_sub_runs(run, ["lora-sb", "lora"])
    with pytest.raises(ConfigError, match=message):
        check_sub_run_dirs(run, ["fedsb", "fedit"])
    with pytest.raises(ConfigError, match=message):
        run_sweep(RunConfig(), run, ["fedavg"], [4], None)
    assert sorted(p.name for p in run.iterdir()) == [holds]


def test_sub_runs_of_a_new_out_are_planned_without_creating_anything(tmp_path):
    out = tmp_path / "new"
    assert check_sub_runs(out, ["a", "b"]) == [out / "a", out / "b"]
    assert check_sub_run_dirs(out, ["fedsb"]) == [out / "fedsb"]
    assert not out.exists()


def test_a_used_sub_run_is_refused_before_any_is_trained(tmp_path):
    (tmp_path / "fedit").mkdir()
    (tmp_path / "fedit" / "metrics.jsonl").write_text('{"round": 0, "stage": "init"}\n')
    used = re.escape(str(tmp_path / "fedit"))
    with pytest.raises(FederatedError, match=f"^{used}: already holds a run; pass --resume"):
        check_sub_run_dirs(tmp_path, ["fedsb", "fedit"])
    assert not (tmp_path / "fedsb").exists()


def test_sweep_into_a_file_is_refused(a_file):
    with pytest.raises(ConfigError, match="is a file, not a run directory"):
        run_sweep(RunConfig(), a_file, ["fedavg"], [4], None)


# -- paths in config files -------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "pre.toml").write_text("")
    (tmp_path / "sub").mkdir()
    config = tmp_path / "sub" / ".." / "run.toml"
    got = resolve_config_paths(RunConfig, {"pretrained": "pre.toml", "rounds": 3}, config)
    assert got == {"pretrained": str((tmp_path / "pre.toml").resolve()), "rounds": 3}
    # nothing there: left as written (relative to the current directory, the old meaning)
    assert resolve_config_paths(RunConfig, {"pretrained": "gone.toml"}, config) == {
        "pretrained": "gone.toml"
    }
    assert resolve_config_paths(RunConfig, {"pretrained": "/abs/x"}, config)["pretrained"] == (
        "/abs/x"
    )
    # a config class without path fields is left alone
    assert resolve_config_paths(PretrainConfig, {"pretrained": "pre.toml"}, config) == {
        "pretrained": "pre.toml"
    }


@pytest.mark.parametrize(
    ("name", "cls"), [("run.toml", RunConfig), ("finetune.toml", FinetuneConfig)]
)
def test_shipped_configs_name_the_pretrain_config_next_to_them(name, cls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository: a cwd-relative path would miss
    cfg = load_config(cls, REPO / "configs" / name)
    assert cfg.pretrained == str(REPO / "configs" / "pretrain-broad.toml")
    save_config(cfg, tmp_path / "saved.toml")  # what a run directory keeps: the absolute path
    assert load_config(cls, tmp_path / "saved.toml").pretrained == cfg.pretrained


def test_the_spelling_of_pretrained_does_not_change_the_backbone_cache_key(tmp_path, monkeypatch):
    """The backbone is cached by its PretrainConfig's hash: relative, absolute and
    config-relative spellings of configs/pretrain-broad.toml, and the preset's name (the default),
    find the same cached checkpoint."""
    monkeypatch.chdir(REPO)
    key = config_hash(load_config(PretrainConfig, "configs/pretrain-broad.toml"))
    assert config_hash(load_config(PretrainConfig, REPO / "configs" / "pretrain-broad.toml")) == key
    cached = tmp_path / "pretrain" / key / MODEL_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")  # resolve_pretrained only looks for it
    fine = load_config(FinetuneConfig, REPO / "configs" / "finetune.toml").pretrained
    absolute = str(REPO / "configs" / "pretrain-broad.toml")
    for spec in ("configs/pretrain-broad.toml", absolute, fine, "pretrain-broad"):
        assert resolve_pretrained(spec, tmp_path, SilentReporter()) == cached
