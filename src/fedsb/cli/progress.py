"""A rich progress bar as a context manager yielding an ``advance(n)`` callback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .app import err_console, safe


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Show a bar on stderr (so stdout stays clean for tables) while the body runs."""
    columns = (
        TextColumn("{task.description}", markup=False),  # plain text: no markup, no emoji
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


class RichReporter:
    """``training.reporter.Reporter`` on the terminal: rich bars and dim status lines."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """Show a progress bar of ``total`` steps while the body runs; yields ``advance(n)``."""
        with progress_bar(description, total) as advance:
            yield advance

    def info(self, message: str) -> None:
        """Print a dim status line on stderr."""
        err_console.print(f"[dim]{safe(message)}[/]", highlight=False)
