"""``fedsb report``: report.html and LaTeX tables from run files."""

from __future__ import annotations

from .app import console, safe
from .options import RunArg


def print_report_outputs(report) -> None:
    """Where the figures, the LaTeX tables and report.html were written."""
    console.print(f"figures: {len(report.figures)} in [bold]{safe(report.figures[0].parent)}[/]")
    console.print(f"LaTeX tables and numbers: [bold]{safe(report.tex[0].parent)}[/]")
    console.print(f"wrote [bold]{safe(report.html)}[/]")


def report_cmd(run: RunArg) -> None:
    """Write report.html (figures embedded, tables, config, versions) and LaTeX tables in tex/."""
    from ..report.build import build_report

    print_report_outputs(build_report(run, f"fedsb report {run}"))
