"""``fedsb pretrain``, ``fedsb finetune``: centralized training runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .app import app, console, safe
from .data import ConfigOpt, SetOpt
from .progress import RichReporter

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")]
CacheOpt = Annotated[
    Path, typer.Option("--cache", help="Cache for generated data sets and pretrained backbones.")
]
DEFAULT_CACHE = Path(".cache/fedsb")


def fmt_pct(x: float) -> str:
    """A fraction as a percentage with one decimal; NaN (no score) is "n/a"."""
    return "n/a" if x != x else f"{100 * x:.1f}"


def snr_table(title: str, evaluations: dict[str, object]) -> Table:
    """Rows = overall, SNR >= 10 dB and each SNR bin; columns = runs (accuracy in %)."""
    table = Table(title=safe(title))
    table.add_column("SNR (dB)")
    for name in evaluations:
        table.add_column(safe(name), justify="right")
    first = next(iter(evaluations.values()))
    table.add_row("all", *(fmt_pct(ev.accuracy) for ev in evaluations.values()))
    table.add_row(
        ">= 10", *(fmt_pct(ev.accuracy_high_snr) for ev in evaluations.values()), end_section=True
    )
    for j, label in enumerate(first.snr_labels):
        table.add_row(safe(label), *(fmt_pct(ev.snr_accuracy[j]) for ev in evaluations.values()))
    return table


@app.command("pretrain")
def pretrain_cmd(
    out: OutOpt, config: ConfigOpt = None, overrides: SetOpt = None, cache: CacheOpt = DEFAULT_CACHE
) -> None:
    """Pretrain a backbone on the source domain."""
    from ..config import load_config
    from ..training.config import PretrainConfig
    from ..training.pretrain import pretrain

    cfg = load_config(PretrainConfig, config, overrides or [])
    result = pretrain(cfg, out, cache, RichReporter())
    console.print(snr_table("source-domain test accuracy (%)", {cfg.model.arch: result.test}))
    console.print(f"wrote [bold]{safe(result.checkpoint)}[/] ({result.parameters:,} parameters)")


@app.command("finetune")
def finetune_cmd(
    out: OutOpt,
    config: ConfigOpt = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="lora-sb, lora, ffa-lora, full, head-only, or a comma list (one sub-run each)."
        ),
    ] = None,
    rank: Annotated[int | None, typer.Option(help="Adapter rank r.")] = None,
    pretrained: Annotated[
        str | None,
        typer.Option(help="Run dir, .safetensors or pretrain .toml (default: the config's)."),
    ] = None,
    overrides: SetOpt = None,
    cache: CacheOpt = DEFAULT_CACHE,
) -> None:
    """Fine-tune a pretrained backbone on the target domain.

    Centralized: the upper bound federated runs are compared with. With several --method
    values, one sub-run per method and a comparison table.
    """
    from ..config import apply_overrides, load_config
    from ..runs import check_sub_runs
    from ..training.config import FinetuneConfig
    from ..training.finetune import finetune

    base = load_config(FinetuneConfig, config, overrides or [])
    sets = [] if rank is None else [f"adapter.rank={rank}"]
    if pretrained is not None:
        sets.append(f"pretrained={pretrained!r}")
    methods = [m.strip() for m in method.split(",")] if method else [base.adapter.method]
    if len(methods) > 1:
        check_sub_runs(out, methods)
    results = {}
    for name in methods:
        cfg = apply_overrides(base, [*sets, f"adapter.method={name!r}"])
        run_dir = out / name if len(methods) > 1 else out
        results[name] = finetune(cfg, run_dir, cache, RichReporter())
    first = next(iter(results.values()))
    console.print(
        snr_table(
            "target-domain test accuracy (%)",
            {"frozen": first.frozen, **{k: r.test for k, r in results.items()}},
        )
    )
    summary = Table(title="methods")
    for col in ("method", "rank", "trained params", "% of model", "accuracy %", "gain recovered"):
        summary.add_column(col, justify="right")
    full = results.get("full")
    for name, r in results.items():
        gain = r.test.accuracy - r.frozen.accuracy
        recovered = (
            ""
            if full is None or full.test.accuracy <= full.frozen.accuracy
            else f"{100 * gain / (full.test.accuracy - full.frozen.accuracy):.0f} %"
        )
        summary.add_row(
            safe(name),
            str(r.rank),
            f"{r.trainable:,}",
            f"{100 * r.trainable / r.parameters:.2f}",
            fmt_pct(r.test.accuracy),
            recovered,
        )
    console.print(summary)
    console.print(f"wrote [bold]{safe(out)}[/]")
