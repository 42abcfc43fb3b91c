"""Symbol alphabets against hand-built reference constellations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fedsb.signals import constellations as C
from fedsb.signals.digital import LINEAR_CLASSES

ORDERS = {
    "bpsk": 2,
    "qpsk": 4,
    "8psk": 8,
    "16psk": 16,
    "32psk": 32,
    "16qam": 16,
    "32qam": 32,
    "64qam": 64,
    "256qam": 256,
    "16apsk": 16,
    "32apsk": 32,
    "pam4": 4,
    "ook": 2,
    "4ask": 4,
    "8ask": 8,
}


def _as_set(points: np.ndarray, decimals: int = 5) -> set[tuple[float, float]]:
    p = np.asarray(points, np.complex128)
    return {(round(float(z.real), decimals) + 0.0, round(float(z.imag), decimals) + 0.0) for z in p}


def _normalise(points) -> np.ndarray:
    p = np.asarray(points, np.complex128)
    return p / np.sqrt(np.mean(np.abs(p) ** 2))


def test_every_linear_class_has_an_alphabet():
    assert set(ORDERS) == set(LINEAR_CLASSES)


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_alphabet_has_unit_mean_power_and_the_right_number_of_distinct_points(name):
    points = C.alphabet(name)
    assert points.dtype == np.complex64
    assert np.mean(np.abs(points.astype(np.complex128)) ** 2) == pytest.approx(1.0, abs=1e-6)
    assert len(points) == ORDERS[name]
    assert len(_as_set(points)) == ORDERS[name]


@pytest.mark.parametrize("order", [2, 4, 8, 16, 32])
def test_psk_points_are_equally_spaced_on_the_unit_circle(order):
    points = C.psk(order).astype(np.complex128)
    offset = np.pi / 4 if order == 4 else 0.0
    ref = np.exp(1j * (2 * np.pi * np.arange(order) / order + offset))
    assert _as_set(points) == _as_set(ref)


@pytest.mark.parametrize("order", [16, 64, 256])
def test_square_qam_is_the_full_odd_integer_grid(order):
    side = int(np.sqrt(order))
    levels = np.arange(-(side - 1), side, 2)
    ref = _normalise([complex(i, q) for i, q in itertools.product(levels, levels)])
    assert _as_set(C.qam(order)) == _as_set(ref)


def test_32qam_is_the_6x6_grid_without_its_four_corners():
    levels = [-5, -3, -1, 1, 3, 5]
    ref = _normalise(
        [
            complex(i, q)
            for i, q in itertools.product(levels, levels)
            if not (abs(i) == 5 and abs(q) == 5)
        ]
    )
    points = C.qam(32).astype(np.complex128)
    assert _as_set(points) == _as_set(ref)
    # a cross: the largest I level never coincides with the largest Q level
    top = np.max(np.abs(points.real))
    corner = np.isclose(np.abs(points.real), top) & np.isclose(np.abs(points.imag), top)
    assert not corner.any()
    assert _as_set(points * 1j) == _as_set(points)  # 90-degree symmetric


def test_128qam_is_the_12x12_grid_without_4x4_corner_blocks():
    levels = np.arange(-11, 12, 2)
    ref = _normalise(
        [
            complex(i, q)
            for i, q in itertools.product(levels, levels)
            if not (abs(i) > 7 and abs(q) > 7)
        ]
    )
    assert len(ref) == 128
    assert _as_set(C.qam(128)) == _as_set(ref)


def test_qam_rejects_orders_it_cannot_build():
    with pytest.raises(ValueError, match="48-QAM"):
        C.qam(48)


@pytest.mark.parametrize(
    ("name", "rings", "ratios"),
    [
        ("16apsk", (4, 12), (2.85,)),
        ("32apsk", (4, 12, 16), (2.84, 5.27)),
    ],
)
def test_apsk_ring_counts_and_radii(name, rings, ratios):
    points = C.alphabet(name).astype(np.complex128)
    radius = np.abs(points)
    radii, counts = np.unique(np.round(radius, 4), return_counts=True)
    assert tuple(counts) == rings
    np.testing.assert_allclose(radii[1:] / radii[0], ratios, rtol=1e-4)
    # each ring is a k-PSK: equal angular steps of 2 pi / k
    for r, k in zip(radii, rings, strict=True):
        ang = np.sort(np.angle(points[np.isclose(radius, r, atol=1e-3)]))
        steps = np.diff(np.r_[ang, ang[0] + 2 * np.pi])
        np.testing.assert_allclose(steps, 2 * np.pi / k, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "levels"),
    [
        ("pam4", [-3, -1, 1, 3]),
        ("ook", [0, 1]),
        ("4ask", [0, 1, 2, 3]),
        ("8ask", [0, 1, 2, 3, 4, 5, 6, 7]),
    ],
)
def test_amplitude_alphabets_are_real_with_the_given_levels(name, levels):
    points = C.alphabet(name).astype(np.complex128)
    assert np.all(points.imag == 0)
    np.testing.assert_allclose(np.sort(points.real), _normalise(levels).real, atol=1e-6)


def test_unknown_alphabet_is_a_key_error():
    with pytest.raises(KeyError):
        C.alphabet("1024qam")
