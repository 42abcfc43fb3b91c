"""Small helpers shared by the signal tests (config tweaks and spectral measurements)."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.ndimage import median_filter

from fedsb.signals.config import GeneratorConfig


def with_pulse(cfg: GeneratorConfig, **kw) -> GeneratorConfig:
    """``cfg`` with fields of its PulseConfig replaced."""
    return dataclasses.replace(cfg, pulse=dataclasses.replace(cfg.pulse, **kw))


def with_fading(cfg: GeneratorConfig, **kw) -> GeneratorConfig:
    """``cfg`` with fields of its FadingConfig replaced."""
    return dataclasses.replace(cfg, fading=dataclasses.replace(cfg.fading, **kw))


def with_imp(cfg: GeneratorConfig, **kw) -> GeneratorConfig:
    """``cfg`` with fields of its ImpairmentsConfig replaced."""
    return dataclasses.replace(cfg, impairments=dataclasses.replace(cfg.impairments, **kw))


def clean(length: int = 1024, **pulse) -> GeneratorConfig:
    """Noise-free, impairment-free config (``GeneratorConfig().clean()``) with pulse overrides."""
    cfg = GeneratorConfig(length=length).clean()
    return with_pulse(cfg, **pulse) if pulse else cfg


def power(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean |x|^2 along ``axis`` in float64."""
    x = np.asarray(x, np.complex128)
    return np.mean(x.real**2 + x.imag**2, axis=axis)


def periodogram(x: np.ndarray, n: int | None = None) -> np.ndarray:
    """|FFT|^2 of each row (float64), optionally zero-padded to ``n``."""
    return np.abs(np.fft.fft(np.asarray(x, np.complex128), n=n, axis=-1)) ** 2


def line_ratio(spec: np.ndarray, width: int = 65) -> np.ndarray:
    """Each bin over the median of the ``width`` bins around it (circular).

    A discrete spectral line stands far above its neighbourhood; a periodogram of a continuous
    spectrum has exponentially distributed bins, so its largest ratio over ~1000 bins is ~10-30.
    """
    return spec / median_filter(spec, size=width, mode="wrap", axes=(-1,))
