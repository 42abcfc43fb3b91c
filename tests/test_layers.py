"""The package layers: every fedsb import goes down (or sideways), no cycles, no private names.

Each module of src/fedsb is parsed with ``ast`` (imports inside functions included), so a lazy
import cannot hide an upward edge or a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "fedsb"

# Lowest first: a module may import only from its own layer or lower ones. The key is a module or
# a package (its submodules included); the longest matching key wins.
LAYERS = {
    "fedsb": 0,  # fedsb/__init__.py
    "fedsb.errors": 0,
    "fedsb.config": 0,
    "fedsb.paths": 0,
    "fedsb.reporter": 0,  # the Reporter protocol: no fedsb imports
    "fedsb.devices": 0,  # where tensors live: imports only errors
    "fedsb.signals": 1,
    "fedsb.io": 2,
    # runs.py imports only config, errors and io (no torch): below models, whose checkpoint
    # module needs its file names (MODEL_FILE) and json_safe.
    "fedsb.runs": 2,
    "fedsb.images": 3,
    "fedsb.data": 4,
    "fedsb.models": 5,
    "fedsb.training": 7,
    "fedsb.evaluation": 8,
    "fedsb.federated": 9,
    "fedsb.report": 10,
    "fedsb.cli": 11,
    "fedsb.__main__": 11,  # ``python -m fedsb`` = the CLI
}


def module_name(path: Path) -> str:
    """``src/fedsb/io/cache.py`` -> ``fedsb.io.cache``; a package is its ``__init__``."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / ROOT).rglob("*.py"))}


MODULES = all_modules()


def layer_of(module: str) -> int | None:
    """The layer of the longest key that is ``module`` or one of its packages; None: unassigned."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS and (n > 1 or module == ROOT):
            return LAYERS[key]
    return None


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module name that ``from <level dots><module> import ...`` reads from."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def typing_only(tree: ast.AST) -> set[int]:
    """The ids of the import nodes under ``if TYPE_CHECKING:`` (never run, so never a cycle)."""
    guarded = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and ast.unparse(test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            guarded |= {id(n) for b in node.body for n in ast.walk(b)}
    return guarded


def imports(module: str, path: Path):
    """``(line, target, imported name or None, typing only)`` per fedsb import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    guarded = typing_only(tree)
    for node in ast.walk(tree):
        typing = id(node) in guarded
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == ROOT:
                    yield node.lineno, alias.name, None, typing
        elif isinstance(node, ast.ImportFrom):
            source = resolve(module, is_package, node)
            if source.split(".")[0] != ROOT:
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                # ``from pkg import mod`` imports the module pkg.mod; otherwise a name of source.
                if sub in MODULES:
                    yield node.lineno, sub, None, typing
                else:
                    yield node.lineno, source, alias.name, typing


def edges():
    """Every fedsb import of every module: ``(module, line, target, name, typing only)``."""
    for module, path in MODULES.items():
        for line, target, name, typing in imports(module, path):
            yield module, line, target, name, typing


def where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(SRC.parent)}:{line}"


def test_every_module_has_a_layer():
    missing = [str(MODULES[m].relative_to(SRC.parent)) for m in MODULES if layer_of(m) is None]
    assert not missing, "modules outside the layer table: " + ", ".join(missing)


def test_imports_go_down():
    bad = []
    for module, line, target in sorted({(m, n, t) for m, n, t, _, _ in edges()}):
        mine, theirs = layer_of(module), layer_of(target)
        if mine is None or theirs is None or theirs > mine:
            bad.append(
                f"{where(module, line)}: {module} (layer {mine}) imports {target} (layer {theirs})"
            )
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_private_names_across_modules():
    bad = []
    for module, line, target, name, _ in edges():
        private = name if name is not None else target.rsplit(".", 1)[-1]
        if private.startswith("_") and not private.startswith("__") and target != module:
            bad.append(f"{where(module, line)}: {module} imports {private} from {target}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    lines: dict[tuple[str, str], int] = {}
    for module, line, target, _, typing in edges():
        if target in MODULES and target != module and not typing:
            graph[module].add(target)
            lines.setdefault((module, target), line)
    bad = []
    for component in strongly_connected(graph):
        inside = set(component)
        links = [
            f"  {where(m, lines[m, t])}: {m} imports {t}"
            for m in component
            for t in sorted(graph[m] & inside)
        ]
        bad.append("cycle " + " <-> ".join(component) + "\n" + "\n".join(links))
    assert not bad, "import cycles:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set(), "c": {"c"}}, []),
        ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]]),
    ],
)
def test_strongly_connected_finds_cycles(graph, expected):
    assert sorted(strongly_connected(graph)) == expected


def test_relative_imports_resolve():
    node = ast.parse("from ..config import x").body[0]
    assert resolve("fedsb.federated.flower.node", False, node) == "fedsb.federated.config"
    assert resolve("fedsb.federated.flower", True, node) == "fedsb.federated.config"
    node = ast.parse("from . import data").body[0]
    assert resolve("fedsb.cli.app", False, node) == "fedsb.cli"
    assert layer_of("fedsb.federated.flower.node") == 9
    assert layer_of("fedsb.configx") is None
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n")
    assert len(typing_only(tree)) == 2  # the ImportFrom and its alias
