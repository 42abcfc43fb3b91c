"""Spectral measurements for the broad-domain tests, independent of the generator's code."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.signal import welch

from fedsb.signals.config import GeneratorConfig, PulseConfig


def broad_clean(length: int = 4096, **kw) -> GeneratorConfig:
    """Noise- and impairment-free config with broad-domain fields set (``pulse``: a dict)."""
    pulse = PulseConfig(timing=False, **kw.pop("pulse", {}))
    cfg = GeneratorConfig(length=length).clean()
    return dataclasses.replace(cfg, pulse=pulse, **kw)


def mean_psd(x: np.ndarray, nperseg: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(f, PSD) averaged over the records: Welch, Hann window, two-sided, f ascending."""
    f, p = welch(
        np.asarray(x, np.complex128), nperseg=nperseg, return_onesided=False, detrend=False
    )
    p = p.mean(axis=0) if p.ndim == 2 else p
    return np.fft.fftshift(f), np.fft.fftshift(p)


def obw(f: np.ndarray, p: np.ndarray, share: float = 0.99) -> float:
    """Occupied bandwidth: ``share`` of the power between the edges (ITU-R SM.328)."""
    c = np.cumsum(p) / p.sum()
    tail = (1 - share) / 2
    return float(f[np.searchsorted(c, 1 - tail)] - f[np.searchsorted(c, tail)])


def edge_width(f: np.ndarray, p: np.ndarray, db: float = -30.0) -> float:
    """Width between the outermost bins within ``db`` of the PSD's peak."""
    on = np.flatnonzero(p > p.max() * 10 ** (db / 10))
    return float(f[on[-1]] - f[on[0]])


def centroid(f: np.ndarray, p: np.ndarray) -> float:
    """Power-weighted mean frequency."""
    return float((f * p).sum() / p.sum())


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D mask."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))
