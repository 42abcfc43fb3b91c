"""The sweep behind ``fedsb sweep``: methods x ranks on one partition, one run per cell.

Resumable: cells are ``OUT/<method>-r<rank>`` (``OUT/<method>`` for methods without a rank: fedavg,
head-only, centralized). A cell with a final row is kept; one with a checkpoint is resumed; one
that died before its first checkpoint is started again. The sweep writes ``sweep.json`` (one
entry per cell: accuracy, ECE after scaling, bytes per round per client, total bytes); the caller
draws the Pareto figure of ``pareto_points`` (drawing is the report layer's, above this one);
``fedsb report OUT`` then reports every cell.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from ..config import apply_overrides
from ..errors import ConfigError
from ..reporter import Reporter, SilentReporter
from ..runs import STATE_FILE, RunDir, check_sub_runs, make_dir, write_json
from .config import FED_METHODS, RunConfig
from .engines import run_federated
from .methods import METHODS, is_pooled
from .task import settled

RANKLESS = tuple(name for name, m in METHODS.items() if not m.ranked)  # adapter.rank unused
SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class Cell:
    """One sweep cell: a method and its adapter rank (None for a rankless method)."""

    method: str
    rank: int | None

    @property
    def name(self) -> str:
        """The cell's directory name: ``<method>-r<rank>``, or ``<method>`` without a rank."""
        return self.method if self.rank is None else f"{self.method}-r{self.rank}"


def plan_cells(methods: Sequence[str], ranks: Sequence[int]) -> list[Cell]:
    """The cells of methods x ranks (one per rankless method); unknown methods, bad ranks fail."""
    unknown = [m for m in methods if m not in FED_METHODS]
    if unknown:
        choices = ", ".join(FED_METHODS)
        raise ConfigError(f"--methods: unknown {unknown[0]!r} (choose from {choices})")
    if not ranks or any(r < 1 for r in ranks):
        raise ConfigError(f"--ranks: positive integers required, got {list(ranks)}")
    cells = []
    for method in methods:
        cells += [Cell(method, None)] if method in RANKLESS else [Cell(method, r) for r in ranks]
    return cells


def parse_cell(name: str) -> Cell | None:
    """The cell a directory name stands for (:attr:`Cell.name`), or None: not a cell's name."""
    if name in RANKLESS and name in FED_METHODS:
        return Cell(name, None)
    method, sep, rank = name.rpartition("-r")
    if sep and method in FED_METHODS and method not in RANKLESS and rank.isdigit():
        return Cell(method, int(rank)) if int(rank) > 0 and str(int(rank)) == rank else None
    return None


def found_cells(out: Path, planned: Sequence[Cell]) -> list[Cell]:
    """``planned``, then every other cell directory in ``out`` (an earlier sweep's ranks)."""
    names = {c.name for c in planned}
    found = [parse_cell(p.name) for p in sorted(Path(out).iterdir()) if p.is_dir()]
    extra = [c for c in found if c and c.name not in names]
    order = {m: i for i, m in enumerate(FED_METHODS)}
    return list(planned) + sorted(extra, key=lambda c: (order[c.method], c.rank or 0))


def cell_state(path: Path) -> str:
    """The cell's state: "done", "resume" (has a checkpoint), or "new" (nothing usable yet)."""
    rows = RunDir(path).rows() if (path / "metrics.jsonl").exists() else []
    if any(r.get("stage") == "final" for r in rows):
        return "done"
    return "resume" if (path / STATE_FILE).exists() else "new"


def summary(path: Path, cell: Cell) -> dict:
    """A finished cell's ``sweep.json`` entry, from its final metrics row."""
    rows = RunDir(path).rows()
    final = next(r for r in reversed(rows) if r.get("stage") == "final")
    init = next((r for r in rows if r.get("stage") == "init"), {})
    return {
        "cell": cell.name,
        "method": cell.method,
        "rank": cell.rank,
        "accuracy": final["test_acc"],
        "accuracy_snr_ge_10": final.get("test_acc_snr_ge_10"),
        "ece": final.get("test_ece_calibrated"),
        "trained_parameters": final["trained_parameters"],
        "bytes_per_round_per_client": final["bytes_per_round_per_client"],
        "round0_bytes": init.get("cumulative_bytes", 0),
        "total_bytes": final["total_bytes"],
    }


def _cell_config(base: RunConfig, cell: Cell) -> RunConfig:
    overrides = [f"method={cell.method!r}"]
    if cell.rank is not None:
        overrides.append(f"adapter.rank={cell.rank}")
    return apply_overrides(base, overrides)


def run_cell(cfg: RunConfig, path: Path, state: str, cache_dir: Path | None, reporter) -> None:
    """Run, resume or restart one cell (``state`` from :func:`cell_state`, not "done")."""
    if state == "new" and path.is_dir():
        shutil.rmtree(path)  # died before its first checkpoint: nothing to keep
    run_federated(None if state == "resume" else cfg, path, cache_dir, reporter, state == "resume")


def _quiet_cell(cfg: RunConfig, path: Path, state: str, cache_dir: Path | None) -> None:
    """:func:`run_cell` in a worker process: no progress bars."""
    run_cell(cfg, path, state, cache_dir, SilentReporter())


def run_sweep(
    base: RunConfig,
    out: Path,
    methods: Sequence[str],
    ranks: Sequence[int],
    cache_dir: Path | None,
    reporter: Reporter | None = None,
    on_cell: Callable[[Cell, str], None] | None = None,
    jobs: int = 1,
) -> list[dict]:
    """Run (or finish) every cell; returns the summaries, also written to ``sweep.json``.

    ``jobs`` > 1 runs that many cells at once, each in its own process (give each
    ``threads = 1`` or a share of the cores). The backbone is pretrained first, here, so the
    workers only read it; every cell's numbers are those of a one-at-a-time sweep.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs: must be an integer >= 1, got {jobs!r}")
    reporter = reporter or SilentReporter()
    cells = plan_cells(methods, ranks)
    check_sub_runs(out, [c.name for c in cells])  # OUT is no run itself (its cells go inside)
    out = make_dir(out)
    states = {c: cell_state(out / c.name) for c in cells}
    todo = [c for c in cells if states[c] != "done"]
    announce = on_cell or (lambda cell, state: None)
    if jobs > 1 and len(todo) > 1:
        for cell in cells:
            announce(cell, states[cell])
        settled(base, cache_dir, reporter)  # pretrain once, before the workers start
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(_quiet_cell, _cell_config(base, c), out / c.name, states[c], cache_dir)
                for c in todo
            ]
            try:
                with reporter.task("sweep cells", len(futures)) as advance:
                    for future in as_completed(futures):
                        future.result()  # a failed cell stops the sweep
                        advance(1)
                        _write_finished(out, cells)
            except BaseException:
                for future in futures:
                    future.cancel()  # the cells not started yet; running ones checkpoint
                raise
    else:
        for cell in cells:
            announce(cell, states[cell])  # just before it runs
            if states[cell] != "done":
                run_cell(_cell_config(base, cell), out / cell.name, states[cell], cache_dir,
                         reporter)  # fmt: skip
                _write_finished(out, cells)
    return _write_finished(out, cells)


def _write_finished(out: Path, cells: Sequence[Cell]) -> list[dict]:
    """Write ``sweep.json`` of every finished cell of ``out``; return the planned ones' entries.

    The planned cells come first, then the others ``out`` holds: several sweeps into one
    directory (other ranks for one method) make one table and one figure.
    """
    every = [c for c in found_cells(out, cells) if cell_state(out / c.name) == "done"]
    results = [summary(out / c.name, c) for c in every]
    write_json(out / SWEEP_FILE, results)
    planned = {c.name for c in cells}
    return [r for r in results if r["cell"] in planned]


def pareto_points(results: Sequence[dict]) -> list[dict]:
    """The cells of the Pareto figure: federated ones only, a rankless cell at rank 0.

    Pooled runs are left out: they send no bytes.
    """
    return [{**r, "rank": r["rank"] or 0} for r in results if not is_pooled(r["method"])]


def curve_gaps(results: Sequence[dict], method: str = "fedsb") -> list[dict]:
    """Where ``method``'s accuracy-bytes curve stands against every other federated cell.

    For each other cell: the best accuracy a ``method`` cell reaches for at most that cell's
    total bytes, and the gap in accuracy points (None: no ``method`` cell is that cheap).
    ``method``'s curve lies on or above a cell when its gap is >= 0. Empty when ``method`` has
    no cell.
    """
    points = pareto_points(results)
    own = [r for r in points if r["method"] == method]
    if not own:
        return []  # no curve to judge
    out = []
    for cell in points:
        if cell["method"] == method:
            continue
        cheaper = [r["accuracy"] for r in own if r["total_bytes"] <= cell["total_bytes"]]
        best = max(cheaper) if cheaper else None
        gap = None if best is None else 100 * (best - cell["accuracy"])
        out.append({"cell": cell["cell"], "best": best, "gap_points": gap})
    return out
