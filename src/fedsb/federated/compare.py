"""Several federated methods on the same partition (``fedsb run --method a,b``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import apply_overrides
from ..reporter import Reporter
from ..training.pretrain import DrawHistory
from .config import RunConfig
from .engines import run_federated
from .server import RunResult, check_sub_run_dirs


def run_methods(
    base: RunConfig,
    methods: Sequence[str],
    out: Path,
    cache_dir: Path | None = None,
    reporter: Reporter | None = None,
    on_start: Callable[[str, Path], None] | None = None,
    on_history: DrawHistory | None = None,
) -> dict[str, RunResult]:
    """One run per method: ``out`` itself for one method, ``out/<method>`` for several.

    Every config is built and every sub-run checked before any is trained, so a bad method or
    a used sub-run fails at once. ``on_start(method, run_dir)`` is called before each run.
    """
    configs = {name: apply_overrides(base, [f"method={name!r}"]) for name in methods}
    if len(methods) > 1:
        check_sub_run_dirs(out, list(methods))
    results = {}
    for name, cfg in configs.items():
        run_dir = out / name if len(methods) > 1 else out
        if on_start is not None:
            on_start(name, run_dir)
        results[name] = run_federated(cfg, run_dir, cache_dir, reporter, on_history=on_history)
    return results
