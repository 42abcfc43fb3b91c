"""Analog classes (AM-DSB, AM-SSB, WBFM) over random speech- and music-like messages, and LFM.

A single test tone would make the analog classes trivially separable by a line in the
spectrum; real broadcast audio is broadband and bursty, so the messages are too.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft

from .config import PulseConfig
from .digital import Meta, variant_records
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


def band_message(rng: np.random.Generator, n: int, length: int, width: np.ndarray) -> np.ndarray:
    """A speech-like message confined to [0.05, 1] x ``width`` (cycles/sample), peak 1.

    For a drawn bandwidth: noise with a syllabic envelope, then a spectrum falling linearly
    from the low edge to 0.2-0.5 of it at ``width`` (so upper and lower sidebands differ), a
    formant bump, and nothing outside the band: the band's edges are sharp.
    """
    fast = sp_fft.next_fast_len(length, real=True)
    syllables = rng.uniform(2.0, 10.0, size=n) / fast
    envelope = np.abs(_lowpass_noise(rng, n, fast, syllables, order=2.0))
    envelope = 0.2 + envelope / np.maximum(envelope.max(axis=1, keepdims=True), 1e-12)
    noise = rng.standard_normal((n, fast), dtype=np.float32) * envelope.astype(np.float32)
    w = width[:, None]
    f = np.fft.rfftfreq(fast)[None, :] / w  # frequency / band edge
    edge = rng.uniform(0.2, 0.5, size=(n, 1))
    formant = rng.uniform(0.2, 0.8, size=(n, 1))
    gain = (1 - (1 - edge) * f) * (1 + 2 * np.exp(-(((f - formant) / 0.15) ** 2)))
    inside = (f >= 0.05) & (f <= 1.0)
    inside[~inside.any(axis=1), 1] = True  # a band narrower than a bin keeps the first bin
    gain *= inside
    m = sp_fft.irfft(sp_fft.rfft(noise, axis=1) * gain.astype(np.float32), n=fast, axis=1)
    m = m[:, :length]
    return m / np.maximum(np.abs(m).max(axis=1, keepdims=True), 1e-12)


def _message(rng: np.random.Generator, n: int, length: int, width: np.ndarray | None):
    return message(rng, n, length) if width is None else band_message(rng, n, length, width)


#: ``pulse.variants``: what TorchSig 2.2 draws for its AM and FM classes, where ours differ
VARIANT = {
    "message": "white Gaussian, brick-wall low-passed",
    "am_k": (0.8, 4.0),
    "fm_beta": (1, 10),
}
MESSAGE_CUTOFF = (0.005, 0.05)  # cycles/sample: a message's width when no band is drawn


def gaussian_message(
    rng: np.random.Generator, n: int, length: int, width: np.ndarray
) -> np.ndarray:
    """White Gaussian noise with nothing above ``width`` (cycles/sample), peak 1: TorchSig's."""
    fast = sp_fft.next_fast_len(length, real=True)
    noise = rng.standard_normal((n, fast), dtype=np.float32)
    keep = np.fft.rfftfreq(fast)[None, :] <= np.maximum(width[:, None], 1.5 / fast)
    m = sp_fft.irfft(sp_fft.rfft(noise, axis=1) * keep, n=fast, axis=1)[:, :length]
    m -= m.mean(axis=1, keepdims=True)
    return m / np.maximum(np.abs(m).max(axis=1, keepdims=True), 1e-12)


def _swap_messages(rng, m: np.ndarray, alt: np.ndarray, width: np.ndarray | None) -> np.ndarray:
    """``m`` with its ``alt`` rows replaced by Gaussian messages of ``width`` (or a drawn one)."""
    if alt.any():
        w = rng.uniform(*MESSAGE_CUTOFF, size=alt.sum()) if width is None else width[alt]
        m[alt] = gaussian_message(rng, int(alt.sum()), m.shape[1], w)
    return m


def _with_band(meta: Meta, band: np.ndarray | None) -> Meta:
    return meta if band is None else {**meta, "bandwidth": band}


def am_dsb(
    name: str,
    rng: np.random.Generator,
    n: int,
    length: int,
    cfg: PulseConfig,
    band: np.ndarray | None = None,
) -> tuple[np.ndarray, Meta]:
    """Double-sideband AM: 1 + mu * m(t), depth mu in [0.3, 1]; am-dsb-sc: m(t) alone.

    With ``band`` the message fills half of it (both sidebands together fill it). A variant
    (``cfg.variants``) is TorchSig's: a Gaussian message and k m + 1/k, k in [0.8, 4], so a
    depth k^2 of 0.64 to 16 (mostly over-modulated).
    """
    mu = rng.uniform(0.3, 1.0, size=n)
    width = None if band is None else band / 2
    m = _message(rng, n, length, width)
    alt = variant_records(rng, n, cfg)
    m = _swap_messages(rng, m, alt, width)
    mu[alt] = rng.uniform(*VARIANT["am_k"], size=alt.sum()) ** 2
    carrier = 0.0 if name == "am-dsb-sc" else 1.0
    x = carrier + mu[:, None] * m
    meta = {"mod_index": mu} if carrier else {}
    return unit_power(x.astype(np.complex64)), _with_band(meta, band)


SSB_SIDES = {"am-ssb-upper": 1.0, "am-ssb-lower": -1.0}  # others: upper or lower at random


def am_ssb(
    name: str,
    rng: np.random.Generator,
    n: int,
    length: int,
    cfg: PulseConfig,
    band: np.ndarray | None = None,
) -> tuple[np.ndarray, Meta]:
    """Single sideband (sideband = +1 upper / -1 lower); am-ssb-wc keeps a carrier (depth mu).

    am-ssb and am-ssb-wc draw the side per record. With ``band`` the message fills it and the
    band is centred (the carrier sits at its lower or upper edge). A variant (``cfg.variants``)
    has a Gaussian message, so its sideband is flat, as TorchSig's.
    """
    side = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    side = np.full(n, SSB_SIDES[name]) if name in SSB_SIDES else side
    fast = sp_fft.next_fast_len(length)
    alt = variant_records(rng, n, cfg)  # a Gaussian message: a flat sideband, as TorchSig's
    if band is None:  # Hilbert at a fast length, then crop
        x = analytic(_swap_messages(rng, message(rng, n, fast), alt, None))[:, :length]
    else:  # a sideband up to B <= 1: made at twice the rate, then every other sample
        fast = sp_fft.next_fast_len(2 * length)
        m = _swap_messages(rng, band_message(rng, n, fast, band / 2), alt, band / 2)
        x = analytic(m)[:, : 2 * length : 2]
        x = x * expj(-np.pi * band[:, None] * np.arange(length))  # band [0, B] -> [-B/2, B/2]
    x = np.where(side[:, None] > 0, x, np.conj(x))
    meta = {"sideband": side}
    if name == "am-ssb-wc":
        mu = rng.uniform(0.3, 1.0, size=n)
        x = unit_power(x) * mu[:, None] + (
            1.0 if band is None else _edge_carrier(band, side, length)
        )
        meta["mod_index"] = mu
    return unit_power(x.astype(np.complex64)), _with_band(meta, band)


def _edge_carrier(band: np.ndarray, side: np.ndarray, length: int) -> np.ndarray:
    """The carrier of a centred SSB band: at -B/2 for the upper side, +B/2 for the lower."""
    return expj(-np.pi * (side * band)[:, None] * np.arange(length))


#: FM classes: peak deviation (cycles/sample) without a drawn band, modulation index with one
FM_CLASSES = {"wbfm": ((0.02, 0.08), (3.0, 8.0)), "nbfm": ((0.002, 0.01), (0.2, 1.0))}
RMS_TO_DEVIATION = 2.576  # with a drawn band, dev is the deviation exceeded 1 % of the time


def fm(
    name: str,
    rng: np.random.Generator,
    n: int,
    length: int,
    cfg: PulseConfig,
    band: np.ndarray | None = None,
) -> tuple[np.ndarray, Meta]:
    """FM: phase = 2*pi*dev*cumsum(m), peak deviation dev (cycles/sample; ``mod_index``).

    A variant (``cfg.variants``) has a Gaussian message and, with ``band``, beta in [1, 10].

    With ``band``: a modulation index beta is drawn and Carson's rule B = 2 (dev + W) gives the
    message bandwidth W = B / (2 (beta + 1)) and dev = beta W, where dev is 2.576 times the
    RMS deviation (a Gaussian-like message exceeds it 1 % of the time; with the peak, Carson's
    rule would overstate the 99 % bandwidth of wideband FM by up to 2x).
    """
    dev_range, beta_range = FM_CLASSES[name]
    dev = rng.uniform(*dev_range, size=n)
    alt = variant_records(rng, n, cfg)  # TorchSig's: a Gaussian message, beta in [1, 10]
    if band is None:
        m = _swap_messages(rng, message(rng, n, length), alt, None)
    else:
        beta = rng.uniform(*beta_range, size=n)
        beta[alt] = rng.uniform(*VARIANT["fm_beta"], size=alt.sum())
        width = band / (2 * (beta + 1))
        dev = beta * width
        m = _swap_messages(rng, band_message(rng, n, length, width), alt, width)
        m /= RMS_TO_DEVIATION * np.sqrt(np.maximum(np.mean(m**2, axis=1, keepdims=True), 1e-24))
    phase = 2 * np.pi * dev[:, None] * np.cumsum(m, axis=1)
    return expj(phase), _with_band({"mod_index": dev}, band)


def wbfm(
    name: str,
    rng: np.random.Generator,
    n: int,
    length: int,
    cfg: PulseConfig,
    band: np.ndarray | None = None,
) -> tuple[np.ndarray, Meta]:
    """Wideband FM: peak deviation dev in [0.02, 0.08] cycles/sample (see ``fm``)."""
    return fm(name, rng, n, length, cfg, band)


def lfm(
    name: str,
    rng: np.random.Generator,
    n: int,
    length: int,
    cfg: PulseConfig,
    band: np.ndarray | None = None,
) -> tuple[np.ndarray, Meta]:
    """Sawtooth linear-FM chirp, up or down, sweeping bandwidth B over a period of P samples."""
    bw = rng.uniform(0.05, 0.5, size=n)
    bw = bw if band is None else band
    period = rng.uniform(0.125, 2.0, size=n) * length
    start = rng.uniform(0.0, 1.0, size=n) if cfg.timing else np.zeros(n)
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    k = np.arange(length)[None, :] + (start * period)[:, None]
    frac = np.mod(k, period[:, None]) / period[:, None]
    freq = sign[:, None] * bw[:, None] * (frac - 0.5)
    phase = 2 * np.pi * np.cumsum(freq, axis=1)
    return expj(phase), _with_band({"mod_index": bw * sign, "timing": start}, band)
