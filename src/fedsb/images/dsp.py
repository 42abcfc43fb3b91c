"""Numeric building blocks of the image channels: batched over records, deterministic.

Channels computed on the same chunk share intermediates (unit-RMS x, x^p and their spectra)
through :func:`shared_intermediates`; outside that block everything is computed afresh, with
identical results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F

#: Target phase of the x^p line: compensated p-PSK points land at ref/p + k 2pi/p, i.e. BPSK
#: and QPSK/QAM on the diagonals, 8PSK at 22.5 + k 45 degrees: never on the bin edges (axes).
REF_PHASE = {2: math.pi / 2, 4: math.pi, 8: math.pi}
_SHARED: ContextVar[dict[object, torch.Tensor] | None] = ContextVar("_SHARED", default=None)


@contextmanager
def shared_intermediates(x: torch.Tensor) -> Iterator[None]:
    """Within the block, channels called on this very tensor reuse intermediates.

    Intermediates such as unit-RMS x and x^p spectra are not recomputed; results are identical
    either way.
    """
    token = _SHARED.set({"x": x})
    try:
        yield
    finally:
        _SHARED.reset(token)


def shared(x: torch.Tensor, key: object, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``compute()``, memoised under ``key`` while inside ``shared_intermediates(x)``."""
    memo = _SHARED.get()
    if memo is None or memo["x"] is not x:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def power(z: torch.Tensor) -> torch.Tensor:
    """|z|^2 as a real tensor; a complex product is much faster than abs() in torch."""
    return (z * z.conj()).real


def unit_rms(x: torch.Tensor) -> torch.Tensor:
    """Scale each record to unit RMS so images do not depend on the receiver gain."""
    norm = torch.linalg.vector_norm(torch.view_as_real(x).flatten(1), dim=1, keepdim=True)
    return x * (math.sqrt(x.shape[1]) / norm.clamp_min(1e-30))  # norm: (N, 1)


def unit(x: torch.Tensor) -> torch.Tensor:
    """Shared unit-RMS x (N, L)."""
    return shared(x, "unit", lambda: unit_rms(x))


def raised(x: torch.Tensor, p: int) -> torch.Tensor:
    """Unit-RMS x**p by repeated squaring (p a power of two): exact and fast."""
    if p == 1:
        return unit(x)
    return shared(x, ("raised", p), lambda: raised(x, p // 2).square())


def fold(values: torch.Tensor, reduce: Callable[..., torch.Tensor]) -> torch.Tensor:
    """Reduce the last dim (m) of (..., m) by a halving tree of elementwise ``reduce``.

    Small-dim reductions are slow in torch, elementwise ops on strided halves are not.
    """
    while values.shape[-1] > 1:
        half = values.shape[-1] // 2
        folded = reduce(values[..., :half], values[..., half : 2 * half])
        if values.shape[-1] % 2:
            folded[..., :1] = reduce(folded[..., :1], values[..., -1:])
        values = folded
    return values[..., 0]


def shifted_hann(n: int) -> torch.Tensor:
    """Symmetric Hann window times (-1)^k (complex64).

    The FFT of a frame times this is already fftshifted, bin k <-> f = k/n - 0.5, and its phase
    is referred to the frame centre.
    """
    sign = 1.0 - 2.0 * (torch.arange(n) % 2).to(torch.float32)
    return (torch.hann_window(n, periodic=False, dtype=torch.float32) * sign).to(torch.complex64)


def stft_params(length: int, size: int) -> tuple[int, int, bool]:
    """(n_fft, hop, exact) for ``size`` frequency rows and time columns.

    Exact layout: n_fft = m*size (m >= 2 fine bins summed per row) and exactly ``size`` frames,
    with n_fft >= hop so no sample is skipped. Records too short for that fall back to a
    shorter FFT, hop 1 and adaptive average pooling.
    """
    n_fft = max(2, math.ceil(length / (size * size))) * size
    if n_fft + size - 1 <= length:
        return n_fft, (length - n_fft) // (size - 1), True
    n_fft = max(4, min(2 * size, length // 2))
    return n_fft, max(1, (length - n_fft) // (size - 1)), False


def constellation_counts(z: torch.Tensor, size: int, extent: float) -> torch.Tensor:
    """2-D histogram of complex samples (N, L) -> counts (N, S, S) in one flat scatter-add.

    Bins span [-extent, extent)^2: column = floor((I + extent) S / 2extent), row =
    S - 1 - floor((Q + extent) S / 2extent), so the top row is +Q. Samples outside (or not
    finite) are dropped: the counts sum to L when every sample is inside.
    """
    n, width = z.shape[0], size + 2  # a one-cell ring around the grid collects the outliers
    scale = size / (2.0 * extent)
    shift = extent + 1.0 / scale
    cell = torch.view_as_real(torch.add(z, complex(shift, shift)).mul_(scale))  # (N, L, 2)
    cell = cell.nan_to_num_(nan=0.0).clamp_(0.0, size + 1.0).floor_()  # ring: 0 and S + 1
    # ring-grid row from the top is S + 1 - cell_q: flat = (S + 1) W + cell_i - W cell_q
    flat = torch.addcmul(cell[..., 0], cell[..., 1], torch.tensor(-float(width))).long()
    flat += (torch.arange(n) * (width * width) + (size + 1) * width).unsqueeze(1)  # (N, L)
    ones = torch.ones(1, dtype=torch.float32).expand(flat.numel())
    counts = torch.zeros(n * width * width, dtype=torch.float32)
    # index_add_ into float32 = bincount(minlength=N W^2), ~2x faster and already float;
    # exact while a bin holds < 2^24 samples.
    counts.index_add_(0, flat.reshape(-1), ones)
    return counts.reshape(n, width, width)[:, 1:-1, 1:-1]


def line(x: torch.Tensor, p: int) -> torch.Tensor:
    """Shifted Hann spectrum of unit-RMS x^p (N, L): bin k <-> f = k/L - 0.5."""
    return shared(x, ("line", p), lambda: torch.fft.fft(raised(x, p) * shifted_hann(x.shape[1])))


def unit_rms_power(x: torch.Tensor) -> torch.Tensor:
    """Shared |unit-RMS x|^2 (N, L)."""
    return shared(x, "unit_rms_power", lambda: power(unit(x)))


def line_power(x: torch.Tensor, p: int) -> torch.Tensor:
    """Shared |line(x, p)|^2 (N, L)."""
    return shared(x, ("line_power", p), lambda: power(line(x, p)))


def envelope_line(x: torch.Tensor) -> torch.Tensor:
    """Shared shifted Hann spectrum (N, L) of the unit-RMS envelope |x|^2 less its mean.

    The mean is Hann-weighted, so the DC bin is exactly empty and the strongest bin is the
    envelope's strongest periodicity: the symbol rate of a linear modulation.
    """

    def compute() -> torch.Tensor:
        env = unit_rms_power(x)  # (N, L)
        window = shifted_hann(x.shape[1])
        weights = window.real.abs()
        env = env - (env * weights).sum(dim=1, keepdim=True) / weights.sum()
        return torch.fft.fft(env * window)

    return shared(x, "envelope_line", compute)


def estimate_symbol_rate(x: torch.Tensor, lowest: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Blind symbol rate and timing from the envelope's strongest line above ``lowest``.

    The peak bin of :func:`envelope_line` at f in [lowest, 0.5), refined by the Hann
    amplitude-ratio interpolator, is the rate R; its phase, referred to the record centre,
    puts the envelope's maxima (the symbol centres of most pulses) at R (k - c) + phase/2pi
    = 0 mod 1. Returns (R (N,) cycles/sample, phase (N,) rad), float64.
    """
    n, length = x.shape
    spectrum = envelope_line(x)  # (N, L): bin k <-> f = k/L - 0.5
    first = min(length - 2, length // 2 + max(1, math.ceil(lowest * length)))
    k = first + power(spectrum[:, first : length - 1]).argmax(dim=1)  # (N,) in [first, L-2]
    near = spectrum.gather(1, k.unsqueeze(1) + torch.tensor([[-1, 0, 1]])).to(torch.complex128)
    a, b, c = near.abs().unbind(dim=1)
    delta = (2.0 * (c - a) / (a + 2.0 * b + c).clamp_min(1e-300)).clamp(-0.5, 0.5)
    rate = (k.double() + delta) / length - 0.5
    turn = 2.0 * math.pi * (k.double() / length - 0.5) * (length - 1) / 2
    return rate, (near[:, 1].angle() + turn) % (2.0 * math.pi)


def estimate_offset(x: torch.Tensor, powers: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """Blind carrier offset and phase from the strongest line of x^p, p in ``powers``.

    For each p the peak bin of the Hann spectrum of x^p, refined by the Hann amplitude-ratio
    interpolator 2(c-a)/(a+2b+c), gives the line frequency F; the share of the spectrum's
    energy in that bin (in [0, 1]) says how strong the line is. Per record the lowest p whose
    share is at least a quarter of the best one (half in amplitude) is kept (BPSK -> 2,
    QPSK/QAM -> 4, 8PSK -> 8): lower powers enhance noise less and see a wider offset range
    |f| < 1/(2p).
    Returns (f0 (N,) cycles/sample, phase (N,) rad at the record centre, p (N,)), float64.
    """
    n, length = x.shape
    order = sorted(powers)
    peaks, near, totals = [], [], []
    for p in order:
        k = line_power(x, p).argmax(dim=1)  # (N,) peak bin
        offsets = torch.tensor([-1, 0, 1]).unsqueeze(0)
        near.append(line(x, p).gather(1, (k.unsqueeze(1) + offsets) % length))  # (N, 3)
        peaks.append(k)
        totals.append(line_power(x, p).sum(dim=1))  # (N,) spectrum energy
    k = torch.stack(peaks).double()  # (P, N)
    values = torch.stack(near).to(torch.complex128)  # (P, N, 3): bins k-1, k, k+1
    a, b, c = values.abs().unbind(dim=2)
    delta = (2.0 * (c - a) / (a + 2.0 * b + c).clamp_min(1e-300)).clamp(-0.5, 0.5)
    freq = (k + delta) / length - 0.5
    freq = freq - torch.round(freq)  # line frequency in [-0.5, 0.5]
    # Bin k's phase is referred to sample 0 at f_k: refer it to the record centre.
    turn = torch.polar(torch.ones_like(k), 2.0 * math.pi * (k / length - 0.5) * (length - 1) / 2)
    p_col = torch.tensor(order, dtype=torch.float64).unsqueeze(1)  # (P, 1)
    ref = torch.tensor([REF_PHASE[p] for p in order], dtype=torch.float64).unsqueeze(1)
    phase = ((values[..., 1] * turn).angle() - ref) / p_col  # (P, N)
    score = b.square() / torch.stack(totals).double().clamp_min(1e-300)  # (P, N) in [0, 1]
    keep = (score >= 0.25 * score.amax(dim=0, keepdim=True)).to(torch.uint8).argmax(dim=0)
    pick = keep.unsqueeze(0)  # (1, N)
    chosen = p_col.expand(-1, n).gather(0, pick)[0]
    return (freq / p_col).gather(0, pick)[0], phase.gather(0, pick)[0], chosen


def rotation(f0: torch.Tensor, phase: torch.Tensor, length: int) -> torch.Tensor:
    """exp(-j(2 pi f0 (k - c) + phase)) (N, L) complex64, c = record centre.

    An outer product of a coarse and a fine phasor (blocks of 32 samples): float64 angles,
    yet only ~2 sqrt(L) transcendental calls per record.
    """
    block = 32
    n_blocks = -(-length // block)
    coarse_t = torch.arange(n_blocks, dtype=torch.float64) * block - (length - 1) / 2.0  # (B,)
    fine_t = torch.arange(block, dtype=torch.float64)  # (32,)
    w = -2.0 * math.pi * f0.unsqueeze(1)  # (N, 1)
    one = torch.ones(1, dtype=torch.float64)
    coarse = torch.polar(one, w * coarse_t - phase.unsqueeze(1)).to(torch.complex64)  # (N, B)
    fine = torch.polar(one, w * fine_t).to(torch.complex64)  # (N, 32)
    return (coarse.unsqueeze(2) * fine.unsqueeze(1)).reshape(-1, n_blocks * block)[:, :length]


def fill_curve(level: torch.Tensor, size: int, soft: bool) -> torch.Tensor:
    """Levels (N, S) in [0, 1] -> filled-curve image (N, S, S): bottom row = lowest level."""
    height = level.unsqueeze(1) * size  # (N, 1, S) in pixels
    from_bottom = torch.arange(size - 1, -1, -1, dtype=torch.float32).view(1, size, 1)
    filled = height - from_bottom  # (N, S, S): >= 1 a full pixel, in (0, 1) the partial top
    if soft:
        return filled.clamp(0.0, 1.0)
    return (filled >= 0.5).to(torch.float32)


def rearrange(series: torch.Tensor, size: int) -> torch.Tensor:
    """Real series (N, M) -> (N, S, S): linear resampling to S*S samples, row-major.

    The signal rearrangement of Chen et al. (Radio-Image Transformer, 2020): time runs left to
    right, then top to bottom, so periodic structure becomes 2-D texture.
    """
    target = size * size
    if series.shape[1] != target:
        series = F.interpolate(
            series.unsqueeze(1), size=target, mode="linear", align_corners=False
        ).squeeze(1)
    return series.reshape(-1, size, size)
