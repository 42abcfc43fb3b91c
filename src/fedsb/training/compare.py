"""Several fine-tuning methods side by side (``fedsb finetune --method a,b``).

Also the share of the full fine-tuning gain each one recovers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import apply_overrides
from ..reporter import Reporter
from ..runs import check_sub_runs
from .config import FinetuneConfig
from .finetune import FinetuneResult, finetune


def finetune_methods(
    base: FinetuneConfig,
    methods: Sequence[str],
    out: Path,
    cache_dir: Path | None = None,
    reporter: Reporter | None = None,
    on_history: Callable[..., object] | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, FinetuneResult]:
    """One run per method: ``out`` itself for one method, ``out/<method>`` for several.

    All are checked before any is trained, so a used sub-run fails before hours of training.
    """
    if len(methods) > 1:
        check_sub_runs(out, list(methods))
    results = {}
    for name in methods:
        cfg = apply_overrides(base, [*overrides, f"adapter.method={name!r}"])
        run_dir = out / name if len(methods) > 1 else out
        results[name] = finetune(cfg, run_dir, cache_dir, reporter, on_history)
    return results


def gain_recovered(result: FinetuneResult, full: FinetuneResult | None) -> float | None:
    """``result``'s accuracy gain over the frozen backbone as a fraction of full fine-tuning's.

    None when there is no full run or full fine-tuning gained nothing (no scale).
    """
    if full is None:
        return None
    scale = full.test.accuracy - full.frozen.accuracy
    if not scale > 0:
        return None
    return (result.test.accuracy - result.frozen.accuracy) / scale
