"""``fedsb paper``: paper.pdf from the shipped LaTeX template, report.html on the way."""

from __future__ import annotations

from pathlib import Path

from .app import console, err_console, safe
from .options import RunArg
from .report import print_report_outputs


def paper_cmd(run: RunArg) -> None:
    """Build paper.pdf from the shipped LaTeX template (and report.html).

    Without TeX, say how to install it and still write the HTML.
    """
    from ..report.build import build_report
    from ..report.latex import TexMissing, build_pdf

    report = build_report(run, f"fedsb paper {run}")
    print_report_outputs(report)
    try:
        pdf = build_pdf(Path(run))
    except TexMissing as exc:
        err_console.print(f"[yellow]no PDF[/]: {safe(exc)}")
        return
    console.print(f"wrote [bold]{safe(pdf)}[/]")
