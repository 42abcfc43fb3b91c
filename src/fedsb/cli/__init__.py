"""The ``fedsb`` command line: one Typer app, one module per command group."""

from __future__ import annotations

import sys
import traceback

from ..errors import FedsbError
from . import data, federated, model, report, train  # noqa: F401  (registers the commands)
from .app import app, err_console, safe, state

__all__ = ["app", "main"]


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
