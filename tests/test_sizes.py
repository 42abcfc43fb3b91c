"""Guardrails on size: no function of src/fedsb over 60 lines and no module over 400."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "fedsb"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
MODULES = sorted(SRC.rglob("*.py"))


def function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(name, first line, length in lines) of every function and method in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.name, node.lineno, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_the_length_measure_counts_decorators_out_and_bodies_in(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        "@staticmethod\ndef f():\n    x = 1\n    return x\n\n\n"
        "class A:\n    def g(self):\n        pass\n"
    )
    assert function_lengths(sample) == [("f", 2, 3), ("g", 8, 2)]


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(SRC)) for p in MODULES])
def test_module_and_function_sizes(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(SRC)}: {lines} lines"
    long = [
        f"{name} (line {line}): {n} lines"
        for name, line, n in function_lengths(path)
        if n > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.relative_to(SRC)}: " + "; ".join(long)
