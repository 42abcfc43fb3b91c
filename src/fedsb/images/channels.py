"""Per-channel image functions: complex IQ records (N, L) -> images (N, S, S) float32 in [0, 1].

Every channel is a pure, batched, deterministic function ``fn(x, size, cfg)``; a record's image
depends on that record only. Conventions (f in cycles/sample, DC centred, half-open bins):

- ``spectrogram``: rows = frequency, top row = +fs/2: row = S-1-floor((f+0.5)S); columns =
  time, left = record start. dB re. the image peak, clipped to ``spec_dynamic_range_db``.
- ``spectrum_xP``: columns = frequency, left = -fs/2: col = floor((f+0.5)S); a filled curve of
  the dB level re. the peak, bottom row = lowest level, a full column = the peak.
- ``constellation*``: columns = I, rows = Q with the top row = +Q, extent in RMS units.
- ``amplitude``/``phase``/``inst_freq``: the series resampled to S*S samples, row-major.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .dsp import (
    constellation_counts,
    envelope_line,
    estimate_offset,
    estimate_symbol_rate,
    fill_curve,
    fold,
    line_power,
    power,
    rearrange,
    rotation,
    shifted_hann,
    stft_params,
    unit,
    unit_rms,
    unit_rms_power,
)

if TYPE_CHECKING:
    from .config import ImageConfig

ChannelFn = Callable[[torch.Tensor, int, "ImageConfig"], torch.Tensor]

_TINY = 1e-20  # power floor before a log: keeps all-zero records finite
#: Fixed turn of the differential constellation: 2/4/8-PSK steps are multiples of 45 degrees,
#: which would sit on the bin edges along the axes.
_DIFF_TURN = complex(math.cos(math.pi / 8), math.sin(math.pi / 8))
#: Slowest symbol rate the eye looks for, cycles/sample: slower lines are an AM message or a
#: burst's edges (the front-end resamples linear modulations to about 0.2).
_EYE_LOWEST_RATE = 0.03
_CENTRE_SHARE = (
    0.4  # constellation_centres keeps the samples this share of a symbol around its centre
)


# --------------------------------------------------------------------------- spectrogram


def spectrogram(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """Hann STFT power in dB, top row = +fs/2; shows bandwidth, hopping and time structure."""
    n, length = x.shape
    n_fft, hop, exact = stft_params(length, size)
    frames = unit(x).unfold(1, n_fft, hop)  # (N, T, n_fft); unit RMS: gain-free dB
    if exact:
        frames = frames[:, :size]
    spec = torch.view_as_real(torch.fft.fft(frames * shifted_hann(n_fft))).square()
    spec = spec.reshape(n, frames.shape[1], -1)  # (N, T, 2 n_fft): re^2, im^2 interleaved
    if exact:
        pooled = fold(spec.reshape(n, size, size, -1), torch.add)  # (N, T = S, S)
    else:
        spec = spec[..., 0::2] + spec[..., 1::2]
        pooled = F.adaptive_avg_pool2d(spec.unsqueeze(1), (size, size)).squeeze(1)
    db = 10.0 * torch.log10(pooled.clamp_min(_TINY))  # (N, time, freq)
    peak = db.amax(dim=(1, 2), keepdim=True)
    image = ((db - peak) / cfg.spec_dynamic_range_db + 1.0).clamp(0.0, 1.0)
    return image.transpose(1, 2).flip(1)  # (N, freq with +fs/2 on top, time)


# --------------------------------------------------------------------------- constellations


def _density_image(z: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """Histogram of unit-RMS samples, log(1+count) (optional) over the image's max."""
    counts = constellation_counts(z, size, cfg.const_extent)  # (N, S, S)
    values = torch.log1p(counts) if cfg.const_log else counts
    peak = values.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return values / peak


def constellation(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """I/Q density: the classic constellation, smeared by any carrier offset or phase noise."""
    return _density_image(unit(x), size, cfg)


def constellation_diff(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """Density of x[k] conj(x[k-lag]) turned by 22.5 degrees.

    The product cancels the carrier phase and turns an offset into a small fixed rotation, so
    PSK orders show without any estimation.
    """
    lag = min(cfg.diff_lag, x.shape[1] - 1)
    return _density_image(unit_rms(x[:, lag:] * x[:, :-lag].conj()) * _DIFF_TURN, size, cfg)


def constellation_comp(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """Constellation after blind offset/phase removal: PSK/QAM points come back sharp.

    For classes without an x^p line (FSK, AM, FM, OFDM) the estimator locks onto whatever line
    is strongest (a tone, the carrier, or noise) and merely rotates the samples: magnitudes
    are untouched, so the image is still a valid density showing the class's amplitude rings.
    """
    f0, theta, _ = estimate_offset(x, cfg.comp_powers)  # (N,) each
    return _density_image(unit(x) * rotation(f0, theta, x.shape[1]), size, cfg)


# --------------------------------------------------------------------------- x^p spectra


def spectrum_power(x: torch.Tensor, size: int, cfg: ImageConfig, p: int) -> torch.Tensor:
    """|FFT(x^p)| in dB re. its peak, max-pooled to S columns so narrow lines survive.

    A p-th power strips the modulation of p-ary PSK (and square QAM for p = 4), leaving a line
    at p*CFO: which powers show a line gives the order, whatever the carrier offset.
    """
    return _level_curve(line_power(x, p), size, cfg)  # (N, L), already fftshifted


def _level_curve(mag2: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """A power spectrum (N, L) as a filled dB curve re. its peak, max-pooled to S columns."""
    n, length = mag2.shape
    if length % size == 0:
        pooled = fold(mag2.reshape(n, size, length // size), torch.maximum)  # (N, S)
    else:
        pooled = F.adaptive_max_pool1d(mag2.unsqueeze(1), size).squeeze(1)
    peak = pooled.amax(dim=1, keepdim=True).clamp_min(_TINY)
    db = 10.0 * torch.log10(pooled.clamp_min(_TINY) / peak)
    level = (db / cfg.spectrum_dynamic_range_db + 1.0).clamp(0.0, 1.0)
    return fill_curve(level, size, cfg.spectrum_soft)


def spectrum_x1(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """Spectrum of x: occupied band, carrier lines of AM, the tones of FSK."""
    return spectrum_power(x, size, cfg, 1)


def spectrum_x2(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """Spectrum of x^2: a line at 2*CFO for BPSK/ASK/PAM (real-valued symbols)."""
    return spectrum_power(x, size, cfg, 2)


def spectrum_x4(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """Spectrum of x^4: a line at 4*CFO for QPSK and square QAM (and BPSK)."""
    return spectrum_power(x, size, cfg, 4)


def spectrum_x8(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """Spectrum of x^8: a line at 8*CFO for 8PSK (and every lower order)."""
    return spectrum_power(x, size, cfg, 8)


def spectrum_envelope(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """Spectrum of |x|^2 less its mean: lines at the symbol rate of a linear modulation.

    The envelope's cyclic lines survive a carrier offset, phase noise and any static channel,
    which scramble the constellations; a Gaussian cloud (SSB, noise) and a constant envelope
    (FSK, FM) have none.
    """
    return _level_curve(power(envelope_line(x)), size, cfg)


def _symbol_phase(x: torch.Tensor) -> torch.Tensor:
    """Time within the blindly found symbol (N, L) in [0, 1): 0.5 at the envelope's maxima."""
    rate, phase = estimate_symbol_rate(x, _EYE_LOWEST_RATE)  # (N,) each
    k = torch.arange(x.shape[1], dtype=torch.float64) - (x.shape[1] - 1) / 2.0
    turns = rate.unsqueeze(1) * k + (phase / (2.0 * math.pi)).unsqueeze(1)
    return torch.frac(torch.frac(turns) + 1.5)


def constellation_centres(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """``constellation_comp`` of the samples near the symbol centres only.

    The samples within a fifth of a symbol of the centres the envelope gives (``eye_envelope``)
    leave out the transitions that fill a constellation between its points, so close orders
    (16- and 64-QAM) stay apart.
    """
    f0, theta, _ = estimate_offset(x, cfg.comp_powers)  # (N,) each
    z = unit(x) * rotation(f0, theta, x.shape[1])
    near = (_symbol_phase(x) - 0.5).abs() < _CENTRE_SHARE / 2
    return _density_image(torch.where(near, z, complex(float("nan"), 0.0)), size, cfg)


def eye_envelope(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """Eye diagram of |x|: columns = time within the blindly found symbol, rows = |x|.

    Needs no carrier, so a drifting or noisy one cannot smear it: the symbol centres (middle
    column) show the amplitude levels (one for PSK, two for PAM4, three for 16-QAM), and the
    edges how the pulse moves between them.
    """
    u = _symbol_phase(x)
    height = (unit_rms_power(x).sqrt() / cfg.amp_clip).clamp(0.0, 1.0)  # (N, L)
    extent = cfg.const_extent  # (u, height) in [0, 1)^2 onto the histogram's square
    z = torch.complex(((2.0 * u - 1.0) * extent).float(), (2.0 * height - 1.0) * extent * 0.999)
    return _density_image(z, size, cfg)


# --------------------------------------------------------------------------- rearranged series


def amplitude(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """|x| / (amp_clip rms), clipped: envelope variation separates QAM/APSK/AM from FSK."""
    env = unit_rms_power(x).sqrt() / cfg.amp_clip  # (N, L)
    return rearrange(env, size).clamp(0.0, 1.0)


def phase(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """angle(x)/pi mapped from [-1, 1] to [0, 1]."""
    return rearrange(x.angle() / (2.0 * math.pi) + 0.5, size).clamp(0.0, 1.0)


def inst_freq(x: torch.Tensor, size: int, cfg: ImageConfig) -> torch.Tensor:
    """angle(x[k] conj(x[k-1]))/pi mapped to [0, 1]: a tone at f sits at 0.5 + f."""
    step = (x[:, 1:] * x[:, :-1].conj()).angle()  # (N, L-1)
    return rearrange(step / (2.0 * math.pi) + 0.5, size).clamp(0.0, 1.0)


#: Channel name -> function; the order here is the canonical listing order.
CHANNELS: dict[str, ChannelFn] = {
    "spectrogram": spectrogram,
    "constellation": constellation,
    "constellation_diff": constellation_diff,
    "constellation_comp": constellation_comp,
    "spectrum_x1": spectrum_x1,
    "spectrum_x2": spectrum_x2,
    "spectrum_x4": spectrum_x4,
    "spectrum_x8": spectrum_x8,
    "spectrum_envelope": spectrum_envelope,
    "eye_envelope": eye_envelope,
    "constellation_centres": constellation_centres,
    "amplitude": amplitude,
    "phase": phase,
    "inst_freq": inst_freq,
}
