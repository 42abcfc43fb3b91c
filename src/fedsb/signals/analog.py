"""Analog classes (AM-DSB, AM-SSB, WBFM) over random speech- and music-like messages, and LFM.

A single test tone would make the analog classes trivially separable by a line in the
spectrum; real broadcast audio is broadband and bursty, so the messages are too.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft

from .config import PulseConfig
from .digital import Meta
from .dsp import expj, unit_power


def _lowpass_noise(
    rng: np.random.Generator,
    n: int,
    length: int,
    cutoff: np.ndarray,
    order: float = 4.0,
    formant: np.ndarray | None = None,
) -> np.ndarray:
    """White noise shaped by a smooth low-pass of per-record ``cutoff`` (cycles/sample).

    With ``formant``, a resonance (a bump of 4x amplitude) is added at that frequency.
    ``length`` should be FFT-friendly (``sp_fft.next_fast_len``).
    """
    f = np.fft.rfftfreq(length).astype(np.float32)[None, :]
    gain = 1.0 / (1.0 + (f / cutoff[:, None].astype(np.float32)) ** order)
    if formant is not None:
        width = (0.2 * cutoff[:, None]).astype(np.float32)
        gain *= 1.0 + 3.0 * np.exp(-(((f - formant[:, None].astype(np.float32)) / width) ** 2))
    noise = rng.standard_normal((n, length), dtype=np.float32)
    return sp_fft.irfft(sp_fft.rfft(noise, axis=1) * gain, n=length, axis=1)


def speech_like(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """Band-limited noise with a formant bump and a syllabic (slow, bursty) envelope."""
    cutoff = rng.uniform(0.005, 0.05, size=n)
    formant = cutoff * rng.uniform(0.3, 0.9, size=n)
    voice = _lowpass_noise(rng, n, length, cutoff, formant=formant)
    syllables = rng.uniform(2.0, 10.0, size=n) / length  # syllables per record -> cycles/sample
    envelope = np.abs(_lowpass_noise(rng, n, length, syllables, order=2.0))
    return voice * (0.2 + envelope / np.maximum(envelope.max(axis=1, keepdims=True), 1e-12))


def music_like(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """A two-note chord, each note with 4 decaying harmonics and slow vibrato."""
    k = np.arange(length, dtype=np.float32)[None, :]
    out = np.zeros((n, length), np.float32)
    for _ in range(2):  # two notes
        f0 = rng.uniform(0.002, 0.02, size=(n, 1))
        vib_rate = (rng.uniform(0.5, 4.0, size=(n, 1)) / length).astype(np.float32)
        vib_phase = rng.uniform(0, 2 * np.pi, (n, 1)).astype(np.float32)
        vib = 1.0 + 0.01 * np.sin(np.float32(2 * np.pi) * vib_rate * k + vib_phase)
        theta = 2 * np.pi * np.cumsum(f0 * vib, axis=1) + rng.uniform(0, 2 * np.pi, (n, 1))
        theta = np.mod(theta, 2 * np.pi).astype(np.float32)
        decay = rng.uniform(0.5, 2.0, size=(n, 1))
        s_prev, s_cur, c = np.zeros_like(theta), np.sin(theta), 2 * np.cos(theta)
        for h in range(1, 5):  # sin(h*theta) by the Chebyshev recursion: 2 trig calls in all
            out += s_cur * (1.0 / h**decay).astype(np.float32)
            s_prev, s_cur = s_cur, c * s_cur - s_prev
    return out


def message(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """Zero-mean float32 message with peak 1, half speech-like and half music-like records.

    Made at an FFT-friendly length and cropped, so odd record lengths cost no more.
    """
    fast = sp_fft.next_fast_len(length, real=True)
    is_music = rng.random(n) < 0.5
    m = np.empty((n, fast), np.float32)
    m[~is_music] = speech_like(rng, int((~is_music).sum()), fast)
    m[is_music] = music_like(rng, int(is_music.sum()), fast)
    m = m[:, :length]
    m -= m.mean(axis=1, keepdims=True)
    return m / np.maximum(np.abs(m).max(axis=1, keepdims=True), 1e-12)


def analytic(m: np.ndarray) -> np.ndarray:
    """M + j*Hilbert(m): the one-sided (upper-sideband) version of a real signal."""
    length = m.shape[1]
    spec = sp_fft.rfft(m, axis=1)  # the positive half; doubling it = zeroing negative bins
    spec[:, 1 : (length + 1) // 2] *= 2
    full = np.zeros((m.shape[0], length), np.complex64)
    full[:, : spec.shape[1]] = spec
    return sp_fft.ifft(full, axis=1)


def am_dsb(
    name: str, rng: np.random.Generator, n: int, length: int, cfg: PulseConfig
) -> tuple[np.ndarray, Meta]:
    """Double-sideband AM with carrier: 1 + mu * m(t), modulation depth mu in [0.3, 1]."""
    mu = rng.uniform(0.3, 1.0, size=n)
    x = 1.0 + mu[:, None] * message(rng, n, length)
    return unit_power(x.astype(np.complex64)), {"mod_index": mu}


def am_ssb(
    name: str, rng: np.random.Generator, n: int, length: int, cfg: PulseConfig
) -> tuple[np.ndarray, Meta]:
    """Suppressed-carrier single sideband, upper or lower at random (sideband = +1 / -1)."""
    side = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    fast = sp_fft.next_fast_len(length)
    x = analytic(message(rng, n, fast))[:, :length]  # Hilbert at a fast length, then crop
    x = np.where(side[:, None] > 0, x, np.conj(x))
    return unit_power(x.astype(np.complex64)), {"sideband": side}


def wbfm(
    name: str, rng: np.random.Generator, n: int, length: int, cfg: PulseConfig
) -> tuple[np.ndarray, Meta]:
    """Wideband FM: phase = 2*pi*dev*cumsum(m), peak deviation dev in [0.02, 0.08] cycles/sample."""
    dev = rng.uniform(0.02, 0.08, size=n)
    phase = 2 * np.pi * dev[:, None] * np.cumsum(message(rng, n, length), axis=1)
    return expj(phase), {"mod_index": dev}


def lfm(
    name: str, rng: np.random.Generator, n: int, length: int, cfg: PulseConfig
) -> tuple[np.ndarray, Meta]:
    """Sawtooth linear-FM chirp, up or down, sweeping bandwidth B over a period of P samples."""
    bw = rng.uniform(0.05, 0.5, size=n)
    period = rng.uniform(0.125, 2.0, size=n) * length
    start = rng.uniform(0.0, 1.0, size=n) if cfg.timing else np.zeros(n)
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    k = np.arange(length)[None, :] + (start * period)[:, None]
    frac = np.mod(k, period[:, None]) / period[:, None]
    freq = sign[:, None] * bw[:, None] * (frac - 0.5)
    phase = 2 * np.pi * np.cumsum(freq, axis=1)
    return expj(phase), {"mod_index": bw * sign, "timing": start}
