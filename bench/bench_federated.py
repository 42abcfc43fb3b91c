"""Every federated method on the same partition, side by side in one run: final accuracy, bytes
per round per client, total bytes, wall time per round, update agreement (second half of the
rounds); then the Flower simulation's round time against the embedded engine's on the same job,
as a ratio.

Run: ``python bench/bench_federated.py [--config configs/run.toml] [--methods ...] [--rounds N]
[--set key=value ...] [--flower-rounds 2]``. Defaults are the main job (``configs/run.toml``:
10 clients, Dirichlet 0.5 + SNR + channel skew, r = 16, 20 rounds); ``--rounds 5`` gives a quick
look. Runs go to a temporary directory (``--out`` keeps them); data and the pretrained backbone
come from ``.cache/fedsb``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fedsb.config import apply_overrides, load_config
from fedsb.federated.config import RunConfig
from fedsb.federated.engines import run_federated
from fedsb.runs import RunDir

CACHE = Path(".cache/fedsb")


def round_rows(run: Path) -> list[dict]:
    return [r for r in RunDir(run).rows() if r.get("stage") == "round"]


def round_seconds(rows: list[dict]) -> float:
    return sum(r["seconds"] for r in rows) / max(1, len(rows))


def late_agreement(rows: list[dict]) -> float:
    """Mean update agreement over the second half of the rounds (after the first rounds'
    shared direction is spent): how much of a client's step the averaging keeps."""
    late = [r["update_agreement"] for r in rows[len(rows) // 2 :]]
    return sum(late) / len(late) if late else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/run.toml"))
    parser.add_argument("--methods", default="fedsb,fedit,ffa,fedavg,head-only,centralized")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--flower-rounds", type=int, default=2, help="0 skips the Flower ratio")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    sets = list(args.overrides) + ([f"rounds={args.rounds}"] if args.rounds else [])
    base = load_config(RunConfig, args.config, sets)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-federated-"))
    console = Console(width=160)
    rows = []
    for method in args.methods.split(","):
        cfg = apply_overrides(base, [f"method={method!r}"])
        start = time.perf_counter()
        result = run_federated(cfg, out / method, CACHE)
        wall = time.perf_counter() - start
        rows.append((method, result, round_rows(out / method), wall))
        console.print(f"{method}: {100 * result.test.accuracy:.1f} % in {wall:.0f} s")

    ref = next((r for m, r, _, _ in rows if m == "fedsb"), rows[0][1])
    table = Table(
        title=f"federated methods, {base.partition.clients} clients, {base.rounds} rounds"
    )
    for col in (
        "method",
        "rank",
        "accuracy %",
        ">= 10 dB %",
        "trained params",
        "kB/round/client",
        "x fedsb bytes",
        "total MB",
        "s/round",
        "agreement",
    ):
        table.add_column(col, justify="right")
    for method, r, per_round_rows, _ in rows:
        ratio = r.bytes_per_round / ref.bytes_per_round if ref.bytes_per_round else float("nan")
        table.add_row(
            method,
            str(base.adapter.rank),
            f"{100 * r.test.accuracy:.1f}",
            f"{100 * r.test.accuracy_high_snr:.1f}",
            f"{r.trained_parameters:,}",
            f"{r.bytes_per_round / 1000:,.1f}",
            f"{ratio:.1f}" if method != "centralized" else "-",
            f"{r.total_bytes / 1e6:,.2f}",
            f"{round_seconds(per_round_rows):.1f}",
            f"{late_agreement(per_round_rows):.2f}" if method != "centralized" else "-",
        )
    console.print(table)

    if args.flower_rounds > 0:
        times = {}
        for engine in ("local", "flower"):
            cfg = apply_overrides(
                base, ["method='fedsb'", f"rounds={args.flower_rounds}", f"engine={engine!r}"]
            )
            run_federated(cfg, out / "engines" / engine, CACHE)  # below: not in the report
            times[engine] = round_seconds(round_rows(out / "engines" / engine))
        ratio = times["flower"] / times["local"]
        console.print(
            f"round time, fedsb, {args.flower_rounds} rounds: local {times['local']:.1f} s, "
            f"Flower simulation {times['flower']:.1f} s -> Flower / local = {ratio:.2f}x"
        )
    summary = {
        m: {"acc": r.test.accuracy, "bytes_per_round": r.bytes_per_round} for m, r, _, _ in rows
    }
    console.print(json.dumps(summary))
    console.print(f"runs in {out}")


if __name__ == "__main__":
    main()
