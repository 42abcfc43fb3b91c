"""``fedsb pretrain``: a backbone trained on the source domain."""

from __future__ import annotations

from .app import console, safe
from .options import DEFAULT_CACHE, CacheOpt, ConfigOpt, OutOpt, SetOpt
from .progress import RichReporter
from .tables import snr_table


def pretrain_cmd(
    out: OutOpt, config: ConfigOpt = None, overrides: SetOpt = None, cache: CacheOpt = DEFAULT_CACHE
) -> None:
    """Pretrain a backbone on the source domain."""
    from ..config import load_config
    from ..report.curves import training_curve
    from ..training.config import PretrainConfig
    from ..training.pretrain import pretrain

    cfg = load_config(PretrainConfig, config, overrides or [])
    result = pretrain(cfg, out, cache, RichReporter(), training_curve)
    console.print(snr_table("source-domain test accuracy (%)", {cfg.model.arch: result.test}))
    console.print(f"wrote [bold]{safe(result.checkpoint)}[/] ({result.parameters:,} parameters)")
