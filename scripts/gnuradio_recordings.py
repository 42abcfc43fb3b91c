#!/usr/bin/python3
"""Labelled SigMF recordings made with GNU Radio 3.10: data from a toolchain fedsb did not write.

Run with the system Python that has GNU Radio (``/usr/bin/python3``), not the repo venv; this
script never imports fedsb and writes SigMF 1.0 (JSON metadata + raw cf32_le) itself. Modes:

* ``sites``: one sub-directory per site, each with its own hardware name, channel settings,
  SNR mix and class mix (a heterogeneous per-site partition for federated runs).
* ``test``: one independent recording (its own seed stream and channel settings).
* ``bursts``: one long recording without annotations plus ``truth.json`` (burst detector truth).

Everything is seeded (numpy Generators for parameters and data, GNU Radio seeds for noise), so
a seed gives the same bytes whatever ``--jobs`` is. See docs/gnuradio.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from gnuradio_plan import CLASSES, EXTRA_CLASSES, plan

FS = 200e3  # must equal gnuradio_tx.FS (checked when GNU Radio is loaded)
#: Refuse plans above this many samples (800 MB of cf32) before generating anything.
MAX_SAMPLES = 100_000_000
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # synthetic capture times


class ScriptError(Exception):
    """Bad arguments or an unusable output location: printed as one ``error:`` line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Print argparse errors as one ``error:`` line, exit status 2."""
        self.exit(2, f"error: {message}\n")


def _chunks(specs: list[dict], jobs: int) -> Iterator[np.ndarray]:
    """Rendered chunks in order; ``jobs`` worker processes (forked before any flowgraph runs)."""
    import gnuradio_tx

    if gnuradio_tx.FS != FS:
        raise ScriptError(f"gnuradio_tx.FS is {gnuradio_tx.FS}, this script expects {FS}")
    if jobs == 1:
        yield from map(gnuradio_tx.render, specs)
        return
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap(gnuradio_tx.render, specs, chunksize=4)


def _annotations(specs: list[dict]) -> tuple[list[dict], int]:
    """(annotations in sample order, total samples) of a recording's chunks."""
    out, pos = [], 0
    for spec in specs:
        pos += spec["gap"]
        if spec["label"] is not None:
            c, tx = spec["channel"], spec["tx"]
            shape = f"sps={tx['sps']} " if "sps" in tx else ""
            comment = (
                f"{shape}cfo={c['cfo']:.2e} epsilon={c['epsilon']:.7f} "
                f"paths={sum(abs(t) > 0 for t in c['taps'])}"
            )
            out.append({
                "core:sample_start": pos,
                "core:sample_count": spec["count"],
                "core:label": spec["label"],
                "core:generator": "gnuradio_recordings.py",
                "core:comment": comment,
                "capture_details:SNRdB": spec["snr_db"],
                "capture_details:signal_reference_number": len(out),
            })  # fmt: skip
        pos += spec["count"]
    return out, pos


def _meta(rec: dict, samples: int, sha512: str, index: int, version: str) -> dict:
    """The SigMF 1.0 metadata of a recording (capture_details extension declared)."""
    start = EPOCH + dt.timedelta(hours=index)
    stop = start + dt.timedelta(seconds=samples / FS)
    site, stamp = rec["site"], "%Y-%m-%dT%H:%M:%S.%fZ"
    return {
        "global": {
            "core:datatype": "cf32_le",
            "core:sample_rate": FS,
            "core:version": "1.0.0",
            "core:num_channels": 1,
            "core:sha512": sha512,
            "core:hw": site["hw"],
            "core:recorder": "gnuradio",
            "core:description": (
                f"GNU Radio {version} synthetic recording; channel_model with {site['paths']} "
                f"multipath, CFO bias {site['cfo']:.2e} cycles/sample, clock +-{site['ppm']} "
                f"ppm, noise voltage {site['noise_voltage']:.4g}"
            ),
            "core:extensions": [{"name": "capture_details", "version": "1.0.0", "optional": True}],
        },
        "captures": [
            {
                "core:sample_start": 0,
                "core:datetime": start.strftime(stamp),
                "capture_details:acq_scale_factor": 1.0,
                "capture_details:attenuation": 0.0,
                "capture_details:acquisition_bandwidth": FS,
                "capture_details:start_capture": start.strftime(stamp),
                "capture_details:stop_capture": stop.strftime(stamp),
                "capture_details:source_file": rec["stem"].name + ".sigmf-data",
            }
        ],  # fmt: skip
        "annotations": [],
    }


def _stream(path: Path, chunks: Iterable[np.ndarray], deadline: float, total: int) -> str:
    """Write chunks as cf32_le into ``path`` (a .part file); returns the SHA-512.

    Past ``deadline`` it stops with a ScriptError (the caller removes the .part file).
    """
    digest = hashlib.sha512()
    with path.open("wb") as f:
        for i, chunk in enumerate(chunks):
            data = chunk.astype("<c8").tobytes()
            f.write(data)
            digest.update(data)
            if time.monotonic() > deadline and i + 1 < total:
                raise ScriptError(
                    f"time limit reached after {i + 1} of {total} chunks of {path.stem}; "
                    "ask for fewer bursts or raise --time-limit (this recording was not written)"
                )
    return digest.hexdigest()


def _json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def write(rec: dict, index: int, args: argparse.Namespace, deadline: float) -> str:
    """Render and write one recording atomically; returns its one-line summary."""
    from gnuradio import gr

    started, stem = time.monotonic(), rec["stem"]
    stem.parent.mkdir(parents=True, exist_ok=True)
    annotations, samples = _annotations(rec["specs"])
    finals = [stem.with_suffix(".sigmf-data"), stem.with_suffix(".sigmf-meta")]
    truth = stem.parent / "truth.json"
    parts = [p.with_name(p.name + ".part") for p in [*finals, truth]]
    try:
        sha = _stream(parts[0], _chunks(rec["specs"], args.jobs), deadline, len(rec["specs"]))
        if parts[0].stat().st_size != 8 * samples:  # a chunk of the wrong length: a bug
            raise RuntimeError(f"{parts[0]}: size does not match {samples} samples")
        meta = _meta(rec, samples, sha, index, gr.version())
        if args.mode == "bursts":
            bursts = [{"start": a["core:sample_start"], "count": a["core:sample_count"],
                       "label": a["core:label"], "snr_db": a["capture_details:SNRdB"]}
                      for a in annotations]  # fmt: skip
            _json(parts[2], {"recording": finals[1].name, "sample_rate": FS,
                             "samples": samples, "bursts": bursts})  # fmt: skip
        else:
            meta["annotations"] = annotations
        _json(parts[1], meta)
        for part, final in zip(parts, [*finals, truth]):
            if part.exists():
                os.replace(part, final)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    windows = sum(a["core:sample_count"] // args.length for a in annotations)
    what = (
        f"truth in {truth.name}" if args.mode == "bursts" else f"{windows} windows of {args.length}"
    )
    return (
        f"{finals[1]}: {len(annotations)} bursts, {samples} samples, {samples / FS:.3f} s at "
        f"{FS / 1e3:g} kHz, {what} ({time.monotonic() - started:.1f} s to generate)"
    )


def _snr(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO:HI in dB, got {text!r}") from None
    if not (-40 <= lo <= hi <= 60):
        raise argparse.ArgumentTypeError(f"need -40 <= LO <= HI <= 60 dB, got {text!r}")
    return lo, hi


def _count(lo: int, hi: int):
    """An argparse type: an integer in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _classes(text: str) -> tuple[str, ...]:
    """Comma-separated class names; ``extra`` stands for the unseen set EXTRA_CLASSES."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    names = tuple(x for n in names for x in (EXTRA_CLASSES if n == "extra" else (n,)))
    allowed = CLASSES + EXTRA_CLASSES
    unknown = [n for n in names if n not in allowed]
    if unknown or not names or len(set(names)) != len(names):
        bad = f"unknown class {unknown[0]!r}" if unknown else "empty or repeated class list"
        raise argparse.ArgumentTypeError(f"{bad}; choose from {', '.join(allowed)} or extra")
    return names


def parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per mode."""
    top = _Parser(prog="gnuradio_recordings.py", description=__doc__.split("\n")[0])
    modes = top.add_subparsers(dest="mode", required=True)
    helps = {"sites": "one directory per site", "test": "one test recording",
             "bursts": "unannotated bursts + truth.json"}  # fmt: skip
    for mode, text in helps.items():
        p = modes.add_parser(mode, help=text)
        p.add_argument("--out", type=Path, required=True, help="output directory")
        p.add_argument("--length", type=_count(64, 65536), default=1024, help="record length")
        p.add_argument("--snr", type=_snr, default=(-10.0, 20.0), help="SNR range LO:HI (dB)")
        p.add_argument("--seed", type=_count(0, 2**63 - 1), default=0)
        p.add_argument("--classes", type=_classes, default=CLASSES,
                       help="comma-separated; 'extra': the classes RadioML 2016 lacks")  # fmt: skip
        p.add_argument("--jobs", type=_count(1, 64), default=min(2, os.cpu_count() or 1))
        p.add_argument("--time-limit", type=_count(1, 86400), default=600, help="seconds")
        p.add_argument("--force", action="store_true", help="replace existing recordings")
        if mode == "sites":
            p.add_argument("--sites", type=_count(1, 64), default=3)
            p.add_argument("--bursts-per-file", type=_count(1, 100000), default=1000)
        if mode == "bursts":
            p.add_argument("--bursts", type=_count(1, 1000000), default=100)
        else:
            p.add_argument("--bursts-per-class", type=_count(1, 100000), default=10)
    return top


def _limit(total: int, what: str) -> None:
    if total > MAX_SAMPLES:
        raise ScriptError(
            f"plan: {what}{total} samples, over the limit of {MAX_SAMPLES} "
            f"({8 * MAX_SAMPLES // 10**6} MB of cf32); ask for fewer bursts or shorter records"
        )


def check_size(args: argparse.Namespace) -> None:
    """Refuse a plan that must exceed MAX_SAMPLES before drawing it (each burst >= 1 record)."""
    if args.mode == "bursts":
        bursts = args.bursts
    else:
        bursts = args.bursts_per_class * len(args.classes) * getattr(args, "sites", 1)
    _limit(bursts * args.length, "at least ")


def check(recordings: list[dict], args: argparse.Namespace) -> None:
    """Refuse oversize plans and existing outputs before anything is generated."""
    _limit(sum(s["gap"] + s["count"] for r in recordings for s in r["specs"]), "")
    if args.out.exists() and not args.out.is_dir():
        raise ScriptError(f"{args.out}: exists and is not a directory")
    for rec in recordings:
        names = [".sigmf-meta", ".sigmf-data"]
        paths = [rec["stem"].with_suffix(s) for s in names]
        if args.mode == "bursts":
            paths.append(rec["stem"].parent / "truth.json")
        for path in paths:
            if path.exists() and not args.force:
                raise ScriptError(f"{path}: already exists; pass --force to replace it")


def main(argv: list[str] | None = None) -> int:
    """Plan, check, then render and write every recording; one summary line per file."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv[:-1]):  # "--snr -10:20": argparse would take -10:20 for an option
        if arg == "--snr":
            argv[i : i + 2] = [f"--snr={argv[i + 1]}", ""]
    args = parser().parse_args([a for a in argv if a != ""])
    try:
        check_size(args)
        recordings = plan(args)
        check(recordings, args)
        deadline = time.monotonic() + args.time_limit
        for index, rec in enumerate(recordings):
            print(write(rec, index, args, deadline), flush=True)
    except ScriptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
