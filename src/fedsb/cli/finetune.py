"""``fedsb finetune``: centralized fine-tuning, one method or several side by side."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import console, safe
from .options import (
    DEFAULT_CACHE,
    CacheOpt,
    ClassesOpt,
    DataOpt,
    DropUnknownOpt,
    FinetuneConfigOpt,
    LengthOpt,
    MaxRecordsOpt,
    OutOpt,
    RankOpt,
    SetOpt,
    TestDataOpt,
    ValDataOpt,
    data_overrides,
    method_list,
)
from .progress import RichReporter
from .tables import finetune_table, snr_table

MethodOpt = Annotated[
    str | None,
    typer.Option(
        help="lora-sb, lora, ffa-lora, full, head-only, or a comma list (one sub-run each)."
    ),
]
PretrainedOpt = Annotated[
    str | None,
    typer.Option(help="Run dir, .safetensors or pretrain .toml (default: the config's)."),
]


def finetune_cmd(
    out: OutOpt,
    config: FinetuneConfigOpt = None,
    method: MethodOpt = None,
    rank: RankOpt = None,
    pretrained: PretrainedOpt = None,
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
    """Fine-tune a pretrained backbone on the target domain: generated, or your recordings.

    Centralized: the upper bound federated runs are compared with. With several --method
    values, one sub-run per method and a comparison table.
    """
    from ..config import load_config
    from ..report.curves import training_curve
    from ..training.compare import finetune_methods
    from ..training.config import FinetuneConfig

    files = data_overrides(data, val_data, test_data, classes, drop_unknown, max_records, length)
    base = load_config(FinetuneConfig, config, [*(overrides or []), *files])
    sets = [] if rank is None else [f"adapter.rank={rank}"]
    if pretrained is not None:
        sets.append(f"pretrained={pretrained!r}")
    methods = method_list(method, base.adapter.method)
    results = finetune_methods(base, methods, out, cache, RichReporter(), training_curve, sets)
    frozen = next(iter(results.values())).frozen
    evaluations = {"frozen": frozen, **{k: r.test for k, r in results.items()}}
    console.print(snr_table("target-domain test accuracy (%)", evaluations))
    console.print(finetune_table(results))
    console.print(f"wrote [bold]{safe(out)}[/]")
