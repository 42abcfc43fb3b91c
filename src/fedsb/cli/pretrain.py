"""``fedsb pretrain``: a backbone trained on the source domain."""

from __future__ import annotations

from .app import console, safe
from .options import (
    DEFAULT_CACHE,
    CacheOpt,
    ClassesOpt,
    DataOpt,
    DropUnknownOpt,
    LengthOpt,
    MaxRecordsOpt,
    OutOpt,
    PretrainConfigOpt,
    SetOpt,
    TestDataOpt,
    ValDataOpt,
    data_overrides,
)
from .progress import RichReporter
from .tables import snr_table


def pretrain_cmd(
    out: OutOpt,
    config: PretrainConfigOpt = None,
    data: DataOpt = None,
    val_data: ValDataOpt = None,
    test_data: TestDataOpt = None,
    classes: ClassesOpt = None,
    length: LengthOpt = None,
    drop_unknown: DropUnknownOpt = False,
    max_records: MaxRecordsOpt = None,
    overrides: SetOpt = None,
    cache: CacheOpt = DEFAULT_CACHE,
) -> None:
    """Pretrain a backbone on the source domain: generated, or your recordings (--data).

    Without --config: pretrain-broad, the default backbone's preset (finetune and run fit it).
    """
    from ..config import load_config
    from ..report.curves import training_curve
    from ..training.config import DEFAULT_BACKBONE, PretrainConfig
    from ..training.pretrain import pretrain

    sets = data_overrides(data, val_data, test_data, classes, drop_unknown, max_records, length)
    base = config or DEFAULT_BACKBONE
    cfg = load_config(PretrainConfig, base, [*(overrides or []), *sets])
    result = pretrain(cfg, out, cache, RichReporter(), training_curve)
    console.print(snr_table("test accuracy (%)", {cfg.model.arch: result.test}))
    console.print(f"wrote [bold]{safe(result.checkpoint)}[/] ({result.parameters:,} parameters)")
