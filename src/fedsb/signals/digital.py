"""Digital classes at unit power: linear (PSK/QAM/APSK/ASK/PAM/OOK), OQPSK, CPFSK family, OFDM.

Each synthesiser takes a Generator, a record count and a length and returns (N, L) complex64
records plus per-record metadata; every random choice is vectorised over the records.
"""

from __future__ import annotations

import numpy as np

from . import pulses
from .config import PulseConfig
from .constellations import alphabet
from .dsp import expj, unit_power

Meta = dict[str, np.ndarray]

LINEAR_CLASSES = (
    "bpsk",
    "qpsk",
    "8psk",
    "16psk",
    "32psk",
    "16qam",
    "32qam",
    "64qam",
    "256qam",
    "16apsk",
    "32apsk",
    "pam4",
    "ook",
    "4ask",
    "8ask",
)

#: FSK family: (levels, modulation index range h, frequency pulse)
FSK_CLASSES: dict[str, tuple[int, tuple[float, float], str]] = {
    "cpfsk": (2, (0.5, 1.0), "rect"),
    "gfsk": (2, (0.6, 1.0), "gaussian"),
    "gmsk": (2, (0.5, 0.5), "gaussian"),
    "4fsk": (4, (0.25, 0.5), "rect"),
}


def _timing(rng: np.random.Generator, n: int, cfg: PulseConfig) -> tuple[np.ndarray, np.ndarray]:
    sps = rng.uniform(*cfg.sps, size=n)
    tau = rng.uniform(0.0, 1.0, size=n) if cfg.timing else np.zeros(n)
    return sps, tau


def linear(
    name: str, rng: np.random.Generator, n: int, length: int, cfg: PulseConfig
) -> tuple[np.ndarray, Meta]:
    """Symbols from the class alphabet, RRC pulse-shaped at a non-integer sps."""
    sps, tau = _timing(rng, n, cfg)
    beta_idx, beta = pulses.quantise(rng.uniform(*cfg.rolloff, size=n), *cfg.rolloff)
    points = alphabet(name)
    n_sym = pulses.symbols_needed(length, sps)
    symbols = points[rng.integers(0, len(points), size=(n, n_sym))]
    if np.all(points.imag == 0):
        symbols = symbols.real  # real alphabets (PAM/ASK/OOK) take the cheaper real path
    t = pulses.symbol_times(length, sps, tau)
    x = pulses.pulse_train(symbols, t, pulses.pulse_table("rrc", *cfg.rolloff), beta_idx)
    return unit_power(x.astype(np.complex64)), {"sps": sps, "timing": tau, "rolloff": beta}


def oqpsk(
    name: str, rng: np.random.Generator, n: int, length: int, cfg: PulseConfig
) -> tuple[np.ndarray, Meta]:
    """Offset QPSK: the Q rail is delayed by half a symbol, so the envelope never crosses zero."""
    sps, tau = _timing(rng, n, cfg)
    beta_idx, beta = pulses.quantise(rng.uniform(*cfg.rolloff, size=n), *cfg.rolloff)
    n_sym = pulses.symbols_needed(length, sps) + 1
    rails = rng.choice(np.array([-1.0, 1.0], np.float32), size=(2, n, n_sym))
    table = pulses.pulse_table("rrc", *cfg.rolloff)
    t = pulses.symbol_times(length, sps, tau) + 1.0  # +1 keeps t - 0.5 inside the table span
    i = pulses.pulse_train(rails[0], t, table, beta_idx)
    q = pulses.pulse_train(rails[1], t - 0.5, table, beta_idx)
    return unit_power(i + 1j * q), {"sps": sps, "timing": tau, "rolloff": beta}


def fsk(
    name: str, rng: np.random.Generator, n: int, length: int, cfg: PulseConfig
) -> tuple[np.ndarray, Meta]:
    """Continuous-phase FSK: phase = pi * h * sum_m a_m q(t - m), constant envelope."""
    levels, h_range, shape = FSK_CLASSES[name]
    sps, tau = _timing(rng, n, cfg)
    h = rng.uniform(*h_range, size=n)
    n_sym = pulses.symbols_needed(length, sps)
    alphabet_ = np.arange(levels, dtype=np.float64) * 2 - (levels - 1)  # ±1 or ±1, ±3
    symbols = alphabet_[rng.integers(0, levels, size=(n, n_sym))]
    t = pulses.symbol_times(length, sps, tau)
    meta = {"sps": sps, "timing": tau, "mod_index": h}
    if shape == "gaussian":
        bt_idx, bt = pulses.quantise(rng.uniform(*cfg.gaussian_bt, size=n), *cfg.gaussian_bt)
        table = pulses.pulse_table("gaussian_phase", *cfg.gaussian_bt)
        meta["bt"] = bt
    else:
        bt_idx, table = np.zeros(n, np.intp), pulses.pulse_table("rect_phase", 0.0, 0.0)
    phase = np.pi * h[:, None] * pulses.phase_train(symbols, t, table, bt_idx)
    return expj(phase), meta


OFDM_SIZES = (16, 32, 64)  # FFT sizes; the cyclic prefix is 1/8 or 1/4 of it


def ofdm(
    name: str, rng: np.random.Generator, n: int, length: int, cfg: PulseConfig
) -> tuple[np.ndarray, Meta]:
    """CP-OFDM with QPSK or 16-QAM subcarriers; occupied share of the band = 1 / sps."""
    lo, hi = max(cfg.sps[0], 1.1), min(cfg.sps[1], 8.0)
    sps = rng.uniform(min(lo, hi), max(lo, hi), size=n)
    nfft = rng.choice(np.array(OFDM_SIZES), size=n)
    cp_div = rng.choice(np.array([8, 4]), size=n)
    start = rng.uniform(0.0, 1.0, size=n) if cfg.timing else np.zeros(n)
    use_qam = rng.random(n) < 0.5
    out = np.empty((n, length), np.complex64)
    occupancy_sps = np.empty(n)  # the sps actually realised after rounding to whole subcarriers
    qpsk_pts, qam_pts = alphabet("qpsk"), alphabet("16qam")
    for size in OFDM_SIZES:  # one vectorised pass per (FFT size, CP) pair
        for div in (8, 4):
            sel = np.flatnonzero((nfft == size) & (cp_div == div))
            if sel.size == 0:
                continue
            cp, m = size // div, len(sel)
            sym_len = size + cp
            n_sym = int(np.ceil(length / sym_len)) + 2
            k = np.fft.fftfreq(size) * size  # subcarrier index in FFT order
            half = np.maximum(np.rint(size / sps[sel] / 2), 1)[:, None]
            active = (np.abs(k)[None, :] <= half) & (k[None, :] != 0)  # (m, size), DC null
            occupancy_sps[sel] = size / (2 * half[:, 0])
            data = np.where(
                use_qam[sel, None, None],
                qam_pts[rng.integers(0, 16, (m, n_sym, size))],
                qpsk_pts[rng.integers(0, 4, (m, n_sym, size))],
            )
            body = np.fft.ifft(data * active[:, None, :], axis=2)  # (m, n_sym, size)
            frames = np.concatenate([body[:, :, -cp:], body], axis=2).reshape(m, -1)
            offset = (start[sel] * sym_len).astype(np.intp)[:, None] + np.arange(length)
            out[sel] = np.take_along_axis(frames, offset, axis=1)
    return unit_power(out), {"sps": occupancy_sps, "timing": start}
