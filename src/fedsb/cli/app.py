"""The root Typer app and the state shared by every command (``--debug``)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

import typer
from rich.console import Console
from rich.markup import escape

# Text from files, paths and configs is printed through `safe`; emoji codes (``:smile:``) and
# highlighting (recolouring numbers and paths) are off, so what is printed is what is there.
console = Console(emoji=False, highlight=False)
err_console = Console(stderr=True, emoji=False, highlight=False)


def safe(text: object) -> str:
    """``text`` escaped for rich markup: a label ``[/x]`` or a path ``[bold]x`` prints as is."""
    return escape(str(text))


def plain_console(**kwargs) -> Console:
    """A console like ``console`` (no emoji, no highlighting) with other settings, e.g. width."""
    return Console(emoji=False, highlight=False, **kwargs)


@dataclass
class State:
    """Options of the top-level callback that every command can read (``--debug``)."""

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
