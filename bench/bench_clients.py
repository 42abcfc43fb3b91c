"""Many clients: peak RSS and seconds per round of the embedded engine, side by side.

Run: ``python bench/bench_clients.py [--clients 100,1000] [--sampled 10] [--records 100]
[--rounds 3] [--threads 1] [--config configs/run.toml] [--set key=value ...]``, or ``--quick``
(10 vs 100 clients, 2 drawn per round, 20 records each, 1 round). Every federation runs in a
fresh spawned child (so its peak RSS, ``resource.getrusage``'s ru_maxrss, is its own) with the
same clients drawn per round (``server.fraction = sampled / clients``) and the same records per
client. Validation and test splits default to 1 record per class per client
(``partition.val_per_class``, ``test_per_class``; ``--set`` overrides them).

It prints, per federation: the set-up (backbone, plan, the validation and test store: built on
the first run, read from ``.cache/fedsb`` after), round 0 with the initial evaluation, seconds
per round split into the engine's training of the drawn clients and the rest (aggregation and
the global validation and test evaluation: the union of *every* client's splits, so it grows
with the total), the final stage (federated calibration and per-client scores, which ask every
client), how many training splits were built (round 0's clients, a round's draw, included)
against the distinct clients the rounds drew, and the peak RSS against the 2 GB goal; then
the ratios of the last federation to the first.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path
from queue import Empty

import torch
from rich.console import Console
from rich.table import Table

from fedsb.config import load_config
from fedsb.federated.config import RunConfig
from fedsb.federated.engine_local import LocalEngine
from fedsb.federated.server import federate, prepare
from fedsb.federated.task import build_task
from fedsb.reporter import SilentReporter

GOAL_MB = 2000.0
CACHE = Path(".cache/fedsb")
SPLITS = ["partition.val_per_class=1", "partition.test_per_class=1"]


class TimedEngine(LocalEngine):
    """The embedded engine, timing its ``train`` calls (the drawn clients' local training)."""

    train_seconds = 0.0

    def train(self, *args, **kwargs):
        """``LocalEngine.train``, its wall time added to ``train_seconds``."""
        start = time.perf_counter()
        try:
            return super().train(*args, **kwargs)
        finally:
            self.train_seconds += time.perf_counter() - start


def peak_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KB on Linux), MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(config: Path, sets: list[str], clients: int, sampled: int, threads: int) -> dict:
    """One federation, in a child: its phases' seconds, builds and peak RSS."""
    torch.set_num_threads(threads)
    base = peak_mb()
    own = [f"partition.clients={clients}", f"server.fraction={sampled / clients!r}"]
    cfg = load_config(RunConfig, config, [*sets, *own, f"threads={threads}", "workers=1"])
    out = Path(tempfile.mkdtemp(prefix="bench-clients-")) / "run"
    start = time.perf_counter()
    cfg, run = prepare(out, cfg, False)
    task = build_task(cfg, CACHE, SilentReporter())
    setup = time.perf_counter() - start
    engine, rows = TimedEngine(task, cfg), []
    start = time.perf_counter()
    try:
        federate(task, cfg, run, engine, CACHE, SilentReporter(), on_round=rows.append)
    finally:
        engine.close()
    total = time.perf_counter() - start
    rounds = sum(r["seconds"] for r in rows)
    drawn = {c for r in rows for c in r["clients"]}
    return {
        "clients": clients,
        "drawn": len(rows[0]["clients"]),
        "setup": setup,
        "round_s": rounds / len(rows),
        "train_s": engine.train_seconds / len(rows),
        "outside": total - rounds,  # round 0, the initial evaluation and the final stage
        "eval_records": len(task.val) + len(task.test),
        "builds": task.units[0].source.builds,
        "distinct": len(drawn),
        "peak": peak_mb(),
        "base": base,
    }


def _child(queue, fn, args) -> None:
    queue.put(fn(*args))


def in_child(fn, *args) -> dict:
    """``fn(*args)`` in a fresh spawned process (its own peak RSS).

    A plain Process, not a Pool's daemon: the generator may start worker processes of its own.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue, fn, args))
    child.start()
    try:
        while True:
            try:
                return queue.get(timeout=5)
            except Empty:
                if not child.is_alive():
                    raise RuntimeError(f"the child exited ({child.exitcode}), no result") from None
    finally:
        child.join()


def report(rows: list[dict], args) -> None:
    """The table of the federations and the ratios of the last one to the first."""
    console = Console(width=170)
    table = Table(
        title=f"embedded engine, {args.records} training records per client, {args.rounds} "
        f"rounds, {args.threads} thread(s)"
    )
    cols = ("clients", "drawn/round", "set-up s", "s/round", "train s/round", "rest s/round",
            "round 0 + final s", "val+test records", "splits built", "drawn in rounds",
            "peak RSS MB", "x 2 GB goal")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['clients']:,}",
            str(r["drawn"]),
            f"{r['setup']:.1f}",
            f"{r['round_s']:.2f}",
            f"{r['train_s']:.2f}",
            f"{r['round_s'] - r['train_s']:.2f}",
            f"{r['outside']:.1f}",
            f"{r['eval_records']:,}",
            str(r["builds"]),
            str(r["distinct"]),
            f"{r['peak']:,.0f} (imports {r['base']:,.0f})",
            f"{r['peak'] / GOAL_MB:.2f}",
        )
    console.print(table)
    a, b = rows[0], rows[-1]

    def ratio(key: str) -> str:
        return f"{b[key] / a[key]:.2f}"

    rest = (b["round_s"] - b["train_s"]) / max(a["round_s"] - a["train_s"], 1e-9)
    console.print(
        f"{b['clients']:,} vs {a['clients']:,} clients ({b['clients'] / a['clients']:.0f}x), "
        f"the same {b['drawn']} drawn per round: s/round x{ratio('round_s')}, "
        f"train s/round x{ratio('train_s')}, rest s/round x{rest:.2f} (val+test records "
        f"x{ratio('eval_records')}), peak RSS x{ratio('peak')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/run.toml"))
    parser.add_argument("--clients", default="100,1000", help="total clients, comma-separated")
    parser.add_argument("--sampled", type=int, default=10, help="clients drawn per round")
    parser.add_argument("--records", type=int, default=100, help="training records per client")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--quick", action="store_true", help="10 vs 100 clients, 2 drawn, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.sampled, args.records, args.rounds = "10,100", 2, 20, 1
    sets = [*SPLITS, f"partition.records_per_client={args.records}", f"rounds={args.rounds}"]
    sets.append(f"partition.min_records={min(32, args.records)}")
    sets += [f"server.min_clients={min(2, args.sampled)}", *args.overrides]
    rows = []
    for n in (int(x) for x in args.clients.split(",")):
        rows.append(in_child(run_one, args.config, sets, n, args.sampled, args.threads))
        r = rows[-1]
        print(
            f"{n:,} clients: {r['round_s']:.2f} s/round, peak RSS {r['peak']:,.0f} MB", flush=True
        )
    report(rows, args)


if __name__ == "__main__":
    main()
