"""Behaviour of the individual image channels: orientation, scaling, estimators, histograms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsb.images import CHANNELS, ImageConfig, constellation_counts
from fedsb.images.channels import (
    amplitude,
    constellation,
    constellation_centres,
    constellation_comp,
    constellation_diff,
    eye_envelope,
    inst_freq,
    phase,
    spectrogram,
    spectrum_envelope,
    spectrum_x1,
    spectrum_x2,
    spectrum_x4,
)
from fedsb.images.dsp import (
    estimate_offset,
    estimate_symbol_rate,
    fill_curve,
    shared_intermediates,
    stft_params,
    unit_rms,
)

CFG = ImageConfig()


def psk(
    n: int, length: int, order: int, cfo: float = 0.0, snr_db: float | None = None, seed: int = 0
) -> torch.Tensor:
    """(n, length) 1-sample-per-symbol PSK (QPSK on the diagonals), random carrier phase."""
    rng = np.random.default_rng(seed)
    symbols = rng.integers(0, order, (n, length))
    offset = math.pi / 4 if order == 4 else 0.0
    carrier = 2 * np.pi * cfo * np.arange(length) + rng.uniform(0, 2 * np.pi, (n, 1))
    x = np.exp(1j * (2 * np.pi * symbols / order + offset + carrier))
    if snr_db is not None:
        noise = rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length))
        x = x + np.sqrt(10 ** (-snr_db / 10) / 2) * noise
    return torch.from_numpy(x.astype(np.complex64))


def tone(n: int, length: int, f: float, phase0: float = 0.0) -> torch.Tensor:
    k = np.arange(length)
    x = np.tile(np.exp(1j * (2 * np.pi * f * k + phase0)), (n, 1)) * 2.5  # any gain
    return torch.from_numpy(x.astype(np.complex64))


def cell(i: float, q: float, size: int = 32, extent: float = 2.0) -> tuple[int, int]:
    """(row, col) of a point in RMS units, by the documented convention (top row = +Q)."""
    scale = size / (2 * extent)
    return size - 1 - math.floor((q + extent) * scale), math.floor((i + extent) * scale)


def support(image: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(r), int(c)) for r, c in torch.nonzero(image)}


QPSK_CELLS = {cell(a, b) for a in (-(0.5**0.5), 0.5**0.5) for b in (-(0.5**0.5), 0.5**0.5)}


# --------------------------------------------------------------------------- constellations


def test_counts_put_qpsk_in_four_bins_summing_to_length() -> None:
    rng = np.random.default_rng(1)
    x = torch.from_numpy(
        (rng.choice([-1, 1], (3, 256)) + 1j * rng.choice([-1, 1], (3, 256))).astype(np.complex64)
    )
    counts = constellation_counts(unit_rms(x), 32, 2.0)  # (3, 32, 32)
    assert counts.dtype == torch.float32
    assert QPSK_CELLS == {(10, 10), (10, 21), (21, 10), (21, 21)}
    for i in range(3):
        assert support(counts[i]) == QPSK_CELLS
        assert counts[i].sum().item() == 256
        upper_right = int(((x[i].real > 0) & (x[i].imag > 0)).sum())
        assert counts[i, 10, 21].item() == upper_right  # +I right, +Q on top


def test_counts_drop_outside_and_non_finite_samples() -> None:
    z = torch.tensor([[0.1 + 0.1j, 5.0 + 0j, complex("nan"), complex("inf"), -1.9 - 1.9j]])
    counts = constellation_counts(z.to(torch.complex64), 8, 2.0)
    assert counts.sum().item() == 2
    assert support(counts[0]) == {cell(0.1, 0.1, 8), cell(-1.9, -1.9, 8)} == {(3, 4), (7, 0)}


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 40), st.sampled_from([8, 13, 32]), st.integers(0, 999))
def test_counts_are_per_record_and_conserve_samples(
    n: int, length: int, size: int, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, length, dtype=torch.complex64, generator=g) * 1.5
    counts = constellation_counts(z, size, 2.0)
    inside = ((z.real >= -2) & (z.real < 2) & (z.imag >= -2) & (z.imag < 2)).sum(1)
    torch.testing.assert_close(counts.sum(dim=(1, 2)), inside.float())
    for i in range(n):
        assert torch.equal(counts[i], constellation_counts(z[i : i + 1], size, 2.0)[0])


def test_constellation_image_is_log_density_scaled_to_one() -> None:
    image = constellation(psk(2, 512, 4, cfo=0.0) * 0.1, 32, CFG)  # gain does not matter
    for i in range(2):
        # rotated QPSK: 4 points on the unit circle, so 4 (or a few more on edges) cells
        assert 4 <= len(support(image[i])) <= 8
        assert image[i].max().item() == 1.0


def test_comp_removes_carrier_offset_and_phase() -> None:
    shifted = psk(4, 1024, 4, cfo=0.01, seed=2)
    still = psk(4, 1024, 4, cfo=0.0, seed=3)
    for x in (shifted, still):
        image = constellation_comp(x, 32, CFG)
        for i in range(4):
            inside = sum(image[i, r, c].item() for r, c in QPSK_CELLS)
            assert inside / image[i].sum().item() > 0.9
            assert support(image[i]) == QPSK_CELLS
    plain = constellation_counts(unit_rms(shifted), 32, 2.0).flatten(1)  # smeared by the offset
    assert (plain.topk(4, dim=1).values.sum(1) / 1024 < 0.3).all()
    assert (torch.count_nonzero(plain, dim=1) > 40).all()  # a ring, not 4 points


@pytest.mark.parametrize(("order", "cfo", "power"), [(2, 0.11, 2), (4, -0.04, 4), (8, 0.03, 8)])
def test_estimate_offset_picks_the_lowest_power_with_a_line(
    order: int, cfo: float, power: int
) -> None:
    x = psk(6, 1024, order, cfo=cfo, snr_db=20, seed=order)
    f0, _, chosen = estimate_offset(x, (2, 4, 8))
    assert (chosen == power).all()
    torch.testing.assert_close(f0, torch.full_like(f0, cfo), atol=2e-5, rtol=0)


def test_diff_removes_offset_without_estimation() -> None:
    cfo = 0.01
    image = constellation_diff(psk(3, 1024, 4, cfo=cfo, seed=4), 32, CFG)
    # steps of k*90 degrees, + the offset's 3.6 degrees, + the fixed 22.5 degree turn
    angles = [2 * math.pi * cfo + math.pi / 8 + k * math.pi / 2 for k in range(4)]
    expected = {cell(math.cos(a), math.sin(a)) for a in angles}
    for i in range(3):
        assert support(image[i]) == expected


# --------------------------------------------------------------------------- spectra


@pytest.mark.parametrize("cfo", [0.02, -0.03])
def test_spectrum_x4_line_at_four_times_the_offset(cfo: float) -> None:
    image = spectrum_x4(psk(4, 1024, 4, cfo=cfo, snr_db=10, seed=5), 32, CFG)  # (N, S, S)
    column = math.floor((4 * cfo + 0.5) * 32)
    level = image.mean(dim=1)  # (N, S): column height as a fraction of the image
    assert (level.argmax(dim=1) == column).all()
    assert (level[:, column] == 1.0).all()
    assert (image[:, :, column] == 1.0).all()  # the peak column is filled to the top


@pytest.mark.parametrize("length", [128, 1024])
def test_bpsk_has_a_line_in_x2_but_not_in_x1(length: int) -> None:
    x = psk(4, length, 2, cfo=0.013, snr_db=10, seed=6)
    x1 = spectrum_x1(x, 32, CFG).mean(dim=1)  # (N, S) levels in [0, 1]
    x2 = spectrum_x2(x, 32, CFG).mean(dim=1)
    assert (x2.max(dim=1).values - x2.median(dim=1).values > 0.4).all()  # a line
    assert (x1.max(dim=1).values - x1.median(dim=1).values < 0.25).all()  # flat: no line
    assert (x2.argmax(dim=1) == math.floor((2 * 0.013 + 0.5) * 32)).all()


def shaped_psk(n: int, sps: int, cfo: float, seed: int) -> torch.Tensor:
    """(n, 1024) QPSK at ``sps`` samples a symbol, a 3-tap moving-average pulse, any carrier."""
    x = psk(n, 1024 // sps, 4, seed=seed).repeat_interleave(sps, dim=1)
    x = (x + x.roll(1, dims=1) + x.roll(-1, dims=1)) / 3
    return x * torch.exp(2j * math.pi * cfo * torch.arange(1024)).to(torch.complex64)


@pytest.mark.parametrize(("sps", "cfo"), [(4, 0.0), (8, 0.05), (4, -0.1), (8, 0.2)])
def test_envelope_spectrum_has_the_symbol_rate_line_wherever_the_carrier(
    sps: int, cfo: float
) -> None:
    level = spectrum_envelope(shaped_psk(4, sps, cfo, seed=8), 32, CFG).mean(dim=1)  # (N, S)
    lines = {math.floor((0.5 + 1 / sps) * 32), math.floor((0.5 - 1 / sps) * 32)}
    assert all(int(c) in lines for c in level.argmax(dim=1))  # +-1/sps: a real envelope
    assert (level.max(dim=1).values - level.median(dim=1).values > 0.3).all()


def half_sine(levels: np.ndarray, rate: float, timing: float, seed: int) -> torch.Tensor:
    """(4, 1024) symbols from ``levels`` in half-sine pulses at ``rate`` symbols a sample,
    the first symbol centred at sample ``timing``; any carrier phase."""
    rng = np.random.default_rng(seed)
    k = np.arange(1024)
    m = np.floor((k - timing) * rate + 0.5)  # the symbol each sample belongs to
    pulse = np.cos(np.pi * ((k - timing) * rate - m))  # 1 at the centre, 0 at the edges
    symbols = rng.choice(levels, (4, int(m.max()) + 2))[:, (m - m.min()).astype(int)]
    x = symbols * pulse * np.exp(1j * rng.uniform(0, 2 * np.pi, (4, 1)))
    return torch.from_numpy(x.astype(np.complex64))


@pytest.mark.parametrize(("rate", "timing"), [(0.23, 0.0), (0.17, 2.4), (0.31, 1.1)])
def test_symbol_rate_and_timing_come_from_the_envelope(rate: float, timing: float) -> None:
    found, phase = estimate_symbol_rate(half_sine(np.array([-1, 1]), rate, timing, 10), 0.03)
    np.testing.assert_allclose(found, rate, atol=2e-4)
    # the envelope's maxima, the symbol centres, sit at found (k - c) + phase / 2 pi = 0 mod 1
    turns = found * (timing - 511.5) + phase / (2 * math.pi)
    assert ((turns - torch.round(turns)).abs() < 0.03).all()


def test_eye_shows_one_level_for_bpsk_and_two_for_pam4_at_the_symbol_centre() -> None:
    for levels, count in ((np.array([-1, 1]), 1), (np.array([-3, -1, 1, 3]), 2)):
        middle = eye_envelope(half_sine(levels, 0.23, 0.7, 11), 32, CFG)[:, :, 15:17].sum(2)
        for column in middle:  # (S,) rows of the centre columns, top = the largest |x|
            lit = (column > 0.5 * column.max()).int()
            assert int((lit[1:] > lit[:-1]).sum() + lit[0]) == count  # runs of lit rows


def test_centres_keep_the_points_and_drop_the_transitions_between_them() -> None:
    x = half_sine(np.array([-3, -1, 1, 3]), 0.23, 0.7, 12)  # PAM4: transitions pass near 0
    every, centres = constellation_comp(x, 32, CFG), constellation_centres(x, 32, CFG)
    for whole, kept in zip(every, centres):
        assert support(kept) <= support(whole)
        assert len(support(kept)) < len(support(whole)) / 2
        assert kept[15:17, 15:17].sum() == 0  # no sample near the origin, where pulses cross
        assert whole[15:17, 15:17].sum() > 0


def test_envelope_spectrum_of_a_gaussian_cloud_has_no_line() -> None:
    rng = np.random.default_rng(9)
    cloud = rng.standard_normal((4, 1024)) + 1j * rng.standard_normal((4, 1024))
    x = torch.from_numpy(cloud.astype(np.complex64))
    level = spectrum_envelope(x, 32, CFG).mean(dim=1)
    assert (level.max(dim=1).values - level.median(dim=1).values < 0.25).all()


def test_fill_curve_draws_levels_from_the_bottom() -> None:
    level = torch.tensor([[0.0, 0.5, 1.0, 0.6]])
    hard = fill_curve(level, 4, soft=False)[0]  # (4, 4)
    assert hard.sum(dim=0).tolist() == [0.0, 2.0, 4.0, 2.0]
    assert hard[:, 1].tolist() == [0.0, 0.0, 1.0, 1.0]  # filled from the bottom row
    soft = fill_curve(level, 4, soft=True)[0]
    assert soft[:, 3].tolist() == pytest.approx([0.0, 0.4, 1.0, 1.0])


@pytest.mark.parametrize("length", [128, 1024])
@pytest.mark.parametrize("size", [16, 24, 32])
@pytest.mark.parametrize("f", [0.25, -0.25, 0.1])
def test_spectrogram_top_row_is_positive_frequency(length: int, size: int, f: float) -> None:
    image = spectrogram(tone(2, length, f), size, CFG)  # (N, S, S)
    row = size - 1 - math.floor((f + 0.5) * size)
    assert (image.sum(dim=2).argmax(dim=1) == row).all()
    assert torch.allclose(image[:, row, :], torch.ones(2, size))  # the tone lasts all record


def test_spectrogram_columns_run_forward_in_time() -> None:
    x = tone(1, 1024, 0.1)
    x[:, 512:] = 0.0  # tone only in the first half
    image = spectrogram(x, 32, CFG)[0]
    assert (image[:, :16].amax(dim=0) > 0.9).all()  # frames 0..15 end before sample 512
    assert image[:, 18:].max().item() == 0.0  # frames 18.. start after it: silence


@pytest.mark.parametrize("length", [128, 1000, 1024])
def test_stft_layout(length: int) -> None:
    for size in (8, 16, 24, 25, 32, 64):
        n_fft, hop, exact = stft_params(length, size)
        assert 1 <= hop and n_fft <= length
        if exact:
            assert n_fft % size == 0 and n_fft >= 2 * size and hop <= n_fft
            assert (size - 1) * hop + n_fft <= length  # size whole frames fit


# --------------------------------------------------------------------------- rearranged series


@pytest.mark.parametrize("f", [0.1, -0.2])
def test_inst_freq_of_a_tone_is_constant(f: float) -> None:
    image = inst_freq(tone(2, 1024, f), 32, CFG)
    torch.testing.assert_close(image, torch.full_like(image, 0.5 + f), atol=1e-5, rtol=0)


def test_phase_and_amplitude_maps() -> None:
    x = tone(1, 1024, 1 / 64, phase0=0.5)
    ph = phase(x, 32, CFG)[0]
    assert ph[0, 0].item() == pytest.approx((0.5 / math.pi + 1) / 2, abs=1e-5)
    assert ph[0, 1].item() > ph[0, 0].item()  # row-major time: left to right first
    amp = amplitude(x, 32, ImageConfig(amp_clip=4.0))
    torch.testing.assert_close(amp, torch.full_like(amp, 0.25))  # |x| = rms, clip at 4 rms


def test_shared_intermediates_change_nothing() -> None:
    x = psk(16, 256, 4, cfo=0.02, snr_db=5, seed=7)
    alone = {name: fn(x, 16, CFG) for name, fn in CHANNELS.items()}
    with shared_intermediates(x):
        for name in reversed(list(CHANNELS)):
            assert torch.equal(CHANNELS[name](x, 16, CFG), alone[name]), name
