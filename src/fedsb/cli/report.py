"""``fedsb report``, ``fedsb paper``, ``fedsb evaluate``: what a person looks at, from run files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, console, err_console, safe

RunArg = Annotated[
    Path,
    typer.Argument(help="A run directory, or a directory of runs (methods, sweep cells)."),
]


def _print_outputs(report) -> None:
    console.print(f"figures: {len(report.figures)} in [bold]{safe(report.figures[0].parent)}[/]")
    console.print(f"LaTeX tables and numbers: [bold]{safe(report.tex[0].parent)}[/]")
    console.print(f"wrote [bold]{safe(report.html)}[/]")


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
        err_console.print(f"[yellow]no PDF[/]: {safe(exc)}")
        return
    console.print(f"wrote [bold]{safe(pdf)}[/]")


@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[Path, typer.Option("--run", help="A finished run directory.")],
    data: Annotated[
        Path,
        typer.Option("--data", help="npz cache, SigMF file/archive/directory, or RadioML file."),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="JSON to write (default RUN/eval.json).")
    ] = None,
    drop_unknown: Annotated[
        bool, typer.Option("--drop-unknown", help="Leave out classes the model does not know.")
    ] = False,
) -> None:
    """Evaluate a run's model on any labelled IQ data: accuracy overall, per SNR and per class,
    calibration before and after the run's temperature; writes eval.json."""
    from rich.table import Table

    from ..evaluation.evaluate_run import evaluate_run
    from ..report.tables import num, pct
    from ..runs import check_file_out, write_json

    target = check_file_out(out or Path(run) / "eval.json")
    result, _ = evaluate_run(run, data, drop_unknown)
    write_json(target, result)
    before, after = result["calibration_before"], result["calibration_after"]
    title = f"{data.name}: {result['records']} records, T = {result['temperature']:.2f}"
    table = Table(title=safe(title))
    table.add_column("SNR (dB)")
    table.add_column("records", justify="right")
    table.add_column("accuracy %", justify="right")
    table.add_row("all", str(result["count"]), pct(result["accuracy"]))
    table.add_row(">= 10", "", pct(result["accuracy_snr_ge_10"]), end_section=True)
    for row in result["per_snr"]:
        table.add_row(safe(row["snr"]), str(row["count"]), pct(row["accuracy"]))
    console.print(table)
    console.print(
        f"ECE {pct(before['ece'])} % -> {pct(after['ece'])} %, Brier {num(before['brier'])} -> "
        f"{num(after['brier'])}, NLL {num(before['nll'])} -> {num(after['nll'])} "
        "(T = 1 -> the run's fitted T)"
    )
    if result["windowed"]:
        console.print(f"records of {result['record_length']} samples were cut into windows")
    console.print(f"wrote [bold]{safe(target)}[/]")
