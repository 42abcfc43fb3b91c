"""The report's tables as plain data, rendered both to HTML and to LaTeX (``booktabs``).

Cells are already-formatted strings; a missing number is "–". Each table has a ``key`` that
names its LaTeX file (``tex/<key>.tex``) and label (``tab:<key>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..federated.methods import METHODS, is_pooled
from .study import RunRecord, Study

DASH = "–"


@dataclass(frozen=True)
class Table:
    """One report table: key (file and label name), title, column heads, cell rows, a note."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


def pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage with ``digits`` decimals; a dash for None."""
    return DASH if x is None else f"{100 * x:.{digits}f}"


def num(x: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals; a dash for None."""
    return DASH if x is None else f"{x:.{digits}f}"


def count(x: float | None) -> str:
    """A count rounded to an integer, with thousands separators; a dash for None."""
    return DASH if x is None else f"{int(round(x)):,}"


def kilobytes(x: float | None) -> str:
    """Bytes as kB (1000 B) with one decimal; a dash for None."""
    return DASH if x is None else f"{x / 1e3:,.1f}"


def megabytes(x: float | None) -> str:
    """Bytes as MB (10^6 B) with two decimals; a dash for None."""
    return DASH if x is None else f"{x / 1e6:,.2f}"


def _calibration(run: RunRecord, when: str) -> dict:
    test = (run.evaluation or {}).get("test") or {}
    return test.get(f"calibration_{when}") or {}


def methods_table(runs: Sequence[RunRecord]) -> Table:
    """Final test accuracy, calibration and communication of each method's run, a row each."""
    rows = []
    for run in runs:
        final = run.final or {}
        before, after = _calibration(run, "before"), _calibration(run, "after")
        central = is_pooled(run.method)
        fed = METHODS.get(run.method)
        ranked = run.rank is not None and (fed is None or fed.ranked)
        rows.append(
            (
                run.method,
                str(run.rank) if ranked else DASH,
                pct(final.get("test_acc")),
                pct(final.get("test_acc_snr_ge_10")),
                pct(before.get("ece")),
                pct(after.get("ece")),
                num(after.get("brier")),
                num(after.get("nll")),
                count(final.get("trained_parameters")),
                DASH if central else kilobytes(final.get("bytes_per_round_per_client")),
                DASH if central else megabytes(final.get("total_bytes")),
            )
        )
    return Table(
        "methods",
        "Final global test accuracy, calibration and communication per method",
        (
            "method",
            "rank",
            "acc. %",
            "acc. ≥10 dB %",
            "ECE % (T=1)",
            "ECE % (fitted T)",
            "Brier",
            "NLL",
            "trained params",
            "kB/round/client",
            "total MB",
        ),
        tuple(rows),
        "Brier and NLL after temperature scaling; bytes are up + down per client per round, "
        "measured on the serialised payload; total includes LoRA-SB's round 0.",
    )


def snr_table(runs: Sequence[RunRecord]) -> Table:
    """Test accuracy per SNR bin (rows, lowest first) and method (columns)."""
    by_bin: dict[str, dict[str, str]] = {}
    lows: dict[str, float] = {}
    for run in runs:
        test = (run.evaluation or {}).get("test") or {}
        for row in test.get("per_snr", []):
            by_bin.setdefault(row["snr"], {})[run.method] = pct(row["accuracy"])
            lows[row["snr"]] = row["low_db"]
    methods = [r.method for r in runs]
    rows = tuple(
        (name, *(by_bin[name].get(m, DASH) for m in methods))
        for name in sorted(by_bin, key=lambda n: lows[n])
    )
    return Table("snr", "Test accuracy (%) per SNR bin (dB)", ("SNR", *methods), rows)


def class_table(run: RunRecord) -> Table:
    """Per-class test support, accuracy, precision, F1 and AP of one run."""
    test = (run.evaluation or {}).get("test") or {}
    rows = tuple(
        (
            name,
            str(c["support"]),
            pct(c["accuracy"]),
            pct(c["precision"]),
            pct(c["f1"]),
            num(c["average_precision"]),
        )
        for name, c in test.get("per_class", {}).items()
    )
    return Table(
        "classes",
        f"Per-class results of {run.method} on the global test set",
        ("class", "test records", "accuracy %", "precision %", "F1 %", "AP"),
        rows,
    )


def client_table(run: RunRecord) -> Table:
    """Per-client channel conditions and test results of one run (one global temperature)."""
    clients = (run.evaluation or {}).get("clients") or []
    profile = {p["client"]: p for p in run.partition or []}
    rows = []
    for c in clients:
        p = profile.get(c["client"], {})
        window = p.get("snr_db")
        rows.append(
            (
                str(c["client"]),
                str(p.get("profile", DASH)),
                f"{window[0]:g} to {window[1]:g}" if window else DASH,
                pct(c.get("accuracy")),
                pct(c.get("ece_before")),
                pct(c.get("ece_after")),
                num(c.get("brier_before")),
                num(c.get("brier_after")),
                num(c.get("nll_before")),
                num(c.get("nll_after")),
            )
        )
    return Table(
        "clients",
        f"Per-client test results of {run.method} with the one global temperature",
        (
            "client",
            "channel",
            "SNR dB",
            "acc. %",
            "ECE % before",
            "ECE % after",
            "Brier before",
            "Brier after",
            "NLL before",
            "NLL after",
        ),
        tuple(rows),
    )


def rounds_table(run: RunRecord) -> Table:
    """Per-round test accuracy, loss, traffic and left-out clients of one run."""
    rows = []
    for r in run.rounds:
        dropped = r.get("dropped") or {}
        sent = (r.get("bytes_up_per_client") or 0) + (r.get("bytes_down_per_client") or 0)
        rows.append(
            (
                str(r["round"]),
                pct(r.get("test_acc")),
                num(r.get("test_loss")),
                kilobytes(sent),
                megabytes(r.get("cumulative_bytes")),
                ", ".join(f"{k}: {v}" for k, v in dropped.items()) if dropped else DASH,
            )
        )
    return Table(
        "rounds",
        f"Rounds of {run.method} (round 0: LoRA-SB initialisation)",
        ("round", "test acc. %", "test loss", "kB/client", "cumulative MB", "left out"),
        tuple(rows),
    )


def study_tables(study: Study) -> list[Table]:
    """The report's tables for ``study``, leaving out any with no rows."""
    methods = list(study.by_method().values())
    primary = study.primary
    tables = [methods_table(methods), snr_table(methods), class_table(primary)]
    if (primary.evaluation or {}).get("clients"):
        tables.append(client_table(primary))
    tables.append(rounds_table(primary))
    return [t for t in tables if t.rows]
