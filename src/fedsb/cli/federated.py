"""``fedsb run`` (alias ``fedsb federate``): the federated job, dry run, baselines, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from .app import app, console, plain_console, safe
from .data import SetOpt
from .progress import RichReporter
from .train import DEFAULT_CACHE, CacheOpt, fmt_pct, snr_table

RunConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="A run config TOML or a preset name (default: run)."),
]
DEFAULT_CONFIG = "run"  # the preset shipped in the package (fedsb/presets/run.toml)


def _kb(n: float) -> str:
    return f"{n / 1000:,.1f}"


def print_wide(table: Table) -> None:
    """Print a table at its natural width when stdout is not a terminal (logs, pipes)."""
    (console if console.is_terminal else plain_console(width=200)).print(table)


def partition_table(cfg) -> Table:
    """Clients x classes (training records), with each client's SNR window and channel."""
    from ..data.partition import plan_partition
    from ..signals import resolve_classes

    plans = plan_partition(cfg.partition, cfg.data)
    names = resolve_classes(cfg.data.classes)
    table = Table(
        title=f"partition: {len(plans)} clients (training records per class)",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    for col in ("client", *names, "total", "SNR dB", "channel"):
        table.add_column(safe(col), justify="right", no_wrap=True)
    for p in plans:
        cells = [str(c) if c else "[dim]0[/]" for c in p.counts]
        snr = f"{p.snr_db[0]:.0f}..{p.snr_db[1]:.0f}"
        table.add_row(str(p.client), *cells, str(p.size), snr, safe(p.profile))
    return table


def rounds_table(result_rows: list[dict]) -> Table:
    table = Table(title="rounds")
    for col in (
        "round",
        "accuracy %",
        ">= 10 dB %",
        "kB up/client",
        "kB down/client",
        "cum. MB",
        "agreement",
        "left out",
    ):
        table.add_column(col, justify="right")
    for r in result_rows:
        agreement = r.get("update_agreement")
        table.add_row(
            str(r["round"]),
            fmt_pct(r["test_acc"] if r["test_acc"] is not None else float("nan")),
            fmt_pct(
                r["test_acc_snr_ge_10"] if r["test_acc_snr_ge_10"] is not None else float("nan")
            ),
            _kb(r["bytes_up_per_client"]),
            _kb(r["bytes_down_per_client"]),
            f"{r['cumulative_bytes'] / 1e6:,.2f}",
            "" if agreement is None else f"{agreement:.2f}",
            safe(", ".join(f"{c}: {why}" for c, why in (r.get("dropped") or {}).items())),
        )
    return table


def methods_table(results: dict) -> Table:
    table = Table(title="methods (global test set = union of the clients' test splits)")
    for col in (
        "method",
        "accuracy %",
        ">= 10 dB %",
        "trained params",
        "kB/round/client",
        "total MB",
    ):
        table.add_column(col, justify="right")
    for name, r in results.items():
        table.add_row(
            safe(name),
            fmt_pct(r.test.accuracy),
            fmt_pct(r.test.accuracy_high_snr),
            f"{r.trained_parameters:,}",
            _kb(r.bytes_per_round),
            f"{r.total_bytes / 1e6:,.2f}",
        )
    return table


def run_cmd(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory to write.")] = None,
    config: RunConfigOpt = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="fedsb, fedit, ffa, fedavg, head-only, centralized, or a comma list "
            "(one sub-run each, same partition)."
        ),
    ] = None,
    rank: Annotated[int | None, typer.Option(help="Adapter rank r.")] = None,
    rounds: Annotated[int | None, typer.Option(help="Federated rounds.")] = None,
    clients: Annotated[int | None, typer.Option(help="Number of clients.")] = None,
    engine: Annotated[
        str | None, typer.Option(help="local (embedded, default) or flower (simulation).")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the interrupted run in this directory.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the partition and exit (nothing is trained).")
    ] = False,
    dp_epsilon: Annotated[
        float | None, typer.Option(help="DP-SGD target epsilon per client (Opacus).")
    ] = None,
    dp_delta: Annotated[float | None, typer.Option(help="DP-SGD delta.")] = None,
    dp_clip: Annotated[float | None, typer.Option(help="DP-SGD per-sample clip norm.")] = None,
    overrides: SetOpt = None,
    cache: CacheOpt = DEFAULT_CACHE,
) -> None:
    """Federated fine-tuning: clients train adapters on their own data, the server aggregates.

    Default config: the run preset (10 clients, Dirichlet 0.5 label skew plus SNR and channel
    skew, fedsb at r = 16, 20 rounds). Writes config.toml, partition.json, metrics.jsonl,
    state.safetensors (after every round), adapter.safetensors and model.safetensors.
    """
    from ..config import apply_overrides, load_config
    from ..errors import ConfigError
    from ..federated.config import RunConfig
    from ..federated.engines import run_federated
    from ..federated.server import check_sub_run_dirs

    if resume is not None:
        if dry_run or method or overrides or config:
            raise ConfigError("--resume takes the run directory's own config: drop other options")
        result = run_federated(None, resume, cache, RichReporter(), resume=True)
        _print_run(result)
        return
    path = config if config is not None else DEFAULT_CONFIG
    sets = list(overrides or [])
    for key, value in (
        ("adapter.rank", rank),
        ("rounds", rounds),
        ("partition.clients", clients),
        ("engine", engine and repr(engine)),
        ("dp.epsilon", dp_epsilon),
        ("dp.delta", dp_delta),
        ("dp.clip", dp_clip),
    ):
        if value is not None:
            sets.append(f"{key}={value}")
    base = load_config(RunConfig, path, sets)
    if dry_run:
        table = partition_table(base)
        print_wide(table)
        return
    if out is None:
        raise ConfigError("--out is required (the run directory to write)")
    methods = [m.strip() for m in method.split(",")] if method else [base.method]
    configs = {name: apply_overrides(base, [f"method={name!r}"]) for name in methods}
    if len(methods) > 1:  # refuse a finished run (or a used sub-run) before training any
        check_sub_run_dirs(out, methods)
    results = {}
    for name, cfg in configs.items():
        run_dir = out / name if len(methods) > 1 else out
        console.print(f"[bold]{safe(name)}[/] -> {safe(run_dir)}")
        results[name] = run_federated(cfg, run_dir, cache, RichReporter())
        if len(methods) == 1:
            _print_run(results[name])
    if len(methods) > 1:
        print_wide(snr_table("accuracy % per SNR", {k: r.test for k, r in results.items()}))
        print_wide(methods_table(results))
        console.print(f"wrote [bold]{safe(out)}[/]")


def _print_run(result) -> None:
    from ..runs import RunDir

    rows = [r for r in RunDir(result.run).rows() if r.get("stage") in ("init", "round")]
    print_wide(rounds_table(rows))
    print_wide(snr_table("accuracy % per SNR", {result.method: result.test}))
    print_wide(methods_table({result.method: result}))
    console.print(f"wrote [bold]{safe(result.run)}[/]")


app.command("run")(run_cmd)
app.command("federate", help="Alias of [bold]fedsb run[/].")(run_cmd)


@app.command("sweep")
def sweep_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Sweep directory (one run per cell).")],
    ranks: Annotated[str, typer.Option(help="Comma list of adapter ranks.")] = "4,8,16,32,64",
    methods: Annotated[str, typer.Option(help="Comma list of methods.")] = "fedsb,fedit,ffa,fedavg",
    rounds: Annotated[int | None, typer.Option(help="Federated rounds per cell.")] = None,
    config: RunConfigOpt = None,
    overrides: SetOpt = None,
    cache: CacheOpt = DEFAULT_CACHE,
) -> None:
    """Methods x ranks on one partition: a table (accuracy, ECE, bytes) and the Pareto figure.

    Resumable: run it again to finish the cells that are missing or were interrupted.
    """
    from ..config import load_config
    from ..errors import ConfigError
    from ..federated.config import RunConfig
    from ..sweep import run_sweep

    try:
        rank_list = [int(r) for r in ranks.split(",") if r.strip()]
    except ValueError:
        raise ConfigError(f"--ranks: comma list of integers expected, got {ranks!r}") from None
    path = config if config is not None else DEFAULT_CONFIG
    sets = list(overrides or []) + ([f"rounds={rounds}"] if rounds else [])
    base = load_config(RunConfig, path, sets)
    method_list = [m.strip() for m in methods.split(",") if m.strip()]

    def announce(cell, state: str) -> None:
        word = {"done": "done, kept", "resume": "resuming", "new": "running"}[state]
        console.print(f"[bold]{safe(cell.name)}[/]: {word}")

    results = run_sweep(base, out, method_list, rank_list, cache, RichReporter(), announce)
    table = Table(title=f"sweep: {base.partition.clients} clients, {base.rounds} rounds")
    for col in ("cell", "accuracy %", "ECE % (fitted T)", "kB/round/client", "total MB"):
        table.add_column(col, justify="right")
    for r in results:
        ece = "-" if r["ece"] is None else f"{100 * r['ece']:.1f}"
        table.add_row(
            safe(r["cell"]),
            f"{100 * r['accuracy']:.1f}",
            ece,
            f"{r['bytes_per_round_per_client'] / 1e3:,.1f}",
            f"{r['total_bytes'] / 1e6:,.2f}",
        )
    print_wide(table)
    console.print(
        f"wrote [bold]{safe(out)}[/] (sweep.json, figures/pareto.png; `fedsb report {safe(out)}`)"
    )
