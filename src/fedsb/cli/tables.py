"""The rich tables the commands print: accuracy per SNR, rounds, methods, class x SNR counts."""

from __future__ import annotations

from rich import box
from rich.table import Table

from .app import console, plain_console, safe


def fmt_pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal; NaN or None (no score) is "n/a"."""
    return "n/a" if x is None or x != x else f"{100 * x:.1f}"


def kb(n: float) -> str:
    """Bytes as kB (1 kB = 1000 B) with one decimal and thousands separators."""
    return f"{n / 1000:,.1f}"


def print_wide(table: Table) -> None:
    """Print a table at its natural width when stdout is not a terminal (logs, pipes)."""
    (console if console.is_terminal else plain_console(width=200)).print(table)


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


def print_class_snr_table(records, title: str) -> None:
    """Rich table of counts per class x SNR bin, with totals."""
    from ..signals.summary import class_snr_table

    summary = class_snr_table(records)
    table = Table(title=safe(title), show_footer=True)
    width = max(len(n) for n in summary.class_names) if summary.class_names else 5
    table.add_column("class", footer="total", no_wrap=True, min_width=width)
    for j, label in enumerate(summary.bin_labels):
        table.add_column(safe(label), justify="right", footer=str(summary.counts[:, j].sum()))
    table.add_column("total", justify="right", footer=str(summary.counts.sum()))
    for name, row in zip(summary.class_names, summary.counts):
        table.add_row(safe(name), *map(str, row), str(row.sum()))
    console.print(table)


def partition_table(rows: list[dict], names: tuple[str, ...]) -> Table:
    """Clients x classes (training records), with each client's SNR range and what sets it apart.

    ``rows`` are partition.json's (``federated.task.partition_preview``).
    """
    held_out = any("val" in r for r in rows)
    table = Table(
        title=f"partition: {len(rows)} clients (training records per class)",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    columns = ("client", *names, "total", *(("val", "test") if held_out else ()), "SNR dB")
    for col in (*columns, "channel / source"):
        table.add_column(safe(col), justify="right", no_wrap=True)
    for r in rows:
        cells = [str(c) if c else "[dim]0[/]" for c in r["counts"]]
        lo, hi = r["snr_db"]
        snr = f"{lo:.0f}..{hi:.0f}" if lo == lo and hi == hi else "no SNR"  # NaN: none given
        extra = (str(r["val"]), str(r["test"])) if held_out else ()
        table.add_row(str(r["client"]), *cells, str(r["records"]), *extra, snr, safe(r["profile"]))
    return table


ROUND_COLUMNS = (
    "round",
    "accuracy %",
    ">= 10 dB %",
    "kB up/client",
    "kB down/client",
    "cum. MB",
    "agreement",
    "left out",
)


def rounds_table(result_rows: list[dict]) -> Table:
    """One row per federated round of metrics.jsonl: accuracy, bytes, update agreement."""
    table = Table(title="rounds")
    for col in ROUND_COLUMNS:
        table.add_column(col, justify="right")
    for r in result_rows:
        agreement = r.get("update_agreement")
        table.add_row(
            str(r["round"]),
            fmt_pct(r["test_acc"]),
            fmt_pct(r["test_acc_snr_ge_10"]),
            kb(r["bytes_up_per_client"]),
            kb(r["bytes_down_per_client"]),
            f"{r['cumulative_bytes'] / 1e6:,.2f}",
            "" if agreement is None else f"{agreement:.2f}",
            safe(", ".join(f"{c}: {why}" for c, why in (r.get("dropped") or {}).items())),
        )
    return table


def methods_table(results: dict) -> Table:
    """Federated runs side by side: accuracy, trained parameters and bytes sent."""
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
            kb(r.bytes_per_round),
            f"{r.total_bytes / 1e6:,.2f}",
        )
    return table


def finetune_table(results: dict) -> Table:
    """Centralized fine-tuning runs side by side, with the share of full fine-tuning's gain."""
    from ..training.compare import gain_recovered

    table = Table(title="methods")
    cols = ("method", "rank", "trained params", "% of model", "accuracy %", "gain recovered", "T")
    for col in cols:  # T: the temperature fitted on the validation split
        table.add_column(col, justify="right")
    full = results.get("full")
    for name, r in results.items():
        gain = gain_recovered(r, full)
        table.add_row(
            safe(name),
            str(r.rank),
            f"{r.trainable:,}",
            f"{100 * r.trainable / r.parameters:.2f}",
            fmt_pct(r.test.accuracy),
            "" if gain is None else f"{100 * gain:.0f} %",
            f"{r.calibration.temperature:.2f}",
        )
    return table


def sweep_table(results: list[dict], title: str) -> Table:
    """One row per sweep cell: accuracy, ECE after temperature scaling, bytes (round 0 too)."""
    table = Table(title=title)
    columns = ("cell", "accuracy %", ">= 10 dB %", "ECE % (fitted T)", "kB/round/client",
               "round 0 MB", "total MB")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="right")
    for r in results:
        ece = "-" if r["ece"] is None else f"{100 * r['ece']:.1f}"
        high = r.get("accuracy_snr_ge_10")
        table.add_row(
            safe(r["cell"]),
            f"{100 * r['accuracy']:.1f}",
            "-" if high is None else f"{100 * high:.1f}",
            ece,
            f"{r['bytes_per_round_per_client'] / 1e3:,.1f}",
            f"{r.get('round0_bytes', 0) / 1e6:,.2f}",
            f"{r['total_bytes'] / 1e6:,.2f}",
        )
    return table


def eval_table(result: dict, title: str) -> Table:
    """``fedsb evaluate``'s eval.json as a table: records and accuracy overall and per SNR."""
    from ..report.tables import pct

    table = Table(title=safe(title))
    table.add_column("SNR (dB)")
    table.add_column("records", justify="right")
    table.add_column("accuracy %", justify="right")
    table.add_row("all", str(result["count"]), pct(result["accuracy"]))
    table.add_row(">= 10", "", pct(result["accuracy_snr_ge_10"]), end_section=True)
    for row in result["per_snr"]:
        table.add_row(safe(row["snr"]), str(row["count"]), pct(row["accuracy"]))
    return table
