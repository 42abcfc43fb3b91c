"""Table-based pulse shaping against direct (double-loop) references and pulse properties.

Tolerance of the table lookup: ``pulse_train`` reads p at the fractional symbol time rounded to
the nearest 1/OVERSAMPLE = 1/64 symbol, so each term is off by at most
|a_m| * |p(u_q) - p(u)| <= |a_m| * delta * max|p'| with delta = |u_q - u| <= 1/128 symbol (the
rounding error of the fractional time, computed exactly per sample below). Summed over the
2*SPAN taps this is the bound each sample is checked against, plus 1e-5 for float32 arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedsb.signals import pulses


def _max_slope(f, lo: float = -pulses.SPAN, hi: float = pulses.SPAN) -> float:
    u = np.linspace(lo, hi, 160_001)
    return float(np.max(np.abs(np.diff(f(u)) / np.diff(u))))


def _rounding_offset(t: np.ndarray) -> np.ndarray:
    """|quantised - true| fractional symbol time of every sample, in symbols (<= 1/128)."""
    t = t.astype(np.float64)
    frac = t - np.floor(t)
    return np.abs(np.floor(frac * pulses.OVERSAMPLE + 0.5) / pulses.OVERSAMPLE - frac)


def _tiny_case(seed: int, n: int = 3, length: int = 40, lo: float = 2.3, hi: float = 5.7):
    rng = np.random.default_rng(seed)
    sps = rng.uniform(lo, hi, n)
    tau = rng.uniform(0, 1, n)
    t = pulses.symbol_times(length, sps, tau)
    n_sym = pulses.symbols_needed(length, sps)
    return rng, sps, tau, t, n_sym


def test_symbol_times_are_k_over_sps_plus_tau_plus_span():
    sps, tau = np.array([2.5, 7.25]), np.array([0.0, 0.7])
    t = pulses.symbol_times(50, sps, tau)
    k = np.arange(50)
    expected = k[None, :] / sps[:, None] + tau[:, None] + pulses.SPAN
    assert t.dtype == np.float64
    np.testing.assert_allclose(t, expected, rtol=0, atol=1e-12)


def test_symbol_times_stay_exact_for_million_sample_records():
    # the fractional part must resolve far below the table step (1/128 symbol) at any length
    sps, tau = np.array([3.3]), np.array([0.123])
    t = pulses.symbol_times(1 << 20, sps, tau)
    k = np.arange(1 << 20)
    exact_frac = np.mod(k * 10 / 33 + 0.123, 1.0)  # 1/3.3 = 10/33
    assert np.max(np.abs(np.mod(t[0], 1.0) - exact_frac)) < 1e-8


def test_pulse_train_equals_direct_double_loop_reference():
    rng, sps, tau, t, n_sym = _tiny_case(seed=1)
    n, length = t.shape
    lo, hi = 0.2, 0.5
    table = pulses.pulse_table("rrc", lo, hi)
    param_idx = np.array([0, 13, pulses.GRID - 1])
    betas = pulses.parameter_grid(lo, hi)[param_idx]
    symbols = rng.standard_normal((n, n_sym)) + 1j * rng.standard_normal((n, n_sym))
    symbols = symbols.astype(np.complex64)

    got = pulses.pulse_train(symbols, t, table, param_idx)
    assert got.shape == (n, length) and got.dtype == np.complex64

    offset = _rounding_offset(t)
    for i in range(n):
        slope = _max_slope(lambda u, b=betas[i]: pulses.rrc(u, b))
        for k in range(length):
            tk = float(t[i, k])
            ref, weight = 0j, 0.0
            for m in range(n_sym):  # the pulse is truncated to -SPAN <= t - m < SPAN
                u = tk - m
                if -pulses.SPAN <= u < pulses.SPAN:
                    ref += complex(symbols[i, m]) * float(pulses.rrc(np.array([u]), betas[i])[0])
                    weight += abs(complex(symbols[i, m]))
            bound = weight * offset[i, k] * slope + 1e-5 * (1 + weight)
            assert abs(complex(got[i, k]) - ref) <= bound, (i, k)


def test_pulse_train_is_exact_when_sample_times_fall_on_the_table_grid():
    # sps = 8 and tau = j/64: every fractional time is a table row, so only float32 error remains
    n, length = 2, 64
    sps, tau = np.array([8.0, 8.0]), np.array([0.0, 5 / 64])
    t = pulses.symbol_times(length, sps, tau)
    assert np.all(_rounding_offset(t) < 1e-6)
    rng = np.random.default_rng(2)
    n_sym = pulses.symbols_needed(length, sps)
    symbols = rng.choice([-1.0, 1.0], size=(n, n_sym)).astype(np.float32)
    table = pulses.pulse_table("rrc", 0.35, 0.35)
    got = pulses.pulse_train(symbols, t, table, np.zeros(n, np.intp))
    assert got.dtype == np.float32
    m = np.arange(n_sym)
    for i in range(n):
        u = t[i].astype(np.float64)[:, None] - m[None, :]
        window = (u >= -pulses.SPAN) & (u < pulses.SPAN)
        ref = np.sum(np.where(window, pulses.rrc(u, 0.35), 0.0) * symbols[i], axis=1)
        np.testing.assert_allclose(got[i], ref, atol=2e-6)


def test_real_symbols_give_the_real_part_of_the_complex_path():
    rng, sps, tau, t, n_sym = _tiny_case(seed=3)
    table = pulses.pulse_table("rrc", 0.35, 0.35)
    idx = np.zeros(len(sps), np.intp)
    re = rng.standard_normal((len(sps), n_sym)).astype(np.float32)
    im = rng.standard_normal((len(sps), n_sym)).astype(np.float32)
    both = pulses.pulse_train(re + 1j * im, t, table, idx)
    np.testing.assert_allclose(both.real, pulses.pulse_train(re, t, table, idx), atol=1e-6)
    np.testing.assert_allclose(both.imag, pulses.pulse_train(im, t, table, idx), atol=1e-6)


@pytest.mark.parametrize("kind", ["rect_phase", "gaussian_phase"])
def test_phase_train_equals_direct_cumulative_reference(kind):
    # Reference: sum over *every* symbol of a_m q(t - m), with q the exact phase pulse.
    # Symbols long past contribute a_m * 1 and future ones 0, which the code replaces by an
    # exclusive cumulative sum; the table part has the same 1/128-symbol rounding bound.
    rng, sps, tau, t, n_sym = _tiny_case(seed=4, length=60)
    n = len(sps)
    symbols = rng.choice([-3.0, -1.0, 1.0, 3.0], size=(n, n_sym))
    if kind == "rect_phase":
        table, idx = pulses.pulse_table("rect_phase", 0.0, 0.0), np.zeros(n, np.intp)
        q = [pulses.rect_phase] * n
    else:
        lo, hi = 0.25, 0.5
        table = pulses.pulse_table("gaussian_phase", lo, hi)
        idx = np.array([0, 20, pulses.GRID - 1])
        q = [lambda u, b=b: pulses.gaussian_phase(u, b) for b in pulses.parameter_grid(lo, hi)[idx]]
    got = pulses.phase_train(symbols, t, table, idx)
    offset = _rounding_offset(t)
    m = np.arange(n_sym)
    for i in range(n):
        u = t[i].astype(np.float64)[:, None] - m[None, :]
        ref = np.sum(q[i](u) * symbols[i], axis=1)
        window = (u >= -pulses.SPAN) & (u < pulses.SPAN)
        weight = np.sum(np.abs(symbols[i]) * window, axis=1)
        slope = _max_slope(q[i])  # <= 1: the frequency pulse has unit area and peak <= 1
        bound = weight * offset[i] * slope + 1e-5 * (1 + np.abs(ref))
        assert np.all(np.abs(got[i] - ref) <= bound)
        # the case exercises the cumulative part: symbols beyond the span do contribute
        settled = np.sum(np.where(u >= pulses.SPAN, symbols[i], 0.0), axis=1)
        assert np.max(np.abs(settled)) >= 3


@pytest.mark.parametrize("beta", [0.25, 0.35, 0.5])
def test_rrc_convolved_with_itself_is_a_nyquist_raised_cosine(beta):
    os_, span = 32, 60  # 32 samples per symbol, +-60 symbols (tails ~1/u^2 are negligible)
    u = np.arange(-span * os_, span * os_ + 1) / os_
    p = pulses.rrc(u, beta)
    assert np.sum(p**2) / os_ == pytest.approx(1.0, abs=2e-3)  # unit energy
    g = np.convolve(p, p, mode="same") / os_  # g(lag) on the same grid, lag 0 at the centre
    centre = len(u) // 2
    lags = np.arange(-10, 11)
    at_symbols = g[centre + lags * os_]
    assert at_symbols[lags == 0][0] == pytest.approx(1.0, abs=2e-3)
    assert np.max(np.abs(at_symbols[lags != 0])) < 2e-3  # zero ISI at nonzero integer lags
    # and the whole shape is the raised cosine sinc(t) cos(pi b t) / (1 - (2 b t)^2)
    tt = u[centre - 10 * os_ : centre + 10 * os_ + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rc = np.sinc(tt) * np.cos(np.pi * beta * tt) / (1 - (2 * beta * tt) ** 2)
    sing = np.isclose(np.abs(tt), 1 / (2 * beta))
    rc[sing] = np.pi / 4 * np.sinc(1 / (2 * beta))
    np.testing.assert_allclose(g[centre - 10 * os_ : centre + 10 * os_ + 1], rc, atol=3e-3)


@pytest.mark.parametrize("beta", [0.15, 0.25, 0.5, 1.0])
def test_rrc_is_continuous_through_its_special_points(beta):
    for u0 in (0.0, 1 / (4 * beta), -1 / (4 * beta)):
        near = pulses.rrc(np.array([u0 - 1e-6, u0, u0 + 1e-6]), beta)
        assert np.ptp(near) < 1e-4, (beta, u0, near)
    assert pulses.rrc(np.array([0.0]), beta)[0] == pytest.approx(1 - beta + 4 * beta / math.pi)


def _phase_from_table(table_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unfold one (OVERSAMPLE + 1, 2*SPAN) table row into q(u) over u in [-SPAN, SPAN]."""
    frac = np.arange(pulses.OVERSAMPLE + 1) / pulses.OVERSAMPLE
    taps = np.arange(-pulses.SPAN + 1, pulses.SPAN + 1)
    u = (frac[:, None] - taps[None, :]).T.ravel()
    v = table_row.T.ravel().astype(np.float64)
    order = np.argsort(u, kind="stable")
    return u[order], v[order]


def test_gaussian_phase_pulse_rises_monotonically_from_zero_to_one_over_the_span():
    lo, hi = 0.25, 0.5
    table = pulses.pulse_table("gaussian_phase", lo, hi)
    assert table.shape == (pulses.GRID, pulses.OVERSAMPLE + 1, 2 * pulses.SPAN)
    for row, bt in zip(table, pulses.parameter_grid(lo, hi), strict=True):
        u, q = _phase_from_table(row)
        assert q[0] < 1e-4 and q[-1] > 1 - 1e-4
        assert np.all(np.diff(q) >= -1e-6)
        assert np.interp(0.0, u, q) == pytest.approx(0.5, abs=1e-6)
        # independent reference: Gaussian filter of bandwidth B (BT = bt, T = 1),
        # h(t) = sqrt(2 pi / ln 2) B exp(-2 pi^2 B^2 t^2 / ln 2), applied to a unit-area rect,
        # then integrated.
        dt = 1 / 256
        tt = np.arange(-8, 8 + dt, dt)
        h = np.sqrt(2 * np.pi / np.log(2)) * bt * np.exp(-2 * np.pi**2 * bt**2 * tt**2 / np.log(2))
        g = np.convolve(np.where(np.abs(tt) < 0.5, 1.0, 0.0), h, mode="same") * dt
        ref = np.cumsum(g) * dt
        np.testing.assert_allclose(q, np.interp(u, tt, ref), atol=5e-3)


def test_rect_phase_pulse_is_a_one_symbol_ramp():
    table = pulses.pulse_table("rect_phase", 0.0, 0.0)
    u, q = _phase_from_table(table[0])
    np.testing.assert_allclose(q, np.clip(u + 0.5, 0, 1), atol=1e-7)


def test_unknown_pulse_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown pulse kind"):
        pulses.pulse_table("sinc", 0.1, 0.2)


@given(
    lo=st.floats(0.05, 0.9),
    width=st.floats(0.01, 0.5),
    pos=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20),
)
def test_quantise_maps_every_value_to_its_nearest_grid_point(lo, width, pos):
    hi = lo + width
    values = lo + np.array(pos) * width
    idx, q = pulses.quantise(values, lo, hi)
    grid = np.linspace(lo, hi, pulses.GRID)
    assert np.all((0 <= idx) & (idx < pulses.GRID))
    np.testing.assert_array_equal(q, grid[idx])
    # nearest grid value (up to ties): no grid point is closer than the chosen one
    best = np.min(np.abs(values[:, None] - grid[None, :]), axis=1)
    assert np.all(np.abs(values - q) <= best + 1e-12 * (1 + np.abs(values)))
    assert np.all(np.abs(values - q) <= width / (pulses.GRID - 1) / 2 + 1e-12)


def test_quantise_of_a_fixed_parameter_is_the_single_grid_value():
    idx, q = pulses.quantise(np.array([0.3, 0.3]), 0.3, 0.3)
    assert idx.tolist() == [0, 0] and q.tolist() == [0.3, 0.3]
    grid = np.linspace(0.2, 0.5, pulses.GRID)
    idx, q = pulses.quantise(grid, 0.2, 0.5)
    assert idx.tolist() == list(range(pulses.GRID))
