"""The root Typer app and the state shared by every command (``--debug``)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


@dataclass
class State:
    debug: bool = False


state = State()

app = typer.Typer(
    help="fedsb: federated LoRA-SB fine-tuning of a vision classifier over radio-signal images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        console.print(f"fedsb {version('fedsb')}")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Federated LoRA-SB fine-tuning over radio-signal images."""
    state.debug = debug


from . import data, federated, model, report, train  # noqa: E402,F401  (registers the commands)
