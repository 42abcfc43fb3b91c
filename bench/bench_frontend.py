"""Front-end estimates against what the generator drew, by SNR (issue 16, section 1).

Run: ``python bench/bench_frontend.py`` (``--per-class 300 --seed 0``; ``--no-fading`` for a
flat channel). Records are the generator's linear modulations (bpsk, qpsk, 8psk, 16qam, 64qam:
their occupied band is (1 + rolloff) / sps) with centre offsets across the whole band
(cfo +-0.25 cycles/sample) and bandwidths 5-100 % (four sps ranges, equal counts), every
other impairment at its default. Half of the records are cut to a burst (20-95 % of the
record, placed at random) before white noise is added at the drawn SNR, which is the SNR
while the signal is on.

``--carrier lines`` takes the centre from x^p's clear line where there is one
(``fedsb.signals.carrier``). ``--records FILE`` scores a file instead, against the truth it
stores per record (``meta``: ``center`` in cycles/sample, ``bandwidth`` as a fraction of the
sample rate, the signal's ``start`` and ``stop``, and ``snr_db``), for example TorchSig's own
metadata as ``scripts/torchsig_recordings.py`` keeps it; its rows are per class at SNR >=
``--min-snr``.
TorchSig's ``bandwidth`` is its 3 dB bandwidth of the part of the band it kept, so the bw
ratio there is against that, not against the occupied band.

Printed (markdown): per SNR bin, the median / 90th percentile of |f0 error| (cycles/sample,
records whose band is < 90 % of the sample rate: a band filling the whole circle has no
centre), of |bw estimate / true - 1|, and of the burst edge error max(|start error|,
|stop error|) in samples over the bursts, with the share of bursts gated and of continuous
records gated by mistake; then the same by bandwidth bin, and the CPU time per record of the
estimates, of the whole front-end and of the default images with and without it.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from fedsb.images import ImageConfig, to_images
from fedsb.io.load import load_records
from fedsb.signals.carrier import line_carrier
from fedsb.signals.config import FadingConfig, GeneratorConfig, PulseConfig
from fedsb.signals.frontend import FrontendConfig, apply_frontend, estimate
from fedsb.signals.generator import generate

CLASSES = "bpsk,qpsk,8psk,16qam,64qam"
SPS_RANGES = ((1.5, 3.0), (3.0, 6.0), (6.0, 12.0), (12.0, 26.0))  # bw ~ 1.0 ... 0.044
SNR_RANGE = (-10.0, 30.0)
SNR_BINS = (-10, -5, 0, 5, 10, 15, 20, 30)
BW_BINS = (0.0, 0.1, 0.2, 0.4, 0.7, 1.01)
LENGTH = 1024


def make_records(per_class: int, seed: int, fading: bool) -> dict[str, np.ndarray]:
    """Clean generator records over the sps ranges, half cut to bursts, noise added."""
    parts = []
    for i, sps in enumerate(SPS_RANGES):
        cfg = GeneratorConfig(length=LENGTH, noise_enabled=False, pulse=PulseConfig(sps=sps))
        cfg = dataclasses.replace(
            cfg,
            fading=FadingConfig() if fading else FadingConfig(enabled=False),
            impairments=dataclasses.replace(cfg.impairments, cfo=(-0.25, 0.25)),
        )
        parts.append(generate(cfg, CLASSES, per_class, seed=seed + i))
    iq = np.concatenate([p.iq for p in parts])
    meta = {k: np.concatenate([p.meta[k] for p in parts]) for k in ("cfo", "sps", "rolloff")}
    rng = np.random.default_rng(seed)
    n = len(iq)
    burst = rng.random(n) < 0.5
    duration = np.where(burst, rng.integers(LENGTH // 5, int(0.95 * LENGTH), n), LENGTH)
    start = rng.integers(0, LENGTH - duration + 1)
    k = np.arange(LENGTH)
    on = (k >= start[:, None]) & (k < (start + duration)[:, None])
    snr = rng.uniform(*SNR_RANGE, n)
    noise = rng.standard_normal((n, LENGTH)) + 1j * rng.standard_normal((n, LENGTH))
    x = iq * on + noise * np.sqrt(10 ** (-snr / 10) / 2)[:, None]
    return {
        "iq": x.astype(np.complex64),
        "snr": snr,
        "f0": meta["cfo"],
        "bw": np.minimum((1 + meta["rolloff"]) / meta["sps"], 1.0),
        "burst": burst,
        "start": start,
        "stop": start + duration,
    }


TRUTH = ("center", "bandwidth", "start", "stop", "snr_db")


def file_records(path: str) -> tuple[dict[str, np.ndarray], np.ndarray, tuple[str, ...]]:
    """A file's records with the truth its ``meta`` holds, their labels and class names."""
    records = load_records(path)
    missing = [k for k in TRUTH if k not in records.meta]
    if missing:
        raise SystemExit(f"error: {path}: no per-record {', '.join(missing)} to score against")
    m = records.meta
    data = {
        "iq": records.iq,
        "snr": np.asarray(m["snr_db"], np.float64),
        "f0": np.asarray(m["center"], np.float64),
        "bw": np.asarray(m["bandwidth"], np.float64),
        "burst": (m["stop"] - m["start"]) < records.length,
        "start": np.asarray(m["start"]),
        "stop": np.asarray(m["stop"]),
    }
    return data, records.labels, tuple(records.class_names)


def file_report(path: str, min_snr: float, carrier: str) -> None:
    """The estimate errors on a file's records, per class at SNR >= ``min_snr``."""
    data, labels, names = file_records(path)
    band = estimate(data["iq"])
    err = errors(data, band if carrier == "band" else estimate(data["iq"], carrier=carrier))
    print(f"{path}: {len(labels):,} records of {data['iq'].shape[1]} samples\n")
    print(HEADER.format(f"class (SNR >= {min_snr:g} dB)"))
    high = data["snr"] >= min_snr
    for k, name in enumerate(names):
        print(row(name, high & (labels == k), data, err))
    print(row("all", high, data, err))
    line, found = line_carrier(data["iq"], band.f0, band.start, band.stop)
    shift = np.abs((line - band.f0 + 0.5) % 1.0 - 0.5)
    print("\n| class | clear x^p line | abs(line carrier - band centre), median / p90 |")
    print("|---|---|---|")
    for k, name in enumerate(names):
        sel = high & (labels == k)
        print(f"| {name} | {share(found[sel], '.2f')} | {stats(shift[sel & found], '.4f')} |")


def errors(data: dict[str, np.ndarray], est) -> dict[str, np.ndarray]:
    """Per-record absolute errors of every estimate."""
    return {
        "f0": np.abs((est.f0 - data["f0"] + 0.5) % 1.0 - 0.5),
        "bw": np.abs(est.bw / data["bw"] - 1.0),
        "edge": np.maximum(np.abs(est.start - data["start"]), np.abs(est.stop - data["stop"])),
        "gated": est.gated,
        "detected": est.detected,
    }


def stats(values: np.ndarray, fmt: str) -> str:
    """``median / p90`` of ``values`` (a dash when empty)."""
    if values.size == 0:
        return "-"
    return f"{np.median(values):{fmt}} / {np.quantile(values, 0.9):{fmt}}"


def share(flags: np.ndarray, fmt: str) -> str:
    """The share of true ``flags`` (a dash when empty)."""
    return f"{flags.mean():{fmt}}" if flags.size else "-"


def row(label: str, sel: np.ndarray, data: dict, err: dict) -> str:
    """One markdown table row over the records in ``sel``."""
    centred = sel & (data["bw"] < 0.9)
    bursts, steady = sel & data["burst"], sel & ~data["burst"]
    cells = [
        label,
        f"{sel.sum()}",
        f"{err['detected'][sel].mean():.2f}",
        stats(err["f0"][centred], ".4f"),
        stats(err["bw"][sel & err["detected"]], ".2f"),
        stats(err["edge"][bursts], ".0f"),
        share(err["gated"][bursts], ".2f"),
        share(err["gated"][steady], ".3f"),
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| {} | records | band detected | abs f0 error, median / p90 | abs(bw ratio - 1), median / p90"
    " | burst edge error (samples), median / p90 | bursts gated | continuous gated |\n"
    "|---|---|---|---|---|---|---|---|"
)


def timing(iq: np.ndarray, carrier: str) -> dict[str, float]:
    """CPU microseconds per record (best of 3, one thread): estimates, front-end, images."""
    torch.set_num_threads(1)
    full = FrontendConfig(recentre=True, resample=True, gate=True, carrier=carrier)
    runs = {
        "estimates": lambda: estimate(iq, carrier=carrier),
        "full front-end": lambda: apply_frontend(iq, full),
        "images (rich stack, front-end off)": lambda: to_images(iq, ImageConfig()),
        "images with the full front-end": lambda: to_images(iq, ImageConfig(frontend=full)),
    }
    out = {}
    for name, fn in runs.items():
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            fn()
            best = min(best, time.process_time() - t0)
        out[name] = best / len(iq) * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--per-class", type=int, default=300, help="records per class and sps range"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fading", action="store_true", help="a flat channel (no multipath)")
    parser.add_argument("--records", help="score this file against the truth it stores")
    parser.add_argument("--min-snr", type=float, default=20.0, help="with --records")
    parser.add_argument("--carrier", choices=("band", "lines"), default="band", help="f0 from")
    args = parser.parse_args()
    if args.records:
        return file_report(args.records, args.min_snr, args.carrier)
    data = make_records(args.per_class, args.seed, not args.no_fading)
    err = errors(data, estimate(data["iq"], carrier=args.carrier))
    print(f"{len(data['iq']):,} records of {LENGTH} samples, fading {not args.no_fading}\n")
    print(HEADER.format("SNR (dB)"))
    for lo, hi in zip(SNR_BINS[:-1], SNR_BINS[1:]):
        sel = (data["snr"] >= lo) & (data["snr"] < hi)
        print(row(f"{lo} to {hi}", sel, data, err))
    print(row("all", np.ones(len(data["iq"]), bool), data, err))
    print("\n" + HEADER.format("true bandwidth (SNR >= 0 dB)"))
    for lo, hi in zip(BW_BINS[:-1], BW_BINS[1:]):
        sel = (data["bw"] >= lo) & (data["bw"] < hi) & (data["snr"] >= 0)
        print(row(f"{lo:.0%} to {min(hi, 1):.0%}", sel, data, err))
    times = timing(data["iq"][:1024], args.carrier)
    print(
        "\ntime per record (CPU, one thread): "
        + ", ".join(f"{k} {v:.0f} us" for k, v in times.items())
    )


if __name__ == "__main__":
    main()
