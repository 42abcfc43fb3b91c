"""The input budget: how many bytes one reader may allocate for what a file claims to hold.

A few-KB file can claim terabytes (an .npz header, an HDF5 shape, a tar member size, a
gzip bomb). Every reader checks such claims here *before* allocating, so a hostile or corrupt
file fails with a one-line error instead of a MemoryError or a machine that swaps to death.
The budget is ``FEDSB_INPUT_BUDGET`` ("8G", "512M", "100k", "1.5T", a plain byte count; units
are powers of 1000, "Gi"-style units powers of 1024), default half the physical memory.
"""

from __future__ import annotations

import math
import os
import re
from fractions import Fraction
from pathlib import Path

from ..errors import ConfigError, DataError

ENV_VAR = "FEDSB_INPUT_BUDGET"
#: Used when the machine cannot report its memory (non-POSIX): 4 GB.
FALLBACK_BUDGET = 4 * 10**9
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_PREFIXES = ("", "k", "M", "G", "T", "P")
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?)b?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in ``text`` ("8G" = 8e9, "8Gi" = 8 * 2**30, "100k", "4096"); else ValueError."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(text)
    number, unit, binary = match.groups()
    base = 1024 if binary else 1000
    if binary and not unit:
        raise ValueError(text)
    return int(Fraction(number) * base ** _UNITS[unit.lower()])


def _physical_memory() -> int | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def input_budget() -> int:
    """The budget in bytes: ``FEDSB_INPUT_BUDGET`` if set, else half the physical memory."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        memory = _physical_memory()
        return FALLBACK_BUDGET if memory is None else memory // 2
    try:
        value = parse_size(raw)
    except ValueError:
        raise ConfigError(
            f"{ENV_VAR}: {raw!r} is not a size; use e.g. 8G, 512M, 100k or a byte count"
        ) from None
    if value <= 0:
        raise ConfigError(f"{ENV_VAR}: {raw!r} must be more than 0 bytes")
    return value


def human_size(nbytes: int | float) -> str:
    """``nbytes`` in decimal units with one decimal: "12.0 GB", "8.0 TB", "512 B"."""
    if nbytes < 1000:
        return f"{int(nbytes)} B"
    exponent = min(int(math.log10(nbytes) // 3), len(_PREFIXES) - 1)
    return f"{nbytes / 1000**exponent:.1f} {_PREFIXES[exponent]}B"


def _suggestion(nbytes: int) -> str:
    """The smallest whole-unit FEDSB_INPUT_BUDGET value that admits ``nbytes``."""
    exponent = max(1, min(int(math.log10(max(nbytes, 1)) // 3), len(_PREFIXES) - 1))
    return f"{-(-nbytes // 1000**exponent)}{_PREFIXES[exponent]}"


def check_budget(
    path: str | Path | None,
    claimed_bytes: int,
    what: str,
    detail: str | None = None,
    verb: str = "claims",
) -> None:
    """DataError if ``claimed_bytes`` (what ``what`` in ``path`` would need) is over budget.

    Message: "x.npz: member 'iq' claims 8.0 TB (10^12 complex64 samples), over the 12.0 GB
    input budget; set FEDSB_INPUT_BUDGET=8T to raise it".
    """
    budget = input_budget()
    if claimed_bytes <= budget:
        return
    extra = f" ({detail})" if detail else ""
    claim, limit = human_size(claimed_bytes), human_size(budget)
    if claim == limit:  # too close to tell apart when rounded
        claim, limit = f"{claimed_bytes:,} bytes", f"{budget:,}-byte"
    raise DataError(
        path,
        f"{what} {verb} {claim}{extra}, over the {limit} input budget; "
        f"set {ENV_VAR}={_suggestion(claimed_bytes)} to raise it",
    )


def exceeded(path: str | Path | None, what: str) -> DataError:
    """The error for input that turned out bigger than the budget (no size was claimed)."""
    limit = human_size(input_budget())
    return DataError(
        path,
        f"{what} more than the {limit} input budget; set {ENV_VAR} above "
        f"{_suggestion(input_budget())} to raise it",
    )


def count_text(count: int) -> str:
    """An element count for messages: "10^12" for exact powers of ten, else "1,234,567"."""
    if count >= 10**6 and str(count).rstrip("0") == "1":
        return f"10^{len(str(count)) - 1}"
    return f"{count:,}"
