"""``fedsb run`` (alias ``fedsb federate``): the federated job, dry run, baselines, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .app import console, safe
from .options import (
    DEFAULT_CACHE,
    DEFAULT_RUN_CONFIG,
    CacheOpt,
    ClassesOpt,
    DataOpt,
    DropUnknownOpt,
    LengthOpt,
    MaxRecordsOpt,
    RankOpt,
    RunConfigOpt,
    SetOpt,
    TestDataOpt,
    ValDataOpt,
    data_overrides,
    method_list,
)
from .progress import RichReporter
from .tables import methods_table, partition_table, print_wide, rounds_table, snr_table

MethodOpt = Annotated[
    str | None,
    typer.Option(
        help="fedsb, fedit, ffa, fedex, flora, fedsa, fedavg, head-only, centralized, or a "
        "comma list (one sub-run each, same partition)."
    ),
]
EngineOpt = Annotated[
    str | None, typer.Option(help="local (embedded, default) or flower (simulation).")
]
ResumeOpt = Annotated[
    Path | None, typer.Option(help="Continue the interrupted run in this directory.")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print the partition and exit (nothing is trained).")
]
EpsilonOpt = Annotated[
    float | None, typer.Option(help="DP-SGD target epsilon per client (Opacus).")
]
DeltaOpt = Annotated[float | None, typer.Option(help="DP-SGD delta.")]
ClipOpt = Annotated[float | None, typer.Option(help="DP-SGD per-sample clip norm.")]
PartitionByOpt = Annotated[
    str | None,
    typer.Option(
        "--partition-by",
        help="With --data: one client per file, directory or value of a SigMF key "
        "(e.g. core:hw) instead of the skewed split.",
    ),
]


def run_cmd(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory to write.")] = None,
    config: RunConfigOpt = None,
    method: MethodOpt = None,
    rank: RankOpt = None,
    rounds: Annotated[int | None, typer.Option(help="Federated rounds.")] = None,
    clients: Annotated[int | None, typer.Option(help="Number of clients.")] = None,
    engine: EngineOpt = None,
    resume: ResumeOpt = None,
    dry_run: DryRunOpt = False,
    dp_epsilon: EpsilonOpt = None,
    dp_delta: DeltaOpt = None,
    dp_clip: ClipOpt = None,
    data: DataOpt = None,
    val_data: ValDataOpt = None,
    test_data: TestDataOpt = None,
    classes: ClassesOpt = None,
    length: LengthOpt = None,
    drop_unknown: DropUnknownOpt = False,
    max_records: MaxRecordsOpt = None,
    partition_by: PartitionByOpt = None,
    overrides: SetOpt = None,
    cache: CacheOpt = DEFAULT_CACHE,
) -> None:
    """Federated fine-tuning: clients train adapters on their own data, the server aggregates.

    Default config: the run preset (10 clients, Dirichlet 0.5 label skew plus SNR and channel
    skew, fedsb at r = 16, 20 rounds). Writes config.toml, partition.json, metrics.jsonl,
    state.safetensors (after every round), adapter.safetensors and model.safetensors.
    """
    from ..config import load_config
    from ..errors import ConfigError
    from ..federated.config import RunConfig

    if resume is not None:
        if dry_run or method or overrides or config or data:
            raise ConfigError("--resume takes the run directory's own config: drop other options")
        return resume_run(resume, cache)
    flags = {"adapter.rank": rank, "rounds": rounds, "partition.clients": clients}
    flags |= {"engine": engine and repr(engine), "dp.epsilon": dp_epsilon}
    flags |= {
        "dp.delta": dp_delta,
        "dp.clip": dp_clip,
        "partition.by": partition_by and json.dumps(partition_by),
    }
    sets = list(overrides or []) + [f"{k}={v}" for k, v in flags.items() if v is not None]
    sets += data_overrides(data, val_data, test_data, classes, drop_unknown, max_records, length)
    base = load_config(RunConfig, config if config is not None else DEFAULT_RUN_CONFIG, sets)
    if dry_run:
        from ..federated.task import partition_preview

        return print_wide(partition_table(*partition_preview(base, RichReporter())))
    if out is None:
        raise ConfigError("--out is required (the run directory to write)")
    run_and_print(base, method_list(method, base.method), out, cache)


def resume_run(run_dir: Path, cache: Path) -> None:
    """``--resume DIR``: finish the run with its own config, then print it."""
    from ..federated.engines import run_federated
    from ..report.curves import training_curve

    print_run(
        run_federated(None, run_dir, cache, RichReporter(), resume=True, on_history=training_curve)
    )


def run_and_print(base, methods: list[str], out: Path, cache: Path) -> None:
    """One run (its rounds and scores) or several sub-runs (one comparison table)."""
    from ..federated.compare import run_methods
    from ..report.curves import training_curve

    def announce(name: str, run_dir: Path) -> None:
        console.print(f"[bold]{safe(name)}[/] -> {safe(run_dir)}")

    results = run_methods(base, methods, out, cache, RichReporter(), announce, training_curve)
    if len(methods) == 1:
        return print_run(next(iter(results.values())))
    print_wide(snr_table("accuracy % per SNR", {k: r.test for k, r in results.items()}))
    print_wide(methods_table(results))
    console.print(f"wrote [bold]{safe(out)}[/]")


def print_run(result) -> None:
    """A finished run: its rounds, accuracy per SNR and cost."""
    from ..runs import RunDir

    rows = [r for r in RunDir(result.run).rows() if r.get("stage") in ("init", "round")]
    print_wide(rounds_table(rows))
    print_wide(snr_table("accuracy % per SNR", {result.method: result.test}))
    print_wide(methods_table({result.method: result}))
    console.print(f"wrote [bold]{safe(result.run)}[/]")
