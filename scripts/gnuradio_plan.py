"""Burst plans for scripts/gnuradio_recordings.py: every parameter and seed, drawn up front.

Planning uses numpy Generators only (no GNU Radio), so a plan is cheap, can be checked for size
before anything is rendered, and fixes every burst whatever order the workers render them in.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

#: RadioML 2016.10a class names, spelled as RadioML writes them (fedsb maps them by alias).
CLASSES: tuple[str, ...] = (
    "BPSK", "QPSK", "8PSK", "QAM16", "QAM64", "PAM4",
    "GFSK", "CPFSK", "WBFM", "AM-DSB", "AM-SSB",
)  # fmt: skip

#: Classes no RadioML 2016 model has seen (``--classes extra``), for measuring unknowns.
EXTRA_CLASSES: tuple[str, ...] = (
    "OOK", "16PSK", "32QAM", "256QAM", "16APSK", "4FSK", "OFDM", "LFM", "NBFM", "AM-DSB-SC",
)  # fmt: skip
ANALOG = ("WBFM", "AM-DSB", "AM-SSB", "NBFM", "AM-DSB-SC")

#: Per-site receivers: multipath profile, CFO bias bound and jitter (cycles/sample), clock error
#: (ppm), SNR mix (Beta a, b over the --snr range) and noise floor (channel noise voltage).
SITES: tuple[dict[str, Any], ...] = (
    {"hw": "usrp-b210", "paths": "los", "cfo_bias": 5e-4, "cfo_jitter": 5e-4, "ppm": 2,
     "snr_ab": (1.0, 1.0), "noise_voltage": 0.01},
    {"hw": "rtl-sdr-v3", "paths": "urban", "cfo_bias": 6e-3, "cfo_jitter": 2e-3, "ppm": 50,
     "snr_ab": (1.0, 2.5), "noise_voltage": 0.05},
    {"hw": "hackrf-one", "paths": "indoor", "cfo_bias": 3e-3, "cfo_jitter": 4e-3, "ppm": 20,
     "snr_ab": (2.5, 1.0), "noise_voltage": 0.02},
)  # fmt: skip
TEST_SITE = {"hw": "test-usrp-x310", "paths": "mixed", "cfo_bias": 2e-3, "cfo_jitter": 3e-3,
             "ppm": 10, "snr_ab": (1.0, 1.0), "noise_voltage": 0.03}  # fmt: skip
BURSTS_SITE = {"hw": "bursts-bladerf-2", "paths": "mixed", "cfo_bias": 1e-3, "cfo_jitter": 2e-3,
               "ppm": 5, "snr_ab": (1.0, 1.0), "noise_voltage": 0.02}  # fmt: skip
MODE_KEYS = {"sites": 0, "test": 1, "bursts": 2}  # separate seed streams per mode


def _seed(value: int) -> int:
    """A GNU Radio seed: never 0 (GNU Radio seeds 0 from the clock)."""
    return int(value) % (2**31 - 2) + 1


def _tx_params(label: str, rng: np.random.Generator) -> dict[str, Any]:
    """Random transmitter settings in the spirit of RadioML 2016 (GNU Radio blocks)."""
    p: dict[str, Any] = {"label": label, "data_seed": int(rng.integers(2**63))}
    if label in ANALOG:
        wide = label == "WBFM"
        p.update(
            audio_seed=_seed(rng.integers(2**31)),
            audio_bw=float(rng.uniform(5e3, 15e3) if wide else rng.uniform(2.5e3, 5e3)),
            audio_rms=0.3,
            syllable_hz=float(rng.uniform(2.0, 6.0)),
            tone_hz=float(rng.uniform(300.0, 3000.0)),
            tone_amp=float(rng.uniform(0.0, 0.3)),
            mod_index=float(rng.uniform(0.4, 0.9)),
            sideband=str(rng.choice(["usb", "lsb"])),
            tau=float(rng.choice([50e-6, 75e-6])),
            max_dev=float(rng.uniform(25e3, 75e3)),
        )
    elif label == "LFM":  # chirps sweeping 5-40 % of the band every 256-4096 samples
        p.update(sweep=float(rng.uniform(0.05, 0.4)), period=int(rng.integers(256, 4097)))
    elif label == "OFDM":  # 64 or 128 subcarriers, a quarter to 3/4 of them used
        size = int(rng.choice([64, 128]))
        p.update(fft_len=size, used=2 * int(rng.integers(size // 8, 3 * size // 8 + 1)))
        p.update(bits=int(rng.choice([2, 4])))
    else:
        p.update(sps=int(rng.integers(4, 17)), rolloff=float(rng.uniform(0.2, 0.5)))
        p.update(index=float(rng.uniform(0.3, 0.7) if label == "GFSK" else rng.uniform(0.5, 1.0)))
        p.update(bt=float(rng.uniform(0.3, 0.5)))
    return p


def _taps(kind: str, rng: np.random.Generator) -> list[complex]:
    """Unit-energy multipath taps, direct path first (so the burst start stays put)."""
    if kind == "mixed":
        kind = str(rng.choice(["los", "urban", "indoor"]))
    if kind == "los":  # strong direct path, one weak echo 1-3 samples later
        taps = np.zeros(int(rng.integers(2, 5)), complex)
        taps[0], taps[-1] = 1.0, rng.uniform(0.0, 0.15) * np.exp(2j * np.pi * rng.random())
    else:  # urban: sparse Rician/Rayleigh echoes up to 8 samples; indoor: dense, short
        span = 9 if kind == "urban" else int(rng.integers(2, 5))
        where = np.arange(span) if kind == "indoor" else np.r_[0, np.sort(
            rng.choice(np.arange(1, 9), int(rng.integers(2, 5)), replace=False))]  # fmt: skip
        decay = rng.uniform(1.0, 3.0) if kind == "urban" else rng.uniform(0.5, 1.0)
        taps = np.zeros(span, complex)
        gains = rng.normal(size=(len(where), 2)) @ np.array([1, 1j])
        taps[where] = gains * np.sqrt(np.exp(-where / decay) / 2)
        taps[0] += 1.0 if kind == "urban" else math.sqrt(3.0)  # direct path (Rician K 1 or 3)
    taps /= np.linalg.norm(taps)
    return [complex(t) for t in taps]


def _burst(label: str | None, count: int, gap: int, site: dict, snr: tuple, rng) -> dict:
    """One chunk to render: ``gap`` noise samples, then a ``count``-sample burst of ``label``."""
    lo, hi = snr
    a, b = site["snr_ab"]
    channel = {
        "noise_voltage": site["noise_voltage"],
        "cfo": site["cfo"] + float(rng.uniform(-1, 1)) * site["cfo_jitter"],
        "epsilon": 1.0 + float(rng.uniform(-1, 1)) * site["ppm"] * 1e-6,
        "taps": _taps(site["paths"], rng),
        "noise_seed": _seed(rng.integers(2**31)),
        "phase": float(rng.uniform(0, 2 * np.pi)),
    }
    spec = {"label": label, "count": count, "gap": gap, "channel": channel, "snr_db": 0.0}
    if label is not None:
        spec["snr_db"] = round(float(lo + (hi - lo) * rng.beta(a, b)), 1)
        spec["tx"] = _tx_params(label, rng)
    return spec


def _site(base: dict, rng: np.random.Generator, classes: tuple, skew: bool) -> dict:
    """A receiver: the base profile with its own CFO bias and (when ``skew``) class weights."""
    k = len(classes)
    weights = np.full(k, 1.0 / k)
    if skew:  # label skew: half of a uniform share at least, the rest Dirichlet-distributed
        weights = 0.5 / k + 0.5 * rng.dirichlet(np.ones(k))
    return {**base, "cfo": float(rng.uniform(-1, 1)) * base["cfo_bias"], "weights": weights}


def _recording(stem: Path, site: dict, labels: list, args, rng, gaps: tuple[int, int]) -> dict:
    """Specs of one recording: each label's burst behind a noise gap, then a closing gap.

    Bursts are 2-4 records long (``bursts`` mode: any length from 1 to 4 records).
    """
    n = args.length
    specs = []
    for label in [*labels, None]:
        count = int(rng.integers(2, 5)) * n
        if args.mode == "bursts":
            count = int(rng.integers(n, 4 * n + 1))
        gap = int(rng.integers(gaps[0], gaps[1] + 1))
        specs.append(_burst(label, 0 if label is None else count, gap, site, args.snr, rng))
    return {"stem": stem, "site": site, "specs": specs}


def plan(args: argparse.Namespace) -> list[dict]:
    """Every recording of the run, with every burst's parameters and seeds (cheap, no GR)."""
    n, classes, key = args.length, args.classes, MODE_KEYS[args.mode]
    root = np.random.SeedSequence(args.seed, spawn_key=(key,))
    short = (max(16, n // 8), max(32, n // 2))
    if args.mode == "bursts":
        rng = np.random.default_rng(root)
        site = _site(BURSTS_SITE, rng, classes, skew=False)
        labels = list(rng.choice(classes, args.bursts))
        return [_recording(args.out / "bursts", site, labels, args, rng, (n // 2, 8 * n))]
    if args.mode == "test":
        rng = np.random.default_rng(root)
        site = _site(TEST_SITE, rng, classes, skew=False)
        labels = list(rng.permutation(np.repeat(classes, args.bursts_per_class)))
        return [_recording(args.out / "test", site, labels, args, rng, short)]
    recordings = []
    for i, seq in enumerate(root.spawn(args.sites)):
        rng = np.random.default_rng(seq)
        base = dict(SITES[i % len(SITES)], hw=f"site{i}-{SITES[i % len(SITES)]['hw']}")
        if i >= len(SITES):  # later sites: the same kinds of receiver at other noise levels
            base["noise_voltage"] *= float(rng.uniform(0.5, 2.0))
        site = _site(base, rng, classes, skew=True)
        counts = rng.multinomial(args.bursts_per_class * len(classes), site["weights"])
        labels = list(rng.permutation(np.repeat(classes, counts)))
        for r, start in enumerate(range(0, len(labels), args.bursts_per_file)):
            stem = args.out / f"site{i}" / f"site{i}_{r:02d}"
            chunk = labels[start : start + args.bursts_per_file]
            recordings.append(_recording(stem, site, chunk, args, rng, short))
    return recordings
