"""What a report is about: one run directory, or a directory of runs (methods, sweep cells).

A run directory is recognised by its ``metrics.jsonl``; ``load_study(path)`` takes ``path``
itself if it is one, else every run directory below it (one level, then two: a sweep keeps
cells in sub-directories). Each ``RunRecord`` holds what the report needs, read from the
files the run wrote; nothing is recomputed except scores from the saved predictions.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..evaluation.scoring import Predictions, load_predictions
from ..runs import (
    CONFIG_FILE,
    EVALUATION_FILE,
    METRICS_FILE,
    PARTITION_FILE,
    PREDICTIONS_FILE,
    read_json,
    read_rows,
)
from .checks import CONFIG, check, check_evaluation, check_partition, check_rows


@dataclass
class RunRecord:
    """One finished (or interrupted) run as the report sees it."""

    name: str
    path: Path
    config: dict[str, Any]
    config_text: str
    rows: list[dict[str, Any]]
    evaluation: dict[str, Any] | None = None  # evaluation.json
    partition: list[dict[str, Any]] | None = None
    _predictions: Predictions | None = field(default=None, repr=False)

    @property
    def method(self) -> str:
        """The method from the run's config (the run's name when the config has none)."""
        return str(self.config.get("method", self.name))

    @property
    def rank(self) -> int | None:
        """The adapter rank from the run's config; None when it has none."""
        rank = self.config.get("adapter", {}).get("rank")
        return int(rank) if rank is not None else None

    @property
    def final(self) -> dict[str, Any] | None:
        """The last ``final`` metrics row; None when the run did not finish."""
        rows = [r for r in self.rows if r.get("stage") == "final"]
        return rows[-1] if rows else None

    @property
    def rounds(self) -> list[dict[str, Any]]:
        """The metrics rows of the initialisation and of each round, in order."""
        return [r for r in self.rows if r.get("stage") in ("init", "round")]

    @property
    def finished(self) -> bool:
        """Whether the run wrote its final row."""
        return self.final is not None

    def predictions(self) -> Predictions | None:
        """The saved test predictions, loaded on first use; None when there are none."""
        if self._predictions is None and (self.path / PREDICTIONS_FILE).exists():
            self._predictions = load_predictions(self.path / PREDICTIONS_FILE)
        return self._predictions


def _config(path: Path) -> tuple[dict[str, Any], str]:
    """(parsed, text) of a run's config.toml; ({}, "") when there is none."""
    if not path.is_file():
        return {}, ""
    try:
        text = path.read_text(encoding="utf-8")
        config = tomllib.loads(text)
    except UnicodeDecodeError:
        raise DataError(path, "not UTF-8 text") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise DataError(path, f"invalid TOML ({exc})".splitlines()[0]) from None
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror or exc})") from None
    check(path, config, CONFIG)
    return config, text


def load_run(path: Path, name: str | None = None) -> RunRecord:
    """The files of one run directory, loaded and checked.

    A one-line DataError naming the file when one is unreadable or holds something other than
    what the run wrote.
    """
    path = Path(path)
    metrics = path / METRICS_FILE
    if not metrics.is_file():
        raise DataError(path, f"not a run directory (no {METRICS_FILE})")
    rows = read_rows(metrics)
    check_rows(metrics, rows)
    config, text = _config(path / CONFIG_FILE)
    evaluation = partition = None
    if (path / EVALUATION_FILE).is_file():
        evaluation = read_json(path / EVALUATION_FILE)
        check_evaluation(path / EVALUATION_FILE, evaluation)
    if (path / PARTITION_FILE).is_file():
        partition = read_json(path / PARTITION_FILE)
        names = ((evaluation or {}).get("test") or {}).get("class_names")
        check_partition(path / PARTITION_FILE, partition, names)
    return RunRecord(name or path.name, path, config, text, rows, evaluation, partition)


def find_runs(root: Path) -> list[Path]:
    """``root`` if it is a run directory, else the run directories one or two levels below."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "not a directory" if root.exists() else "no such directory")
    if (root / METRICS_FILE).is_file():
        return [root]
    found = sorted(p.parent for p in root.glob(f"*/{METRICS_FILE}"))
    if not found:
        found = sorted(p.parent for p in root.glob(f"*/*/{METRICS_FILE}"))
    if not found:
        raise DataError(root, f"no run directories here (no {METRICS_FILE} below it)")
    return found


@dataclass
class Study:
    """The runs of one report; ``primary`` is the one whose details are shown (fedsb first)."""

    root: Path
    runs: list[RunRecord]

    @property
    def primary(self) -> RunRecord:
        """The fedsb run if there is one, else the first method's run (the first run if none)."""
        methods = self.by_method()
        if not methods:
            return self.runs[0]
        return methods.get("fedsb") or next(iter(methods.values()))

    def by_method(self) -> dict[str, RunRecord]:
        """One finished run per method, in a stable order.

        Per method, the one with the most rounds (the main run, not a short side run such as a
        benchmark's engine comparison), then the first found.
        """
        out: dict[str, RunRecord] = {}
        for run in self.runs:
            if not run.finished:
                continue
            best = out.get(run.method)
            if best is None or len(run.rounds) > len(best.rounds):
                out[run.method] = run
        return out


def load_study(root: Path) -> Study:
    """Every run below ``root``, named by its path relative to ``root``."""
    root = Path(root)
    paths = find_runs(root)
    names = [str(p.relative_to(root)) if p != root else root.name for p in paths]
    return Study(root, [load_run(p, n) for p, n in zip(paths, names)])
