"""Compare two runs' metrics.jsonl row by row, ignoring wall-clock seconds.

Used to show that a refactoring moved no number:

    python scripts/compare_metrics.py BEFORE/metrics.jsonl AFTER/metrics.jsonl

prints "identical" (exit 0) or every differing key (exit 1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(path: Path) -> list[dict]:
    """The rows of ``path`` without their ``seconds`` (the only field that is not seeded)."""
    lines = path.read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines if x.strip()]


def main(before: str, after: str) -> int:
    """Print the rows that differ between two metrics files; 1 when any does."""
    a, b = rows(Path(before)), rows(Path(after))
    differences = [
        f"row {i} {key}: {x.get(key)!r} -> {y.get(key)!r}"
        for i, (x, y) in enumerate(zip(a, b))
        for key in sorted(set(x) | set(y))
        if x.get(key) != y.get(key)
    ]
    if len(a) != len(b):
        differences.append(f"{len(a)} rows -> {len(b)} rows")
    print("\n".join(differences) or f"identical ({len(a)} rows)")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
