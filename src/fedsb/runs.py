"""Run directories: a run's file names, ``RunDir``, atomic JSON writes, shared checks, readers.

``RunDir`` holds config, metrics.jsonl and figures/. The checks and readers serve everything
that writes or reads runs: is an ``--out`` usable, does it hold a run, the rows of a
``metrics.jsonl``, a JSON file.

No torch here, so ``fedsb report`` stays light: checkpoints live in ``models/checkpoint.py``.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from pathlib import Path
from typing import Any

from .config import save_config
from .errors import ConfigError, DataError
from .io.cache import atomic_file

# The files of a run directory (and of the report built from runs).
CONFIG_FILE = "config.toml"  # the resolved config
METRICS_FILE = "metrics.jsonl"  # one JSON row per epoch / round / stage
MODEL_FILE = "model.safetensors"  # the backbone, or the adapted / merged model
ADAPTER_FILE = "adapter.safetensors"  # the adapter tensors only
STATE_FILE = "state.safetensors"  # a federated run's resume checkpoint
BASIS_FILE = "basis.safetensors"  # the LoRA-SB basis shared by every client
PARTITION_FILE = "partition.json"  # the client plans of a federated run
PREDICTIONS_FILE = "predictions.npz"  # test-set logits of a run, for figures and re-scoring
EVALUATION_FILE = "evaluation.json"  # score() of the test set and the calibration fit
REPORT_FILE = "report.html"  # ``fedsb report``

log = logging.getLogger(__name__)


def check_writable(directory: str | Path, name: str | Path | None = None) -> None:
    """DataError ``<name>: cannot write here (<reason>)`` unless files can be made in ``directory``.

    ``directory`` may exist or be creatable below its nearest existing ancestor. A file is
    created and removed to find out: permission bits do not stop root, a read-only mount does.
    """
    directory = Path(directory)
    name = directory if name is None else name
    existing = directory
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise DataError(name, "cannot write here (Not a directory)")
        probe = existing / f".fedsb-probe-{secrets.token_hex(4)}"
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise DataError(name, f"cannot write here ({exc.strerror or exc})") from None


def check_out(path: str | Path) -> Path:
    """An ``--out`` run directory that can be written; nothing is created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out: {path} is a file, not a run directory")
    check_writable(path)
    return path


def check_file_out(path: str | Path) -> Path:
    """An output file (``evaluate --out``) that can be written; nothing is created."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, "cannot write here (Is a directory)")
    check_writable(path.parent, path)
    return path


def make_dir(path: str | Path) -> Path:
    """``path`` (and its parents) as a directory, or a one-line error why it cannot be one."""
    path = check_out(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(path, f"cannot write here ({exc.strerror or exc})") from None
    return path


def holds_run(path: str | Path) -> bool:
    """A directory holds a run once it has a ``metrics.jsonl`` or a ``config.toml``."""
    return (Path(path) / METRICS_FILE).exists() or (Path(path) / CONFIG_FILE).exists()


def check_sub_runs(out: str | Path, names: list[str]) -> list[Path]:
    """``--method a,b``: sub-runs go to ``OUT/<name>``, so ``OUT`` must not be a run itself.

    Its files would be mixed with the sub-runs'. Checked before anything is trained.
    """
    out = check_out(out)
    if holds_run(out):
        raise ConfigError(
            f"out: {out} already holds a run ({METRICS_FILE} or {CONFIG_FILE}); several methods "
            "write one sub-run each into OUT/<method>: pass a new or empty --out"
        )
    return [out / name for name in names]


def _object(row: Any, path: Path, number: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataError(path, f"line {number} is not a JSON object (got {type(row).__name__})")
    return row


def _row(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        raise DataError(path, f"line {number} is not JSON") from None
    return _object(row, path, number)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` ([] when there is none).

    Each row is written as one line with its newline, so a last line *without* a newline that
    does not parse is a row torn by a kill mid-write: it is dropped (and logged). Any other
    line that is not a JSON object is a DataError naming the file and the line.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError:
        raise DataError(path, "not UTF-8 text") from None
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror or exc})") from None
    tail = lines.pop()  # "" when the file ends with a newline
    rows = [_row(x, path, i) for i, x in enumerate(lines, 1) if x.strip()]
    if tail.strip():
        try:
            last = json.loads(tail)
        except (ValueError, RecursionError):
            log.warning("%s: dropped line %d, a row torn mid-write", path, len(lines) + 1)
        else:
            rows.append(_object(last, path, len(lines) + 1))
    return rows


def read_json(path: str | Path) -> Any:
    """A JSON file's content, or a one-line DataError."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise DataError(path, f"not readable JSON ({type(exc).__name__})") from None


def json_safe(value: Any) -> Any:
    """JSON-safe value: NaN/inf become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class RunDir:
    """One run's folder: ``config.toml``, ``metrics.jsonl``, checkpoints and ``figures/``."""

    def __init__(self, path: str | Path):
        """Create the folder, or a one-line error when ``path`` cannot be a run directory.

        It cannot when it is a file, below a file, or not writable.
        """
        self.path = make_dir(path)
        make_dir(self.path / "figures")

    def save_config(self, config: Any) -> None:
        """Write ``config`` as the run's ``config.toml``."""
        save_config(config, self.path / CONFIG_FILE)

    def log(self, **row: Any) -> None:
        """Append one JSON line to metrics.jsonl (flushed at once: a killed run keeps its rows)."""
        with open(self.path / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(json_safe(row), sort_keys=True) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        """The metrics rows; a row torn by a kill mid-write (the last line) is left out."""
        return read_rows(self.path / METRICS_FILE)

    def figure(self, name: str) -> Path:
        """The path of figure ``name`` in the run's ``figures/`` folder."""
        return self.path / "figures" / name


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON, written atomically; NaN is refused (JSON has none)."""
    path = check_file_out(path)
    with atomic_file(path) as handle:
        handle.write(json.dumps(data, indent=1, allow_nan=False).encode())
    return path
