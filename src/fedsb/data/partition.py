"""Client partitions: who holds which classes, how much data, at which SNRs and over which channel.

Our data are generated, so a partition is a *plan* (class counts, an SNR window and an impairment
profile per client) and each client's records are drawn from its own generator config with its
own seed. Skews combine: Dirichlet(alpha) label skew, lognormal quantity skew, SNR windows and
channel profiles. Every draw comes from ``partition.seed``; the data from ``data.seed``.

Each client has three splits from its own conditions: train (skewed counts), val and test
(class-balanced). The global test set is the union of the clients' test splits, so it covers
every client's SNR window and channel. ``build_client_data`` builds a client at once;
``client_sets`` lists 1,000 clients and builds a training split only when it is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..signals import resolve_classes
from ..signals.config import GeneratorConfig
from .config import CHANNEL_PROFILES, DataConfig, PartitionConfig
from .imageset import SPLIT_SEEDS, ImageSet, load_or_build

CLIENT_SEED_STRIDE = 7919  # client i's data seed = data.seed + stride * (i + 1) + split offset


def channel_profile(base: GeneratorConfig, profile: str) -> GeneratorConfig:
    """The base (target) generator narrowed to one dominant impairment.

    multipath: 3-4 taps with the largest delay spread; cfo: the full carrier offset range with a
    single flat-fading tap; iq-imbalance: strong IQ imbalance, mild multipath; flat: one Rician
    tap, small offsets; phase-noise: strong phase noise, mild multipath.
    """
    fading, imp = base.fading, base.impairments
    small_cfo = tuple(c / 5 for c in imp.cfo)
    if profile == "multipath":
        fading = replace(fading, taps=(3, 4), delay_spread=(1.0, 1.5))
        imp = replace(imp, cfo=small_cfo)
    elif profile == "cfo":
        fading = replace(fading, taps=(1, 1))
    elif profile == "iq-imbalance":
        fading = replace(fading, taps=(1, 2), delay_spread=(0.3, 0.6))
        imp = replace(imp, cfo=small_cfo, iq_amplitude_db=(-2.0, 2.0), iq_phase_deg=(-10.0, 10.0))
    elif profile == "flat":
        fading = replace(fading, taps=(1, 1), model="rician")
        imp = replace(imp, cfo=small_cfo)
    elif profile == "phase-noise":
        fading = replace(fading, taps=(1, 2), delay_spread=(0.3, 0.6))
        imp = replace(imp, cfo=small_cfo, phase_noise=(0.005, 0.02))
    else:
        raise ValueError(f"unknown channel profile {profile!r}; expected {CHANNEL_PROFILES}")
    return replace(base, fading=fading, impairments=imp)


@dataclass(frozen=True)
class ClientPlan:
    """One client's share: class counts of its training split and its conditions."""

    client: int
    counts: tuple[int, ...]  # training records per class
    snr_db: tuple[float, float]
    profile: str  # a CHANNEL_PROFILES name, or "mixed" (the target generator as is)
    generator: GeneratorConfig

    @property
    def size(self) -> int:
        """Training records of this client, all classes together."""
        return sum(self.counts)


def _rounded(shares: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``shares`` (largest remainder)."""
    raw = shares / shares.sum() * total
    counts = np.floor(raw).astype(np.int64)
    remainder = total - counts.sum()
    counts[np.argsort(counts - raw, kind="stable")[:remainder]] += 1
    return counts


def plan_partition(cfg: PartitionConfig, data: DataConfig) -> list[ClientPlan]:
    """The seeded plan of every client (no data generated)."""
    rng = np.random.default_rng(cfg.seed)
    k = len(resolve_classes(data.classes))
    n = cfg.clients
    if cfg.quantity_sigma > 0:
        sizes = _rounded(rng.lognormal(0.0, cfg.quantity_sigma, n), cfg.records_per_client * n)
    else:
        sizes = np.full(n, cfg.records_per_client)
    sizes = np.maximum(sizes, cfg.min_records)
    lo, hi = data.generator.snr_db
    window = min(cfg.snr_window_db, hi - lo)
    starts = np.linspace(lo, hi - window, n) if n > 1 else np.array([lo])
    starts = rng.permutation(starts)
    profiles = [CHANNEL_PROFILES[i % len(CHANNEL_PROFILES)] for i in rng.permutation(n)]
    plans = []
    for i in range(n):
        if cfg.dirichlet_alpha > 0:
            shares = rng.dirichlet(np.full(k, cfg.dirichlet_alpha))
        else:
            shares = np.ones(k)
        counts = _rounded(shares, int(sizes[i]))
        snr = (float(starts[i]), float(starts[i] + window)) if cfg.snr_skew else (lo, hi)
        profile = profiles[i] if cfg.channel_skew else "mixed"
        generator = (
            data.generator if profile == "mixed" else channel_profile(data.generator, profile)
        )
        generator = replace(generator, snr_db=snr)
        plans.append(ClientPlan(i, tuple(int(c) for c in counts), snr, profile, generator))
    return plans


@dataclass(frozen=True)
class ClientData:
    """One client's splits (train skewed, val and test balanced).

    ``plan`` is the generator's plan of the client, or the ``FileClient`` of file data.
    """

    plan: Any
    train: ImageSet
    val: ImageSet
    test: ImageSet


def client_data_config(
    data: DataConfig, plan: ClientPlan, split: str, per_class: int
) -> DataConfig:
    """One client's split config: its generator and a seed from data seed, client and split."""
    seed = data.seed + CLIENT_SEED_STRIDE * (plan.client + 1) + SPLIT_SEEDS[split]
    return replace(data, generator=plan.generator, seed=seed, per_class=per_class)


def build_split(
    plan: ClientPlan,
    cfg: PartitionConfig,
    data: DataConfig,
    split: str,
    cache_dir: Path | None,
    progress: Callable[[int], None] | None = None,
    write: bool = True,
) -> ImageSet:
    """Generate (or load from the cache) one split of one client: a function of its plan alone.

    Eager (``build_client_data``) and lazy (``client_sets``) clients both come from here, so a
    client's data are the same whenever and in whatever order they are built. ``write=False``
    reads the per-split cache but adds nothing to it.
    """
    if split == "train":
        train_cfg = client_data_config(data, plan, "train", 1)
        return load_or_build(
            train_cfg, cache_dir, progress=progress, counts=plan.counts, write=write
        )
    per_class = cfg.val_per_class if split == "val" else cfg.test_per_class
    split_cfg = client_data_config(data, plan, split, per_class)
    return load_or_build(split_cfg, cache_dir, progress=progress, write=write)


def build_client_data(
    plan: ClientPlan,
    cfg: PartitionConfig,
    data: DataConfig,
    cache_dir: Path | None,
    progress: Callable[[int], None] | None = None,
) -> ClientData:
    """Generate (or load from the cache) one client's three splits."""
    train, val, test = (
        build_split(plan, cfg, data, split, cache_dir, progress)
        for split in ("train", "val", "test")
    )
    return ClientData(plan, train, val, test)


def partition_rows(plans: list[ClientPlan]) -> list[dict[str, object]]:
    """JSON-ready description of the partition (saved to the run directory, shown by dry runs)."""
    return [
        {
            "client": p.client,
            "records": p.size,
            "counts": list(p.counts),
            "snr_db": list(p.snr_db),
            "profile": p.profile,
        }
        for p in plans
    ]
