"""The batched, seeded generator: classes x impairments x SNR -> RecordSet.

Reproducibility: records are produced in fixed blocks of BLOCK records. Block b draws from
Generators seeded by ``SeedSequence(seed, spawn_key=(b, purpose[, class]))``, so the output
depends only on (config, classes, per_class, seed): not on how blocks are grouped into tasks,
nor on the number of worker processes.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from . import analog, digital, distortion, hardware, impairments, placement, tdl
from .classes import GENERATED_CLASSES, resolve_classes
from .config import GeneratorConfig, recorded
from .dsp import unit_power
from .recordset import RecordSet

# Workers run numpy only, so fork is safe even when the parent has loaded torch, and it avoids
# re-importing the parent's modules in every worker; other platforms use spawn.
_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"

BLOCK = 256  # records per seeded block (fixed: changing it changes every generated set)

#: Per-record metadata written for every generated record (NaN where it does not apply). The
#: broad-domain options add theirs when they are on (``placement.extra_meta_keys``).
META_KEYS = (
    "snr_db",
    "sps",
    "timing",
    "rolloff",
    "bt",
    "mod_index",
    "sideband",
    "fading",
    "taps",
    "delay_spread",
    "k_db",
    "doppler",
    "cfo",
    "phase",
    "phase_noise",
    "iq_amp_db",
    "iq_phase_deg",
    "dc_db",
)

Synth = Callable[..., tuple[np.ndarray, dict[str, np.ndarray]]]
SYNTHESISERS: dict[str, Synth] = {
    **{name: digital.linear for name in digital.LINEAR_CLASSES},
    **{name: digital.fsk for name in digital.FSK_CLASSES},
    "oqpsk": digital.oqpsk,
    "ofdm": digital.ofdm,
    "am-dsb": analog.am_dsb,
    "am-dsb-sc": analog.am_dsb,
    "am-ssb": analog.am_ssb,
    "am-ssb-wc": analog.am_ssb,
    "am-ssb-upper": analog.am_ssb,
    "am-ssb-lower": analog.am_ssb,
    "wbfm": analog.wbfm,
    "nbfm": analog.fm,
    "lfm": analog.lfm,
}
assert set(SYNTHESISERS) == set(GENERATED_CLASSES), "every class needs a synthesiser"

_PURPOSE = {
    "labels": 0,
    "synth": 1,
    "fading": 2,
    "carrier": 3,
    "iq": 4,
    "dc": 5,
    "snr": 6,
    "noise": 7,
    "band": 8,
    "center": 9,
    "bursts": 10,
    "amplifier": 11,
    "adc": 12,
    "polynomial": 13,
    "dense": 14,
    "receiver": 15,
    "edge": 16,
}


def stream(seed: int, block: int, purpose: str, extra: int = 0) -> np.random.Generator:
    """The Generator for one (block, purpose[, class]) of a seeded set."""
    key = (block, _PURPOSE[purpose], extra)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def balanced_labels(n_classes: int, per_class: int | Sequence[int], seed: int) -> np.ndarray:
    """Shuffled labels with exactly ``per_class`` of each class (or ``per_class[c]`` of class c)."""
    labels = np.repeat(np.arange(n_classes, dtype=np.int64), per_class)
    return stream(seed, -1 % (1 << 32), "labels").permutation(labels)


def draw_snr(rng: np.random.Generator, n: int, config: GeneratorConfig) -> np.ndarray:
    """SNR per record, uniform in the range, on a grid of ``snr_step`` dB when it is > 0."""
    lo, hi = config.snr_db
    if config.snr_step > 0:
        grid = np.arange(lo, hi + config.snr_step / 2, config.snr_step)
        return grid[rng.integers(0, len(grid), size=n)]
    return rng.uniform(lo, hi, size=n)


def meta_keys(config: GeneratorConfig) -> tuple[str, ...]:
    """The metadata a set generated with ``config`` has: META_KEYS and the options' own."""
    return META_KEYS + placement.extra_meta_keys(config)


def _synthesise(
    config: GeneratorConfig,
    classes: Sequence[str],
    labels: np.ndarray,
    seed: int,
    block: int,
    meta: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray | None]:
    """The block's transmitted records (n, L + channel padding) and the burst mask (or None).

    Fills ``meta`` with the synthesisers' draws and the broad-domain options' ones.
    """
    n = len(labels)
    padded = config.length + impairments.channel_padding(config.fading)
    padded += config.distortion.padding
    band = None
    if config.banded:
        band = meta["bandwidth"] = placement.draw_bandwidth(stream(seed, block, "band"), n, config)
    x = np.empty((n, padded), np.complex64)
    for c in np.unique(labels):  # one vectorised call per class present in the block
        name = classes[c]
        sel = np.flatnonzero(labels == c)
        rng = stream(seed, block, "synth", GENERATED_CLASSES.index(name))
        extra = () if band is None else (band[sel],)
        x[sel], synth_meta = SYNTHESISERS[name](name, rng, sel.size, padded, config.pulse, *extra)
        for key, value in synth_meta.items():
            meta[key][sel] = value
    mask = None
    if config.bursts.probability > 0:
        rng = stream(seed, block, "bursts")
        mask, m = placement.burst_mask(rng, n, config.length, config.bursts)
        meta.update(m)
        x = placement.gate(x, mask)
    if "center" in meta:
        width = None if band is None else meta["bandwidth"]  # as realised (OFDM rounds it)
        meta["center"] = placement.draw_center(stream(seed, block, "center"), n, config, width)
        x = placement.shift(x, meta["center"])
    return x, mask


def generate_block(
    config: GeneratorConfig, classes: Sequence[str], labels: np.ndarray, seed: int, block: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Generate the records of one block: (n, L) complex64 and its ``meta_keys`` arrays."""
    n, length = len(labels), config.length
    meta = {k: np.full(n, np.nan) for k in meta_keys(config)}
    x, mask = _synthesise(config, classes, labels, seed, block, meta)
    spoil = config.distortion
    if spoil.edge_cut_probability > 0 and "center" in meta and "bandwidth" in meta:
        rng = stream(seed, block, "edge")
        x, m = distortion.edge_cut(x, rng, spoil, meta["center"], meta["bandwidth"])
        meta.update(m)
    if spoil.enabled:
        x, m = distortion.polynomial(x, stream(seed, block, "polynomial"), spoil)
        meta.update(m)
    if config.hardware.enabled:
        x, m = hardware.amplifier(x, stream(seed, block, "amplifier"), config.hardware)
        meta.update(m)
    if spoil.enabled:
        x, m = distortion.dense_multipath(x, stream(seed, block, "dense"), spoil)
        meta.update(m)
    fade = tdl.multipath if config.fading.enabled and config.fading.standard else None
    x, m = (fade or impairments.multipath)(x, stream(seed, block, "fading"), config.fading, length)
    meta.update(m)
    x, m = impairments.carrier(x, stream(seed, block, "carrier"), config.impairments)
    meta.update(m)
    x, m = impairments.iq_imbalance(x, stream(seed, block, "iq"), config.impairments)
    meta.update(m)
    x, m = impairments.dc_offset(x, stream(seed, block, "dc"), config.impairments)
    meta.update(m)
    # the SNR refers to the received, impaired signal (of a burst: while it is on)
    x = unit_power(x) if mask is None else placement.on_power(x, mask)
    snr = draw_snr(stream(seed, block, "snr"), n, config)
    if config.noise_enabled:
        x = impairments.awgn(x, stream(seed, block, "noise"), snr)
        meta["snr_db"] = snr
    else:
        meta["snr_db"] = np.full(n, np.inf)
    if spoil.enabled:
        x, m = distortion.receiver(x, stream(seed, block, "receiver"), spoil)
        meta.update(m)
    if config.hardware.enabled:  # the receiver's ADC sees the noise too
        x, m = hardware.adc(x, stream(seed, block, "adc"), config.hardware)
        meta.update(m)
    return x, meta


def _run_blocks(args: tuple) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    config, classes, labels, seed, first_block = args
    parts = [
        generate_block(config, classes, labels[i : i + BLOCK], seed, first_block + i // BLOCK)
        for i in range(0, len(labels), BLOCK)
    ]
    iq = np.concatenate([p[0] for p in parts])
    return iq, {k: np.concatenate([p[1][k] for p in parts]) for k in meta_keys(config)}


def _run_tasks(
    tasks: list[tuple],
    workers: int,
    config: GeneratorConfig,
    progress: Callable[[int], None] | None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every task's records in task order, in this process or a pool (same bits either way)."""
    results = []
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            results.append(_run_blocks(task))
            if progress:
                progress(len(task[2]))
    else:
        ctx = multiprocessing.get_context(_START_METHOD)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for task, result in zip(tasks, pool.map(_run_blocks, tasks)):
                results.append(result)
                if progress:
                    progress(len(task[2]))
    keys = meta_keys(config)
    if not results:
        return np.zeros((0, config.length), np.complex64), {k: np.zeros(0) for k in keys}
    iq = np.concatenate([r[0] for r in results])
    return iq, {k: np.concatenate([r[1][k] for r in results]) for k in keys}


def generate(
    config: GeneratorConfig,
    classes: str | Sequence[str] = "rml2016",
    per_class: int | Sequence[int] = 100,
    seed: int = 0,
    workers: int = 1,
    chunk: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> RecordSet:
    """Generate ``per_class`` records of each class, shuffled, reproducibly from ``seed``.

    Args:
        config: ranges of every per-record parameter.
        classes: a class-set name (``rml2016``, ``all``, ``wide25``), a comma list or a
            sequence of names.
        per_class: records per class, or one count per class (label-skewed client sets).
        seed: the whole set is a function of (config, classes, per_class, seed).
        workers: worker processes (1: in this process, 0: one per core); the output does not
            depend on it.
        chunk: records per task, rounded to whole blocks (default: about four tasks per
            worker, at most 4096 records each).
        progress: called with the number of records finished after each task.
    """
    names = resolve_classes(classes if isinstance(classes, str) else tuple(classes))
    if isinstance(per_class, int | np.integer):
        if per_class < 0:
            raise ValueError("per_class must be >= 0")
    else:
        per_class = [int(n) for n in per_class]
        if len(per_class) != len(names) or min(per_class, default=0) < 0:
            raise ValueError(f"per_class: expected {len(names)} counts >= 0, got {per_class}")
    labels = balanced_labels(len(names), per_class, seed)
    if workers == 0:
        workers = os.cpu_count() or 1
    if chunk is None:
        chunk = min(4096, -(-len(labels) // (4 * max(workers, 1))))
    step = max(1, -(-chunk // BLOCK)) * BLOCK
    tasks = [
        (config, names, labels[s : s + step], seed, s // BLOCK) for s in range(0, len(labels), step)
    ]
    iq, meta = _run_tasks(tasks, workers, config, progress)
    info = {
        "source": "fedsb.generate",
        "seed": seed,
        "per_class": per_class,
        "generator": recorded(config),  # without the broad-domain options while they are off
    }
    return RecordSet(iq=iq, labels=labels, class_names=names, meta=meta, info=info)
