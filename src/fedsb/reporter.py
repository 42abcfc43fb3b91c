"""Progress reporting without a UI dependency: the CLI passes a rich implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    """Where long steps report progress and short messages."""

    def task(self, description: str, total: int):  # -> ContextManager[Callable[[int], None]]
        """A context manager yielding ``advance(n)``."""
        ...

    def info(self, message: str) -> None:
        """A one-line status message."""
        ...


class SilentReporter:
    """Reports nothing (library use, tests)."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """Yield an ``advance(n)`` that does nothing."""
        yield lambda n: None

    def info(self, message: str) -> None:
        """Drop the message."""
        return None
