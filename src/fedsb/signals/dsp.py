"""Small vectorised DSP helpers shared by the synthesisers and the impairments."""

from __future__ import annotations

import numpy as np

TWO_PI = 2 * np.pi


def unit_power(x: np.ndarray) -> np.ndarray:
    """Scale each record (row) to mean power 1; an all-zero record stays zero."""
    power = np.mean(x.real**2 + x.imag**2, axis=1, keepdims=True)
    return (x / np.sqrt(np.maximum(power, 1e-20))).astype(np.complex64)


def expj(phase: np.ndarray) -> np.ndarray:
    """exp(1j * phase) as complex64, via float32 cos/sin of the phase wrapped to [0, 2*pi).

    Wrapping in float64 first keeps long records (large accumulated phase) exact to float32.
    """
    turns = phase * (1 / TWO_PI)
    wrapped = ((turns - np.floor(turns)) * TWO_PI).astype(np.float32)  # np.mod is 3x slower
    out = np.empty(phase.shape, np.complex64)
    pairs = out.view(np.float32).reshape(*phase.shape, 2)
    np.cos(wrapped, out=pairs[..., 0])
    np.sin(wrapped, out=pairs[..., 1])
    return out
