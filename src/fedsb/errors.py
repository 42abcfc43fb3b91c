"""Errors that the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations

from pathlib import Path


class FedsbError(Exception):
    """A problem with user input (a file, a config, an option): shown as one line, exit code 2."""


class DataError(FedsbError):
    """A data file cannot be used; the message starts with the file's path."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class ConfigError(FedsbError):
    """A configuration value or file is invalid; the message names the key."""
