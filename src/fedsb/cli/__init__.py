"""The ``fedsb`` command line: one Typer app, one module per command, all registered here.

Command modules define plain functions; this module alone wires them to the app (``app.py``
imports no command module, so nothing cycles).
"""

from __future__ import annotations

import sys
import traceback

import typer

from ..errors import FedsbError
from . import (
    classify,
    data_generate,
    data_inspect,
    data_preview,
    evaluate,
    export,
    finetune,
    model,
    paper,
    pretrain,
    report,
    run,
    sweep,
)
from .app import app, err_console, safe, state

__all__ = ["app", "main"]

data_app = typer.Typer(help="Generate, inspect and preview IQ data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
data_app.command("generate")(data_generate.generate)
data_app.command("inspect")(data_inspect.inspect)
data_app.command("preview")(data_preview.preview)

model_app = typer.Typer(help="Inspect backbones and adapters.", no_args_is_help=True)
app.add_typer(model_app, name="model")
model_app.command("info")(model.info)

app.command("pretrain")(pretrain.pretrain_cmd)
app.command("finetune")(finetune.finetune_cmd)
app.command("run")(run.run_cmd)
app.command("federate", help="Alias of [bold]fedsb run[/].")(run.run_cmd)
app.command("sweep")(sweep.sweep_cmd)
app.command("report")(report.report_cmd)
app.command("paper")(paper.paper_cmd)
app.command("evaluate")(evaluate.evaluate_cmd)
app.command("classify")(classify.classify_cmd)
app.command("export")(export.export_cmd)


def _command_index() -> str:
    """One line per leaf command, shown under ``fedsb --help``."""
    lines = []
    for group in app.registered_groups:
        sub = group.typer_instance
        for cmd in sub.registered_commands:
            doc = (cmd.callback.__doc__ or "").strip().splitlines()[0]
            lines.append(f"[bold]fedsb {group.name} {cmd.name}[/]  {doc}")
    for cmd in app.registered_commands:
        doc = (cmd.callback.__doc__ or "").strip().splitlines()[0]
        lines.append(f"[bold]fedsb {cmd.name or cmd.callback.__name__}[/]  {doc}")
    return "Every command:\n\n" + "\n\n".join(lines)


app.info.epilog = _command_index()


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input is one line on stderr and exit code 2 (``--debug``: traceback)."""
    try:
        app(args=argv, prog_name="fedsb")
    except FedsbError as exc:
        if state.debug:
            traceback.print_exc()
        err_console.print(f"[bold red]error:[/] {safe(exc)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
