"""Symbol alphabets of the linear digital classes, each normalised to unit mean power."""

from __future__ import annotations

from functools import cache

import numpy as np


def _unit_power(points: np.ndarray) -> np.ndarray:
    return (points / np.sqrt(np.mean(np.abs(points) ** 2))).astype(np.complex64)


def psk(order: int) -> np.ndarray:
    """M-PSK on the unit circle (QPSK at odd multiples of pi/4, the usual Gray layout)."""
    offset = np.pi / 4 if order == 4 else 0.0
    return _unit_power(np.exp(1j * (2 * np.pi * np.arange(order) / order + offset)))


def qam(order: int) -> np.ndarray:
    """Square M-QAM for even powers of two; the 32-point cross for 32 and 128."""
    if order in (32, 128):
        side = int(np.sqrt(order * 9 / 8))  # 6x6 (or 12x12) grid with the corners removed
        levels = np.arange(side) * 2 - (side - 1)
        grid = (levels[:, None] + 1j * levels[None, :]).ravel()
        corner = (side - 1) - 2 * (side // 6)  # corner squares of side/6 points are dropped
        keep = ~((np.abs(grid.real) > corner) & (np.abs(grid.imag) > corner))
        points = grid[keep]
    else:
        side = int(round(np.sqrt(order)))
        levels = np.arange(side) * 2 - (side - 1)
        points = (levels[:, None] + 1j * levels[None, :]).ravel()
    if len(points) != order:
        raise ValueError(f"cannot build {order}-QAM")
    return _unit_power(points)


def apsk(
    rings: tuple[int, ...], radii: tuple[float, ...], offsets: tuple[float, ...]
) -> np.ndarray:
    """Amplitude-phase shift keying: concentric PSK rings (DVB-S2 style)."""
    pts = [
        r * np.exp(1j * (2 * np.pi * np.arange(k) / k + o))
        for k, r, o in zip(rings, radii, offsets)
    ]
    return _unit_power(np.concatenate(pts))


def amplitude_levels(levels: np.ndarray) -> np.ndarray:
    """Real amplitude alphabets (PAM is bipolar, ASK/OOK unipolar) at unit mean power."""
    return _unit_power(np.asarray(levels, dtype=np.float64).astype(np.complex128))


@cache
def alphabet(name: str) -> np.ndarray:
    """The symbol alphabet of a linear class."""
    table = {
        "bpsk": lambda: psk(2),
        "qpsk": lambda: psk(4),
        "8psk": lambda: psk(8),
        "16psk": lambda: psk(16),
        "32psk": lambda: psk(32),
        "16qam": lambda: qam(16),
        "32qam": lambda: qam(32),
        "64qam": lambda: qam(64),
        "256qam": lambda: qam(256),
        "16apsk": lambda: apsk((4, 12), (1.0, 2.85), (np.pi / 4, np.pi / 12)),
        "32apsk": lambda: apsk((4, 12, 16), (1.0, 2.84, 5.27), (np.pi / 4, np.pi / 12, np.pi / 16)),
        "pam4": lambda: amplitude_levels(np.array([-3, -1, 1, 3])),
        "ook": lambda: amplitude_levels(np.array([0, 1])),
        "4ask": lambda: amplitude_levels(np.arange(4)),
        "8ask": lambda: amplitude_levels(np.arange(8)),
    }
    if name not in table:
        raise KeyError(name)
    return table[name]()
