"""``fedsb classify`` throughput: samples per second and the real-time factor at a stated rate.

Run: ``python bench/bench_classify.py --run RUN [--seconds 10] [--rate 1e6] [--occupancy 0.3]
[--overlap 0.5]``.
A long unannotated recording is generated (generator bursts of 1 to 4 records at 5-20 dB over
white noise, ``occupancy`` of the time busy; written in chunks, never held whole), then
classified as ``fedsb classify`` does (detection pass: block powers, the coarse spectrogram and
the sub-band search; then the model on every burst's windows, ``--overlap`` of a window apart).
The real-time factor is the recording's duration at ``--rate`` over the wall time: above 1,
classification keeps up with a receiver at that rate. Prints the detection and classification
passes apart, and the peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fedsb.evaluation.classify import ClassifyConfig, classify_segments, find_segments
from fedsb.evaluation.classify_model import choose_thresholds, load_classifier
from fedsb.io.sigmf_stream import open_recording
from fedsb.signals import generate
from fedsb.signals.config import GeneratorConfig

CHUNK = 1 << 22  # samples generated and written at a time


def write_recording(path: Path, samples: int, length: int, occupancy: float, seed: int) -> int:
    """A cf32 pair of ``samples`` samples with bursts; returns the number of bursts."""
    rng = np.random.default_rng(seed)
    cfg = replace(GeneratorConfig(), length=4 * length, noise_enabled=False)
    pool = generate(cfg, "rml2016", 8, seed).iq  # 88 clean bursts, reused
    mean_burst = 2.5 * length
    gap = mean_burst * (1 - occupancy) / occupancy
    written = bursts = 0
    with open(path.with_suffix(".sigmf-data"), "wb") as out:
        while written < samples:
            n = min(CHUNK, samples - written)
            x = (rng.standard_normal((n, 2), np.float32) * 0.5**0.5).view(np.complex64)[:, 0]
            pos = int(rng.exponential(gap))
            while pos + 4 * length < n:
                count = int(rng.integers(1, 5)) * length
                snr = 10 ** (rng.uniform(5, 20) / 10)
                x[pos : pos + count] += pool[rng.integers(len(pool))][:count] * np.sqrt(snr)
                pos += count + int(rng.exponential(gap)) + length // 2
                bursts += 1
            out.write(x.tobytes())
            written += n
    glob = '"global": {"core:datatype": "cf32_le", "core:version": "1.0.0"}'
    path.with_suffix(".sigmf-meta").write_text(f'{{{glob}, "captures": [], "annotations": []}}')
    return bursts


def main() -> None:
    """Generate, classify, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished run directory")
    parser.add_argument("--seconds", type=float, default=10.0, help="recording length at --rate")
    parser.add_argument("--rate", type=float, default=1e6, help="sample rate for the RTF (S/s)")
    parser.add_argument("--occupancy", type=float, default=0.3, help="share of time in bursts")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--overlap", type=float, default=ClassifyConfig().overlap)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded, _ = load_classifier(args.run)
    thresholds = choose_thresholds(loaded, args.run)
    samples = int(args.seconds * args.rate)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sigmf-meta"
        bursts = write_recording(path, samples, loaded.length, args.occupancy, seed=0)
        rec = open_recording(path)
        config = ClassifyConfig(batch=args.batch, overlap=args.overlap)
        start = time.perf_counter()
        segments, floor = find_segments(rec, config, lambda n: None)
        detected = time.perf_counter()
        items = classify_segments(rec, segments, loaded, thresholds, floor, config)
        done = time.perf_counter()
    windows = sum(i.windows for i in items)
    table = Table(title=f"fedsb classify: {samples:,} samples ({samples * 8 / 1e9:.2f} GB cf32)")
    for col in ("pass", "wall s", "samples/s", f"real-time factor at {args.rate:g} S/s"):
        table.add_column(col, justify="right")
    for name, wall in (
        ("detect", detected - start),
        ("classify", done - detected),
        ("total", done - start),
    ):
        table.add_row(
            name, f"{wall:.2f}", f"{samples / wall:,.0f}", f"{samples / args.rate / wall:.2f}"
        )
    console = Console()
    console.print(table)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(
        f"{bursts} bursts made, {len(items)} found, {windows:,} windows of {loaded.length} "
        f"({windows / (done - detected):,.0f} windows/s); torch threads {torch.get_num_threads()}; "
        f"peak RSS {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
