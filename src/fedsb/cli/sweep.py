"""``fedsb sweep``: methods x ranks on one partition, then the table and the Pareto figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .app import console, safe
from .options import DEFAULT_CACHE, DEFAULT_RUN_CONFIG, CacheOpt, RunConfigOpt, SetOpt
from .progress import RichReporter
from .tables import print_wide, sweep_table

STATE_WORDS = {"done": "done, kept", "resume": "resuming", "new": "running"}


def sweep_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Sweep directory (one run per cell).")],
    ranks: Annotated[str, typer.Option(help="Comma list of adapter ranks.")] = "4,8,16,32,64",
    methods: Annotated[str, typer.Option(help="Comma list of methods.")] = "fedsb,fedit,ffa,fedavg",
    rounds: Annotated[int | None, typer.Option(help="Federated rounds per cell.")] = None,
    config: RunConfigOpt = None,
    overrides: SetOpt = None,
    cache: CacheOpt = DEFAULT_CACHE,
    jobs: Annotated[
        int, typer.Option(help="Cells run at once, each in its own process (with --set threads=1).")
    ] = 1,
) -> None:
    """Methods x ranks on one partition: a table (accuracy, ECE, bytes) and the Pareto figure.

    Resumable: run it again to finish the cells that are missing or were interrupted. The
    table and figure hold every finished cell of OUT (another sweep's ranks for one method too).
    """
    from ..config import load_config
    from ..federated.config import RunConfig
    from ..federated.sweep import SWEEP_FILE, curve_gaps, pareto_points, run_sweep
    from ..report.figures import pareto_figure

    rank_list = parse_ranks(ranks)
    sets = list(overrides or []) + ([f"rounds={rounds}"] if rounds else [])
    base = load_config(RunConfig, config if config is not None else DEFAULT_RUN_CONFIG, sets)
    method_list = [m.strip() for m in methods.split(",") if m.strip()]

    def announce(cell, state: str) -> None:
        console.print(f"[bold]{safe(cell.name)}[/]: {STATE_WORDS[state]}")

    run_sweep(base, out, method_list, rank_list, cache, RichReporter(), announce, jobs)
    results = json.loads((out / SWEEP_FILE).read_text())  # every finished cell of OUT
    points = pareto_points(results)
    if points:
        pareto_figure(points, out / "figures" / "pareto.png")
    print_wide(
        sweep_table(results, f"sweep: {base.partition.clients} clients, {base.rounds} rounds")
    )
    gaps = curve_gaps(results)
    if gaps:
        console.print(curve_line(gaps))
    console.print(
        f"wrote [bold]{safe(out)}[/] (sweep.json, figures/pareto.png; `fedsb report {safe(out)}`)"
    )


def curve_line(gaps: list[dict]) -> str:
    """One line: how many other cells Fed-SB's curve lies on or above, and the worst miss."""
    met = [g for g in gaps if g["gap_points"] is not None and g["gap_points"] >= 0]
    line = f"fedsb's curve is on or above {len(met)} of {len(gaps)} other cells"
    below = [g for g in gaps if g["gap_points"] is not None and g["gap_points"] < 0]
    if below:
        worst = min(below, key=lambda g: g["gap_points"])
        line += f"; most below {safe(worst['cell'])} ({worst['gap_points']:+.1f} points)"
    cheaper = [g["cell"] for g in gaps if g["gap_points"] is None]
    if cheaper:
        line += f"; cheaper than any fedsb cell: {safe(', '.join(cheaper))}"
    return line


def parse_ranks(text: str) -> list[int]:
    """``--ranks 4,8`` -> ``[4, 8]``; anything but integers is a ConfigError naming --ranks."""
    from ..errors import ConfigError

    try:
        return [int(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise ConfigError(f"--ranks: comma list of integers expected, got {text!r}") from None
