"""``fedsb report RUN`` and ``fedsb paper RUN``: everything a person looks at, from the run files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, console, err_console

RunArg = Annotated[
    Path,
    typer.Argument(help="A run directory, or a directory of runs (methods, sweep cells)."),
]


def _print_outputs(report) -> None:
    console.print(f"figures: {len(report.figures)} in [bold]{report.figures[0].parent}[/]")
    console.print(f"LaTeX tables and numbers: [bold]{report.tex[0].parent}[/]")
    console.print(f"wrote [bold]{report.html}[/]")


@app.command("report")
def report_cmd(run: RunArg) -> None:
    """Write report.html (figures embedded, tables, config, versions) and LaTeX tables in tex/."""
    from ..report.build import build_report

    _print_outputs(build_report(run, f"fedsb report {run}"))


@app.command("paper")
def paper_cmd(run: RunArg) -> None:
    """Build paper.pdf from the shipped LaTeX template (and report.html); without TeX, say how
    to install it and still write the HTML."""
    from ..report.build import build_report
    from ..report.latex import TexMissing, build_pdf

    report = build_report(run, f"fedsb paper {run}")
    _print_outputs(report)
    try:
        pdf = build_pdf(Path(run))
    except TexMissing as exc:
        err_console.print(f"[yellow]no PDF[/]: {exc}")
        return
    console.print(f"wrote [bold]{pdf}[/]")
