"""Digital classes at unit power: linear (PSK/QAM/APSK/ASK/PAM/OOK), OQPSK, CPFSK family, OFDM.

Each synthesiser takes a Generator, a record count and a length and returns (N, L) complex64
records plus per-record metadata; every random choice is vectorised over the records. With
``band`` (a drawn occupied bandwidth per record, ``generator.bandwidth``) the samples per
symbol follow from it instead of ``pulse.sps``; without it every draw is what it always was.
"""

from __future__ import annotations

import numpy as np

from . import pulses, shaping
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
    # broad domain: orthogonal M-FSK (tones one symbol rate apart), M-ary MSK, 4-level GFSK
    "8fsk": (8, (1.0, 1.0), "rect"),
    "16fsk": (16, (1.0, 1.0), "rect"),
    "msk": (2, (0.5, 0.5), "rect"),
    "4msk": (4, (0.5, 0.5), "rect"),
    "4gfsk": (4, (0.25, 0.5), "gaussian"),
    "4gmsk": (4, (0.5, 0.5), "gaussian"),
}


def _timing(rng: np.random.Generator, n: int, cfg: PulseConfig) -> tuple[np.ndarray, np.ndarray]:
    sps = rng.uniform(*cfg.sps, size=n)
    tau = rng.uniform(0.0, 1.0, size=n) if cfg.timing else np.zeros(n)
    return sps, tau


def _shaped(
    rng: np.random.Generator, n: int, cfg: PulseConfig, band: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, shaping.Shaped, Meta]:
    """Symbol timing and pulse per record: (sps, tau, the pulse choice, metadata)."""
    sps, tau = _timing(rng, n, cfg)
    beta_idx, beta = pulses.quantise(rng.uniform(*cfg.rolloff, size=n), *cfg.rolloff)
    fine = pulses.OVERSAMPLE if band is None else pulses.BAND_OVERSAMPLE
    if cfg.shapes == ("rrc",):
        shaped = shaping.rrc_only(cfg, beta, beta_idx, fine)
    else:
        shaped = shaping.draw_shapes(rng, n, cfg, beta, fine)
    meta = {"timing": tau, **shaped.meta}
    if band is not None:
        sps = shaping.band_sps(shaped.occupancy, band)
        meta["bandwidth"] = band
    meta["sps"] = sps
    return sps, tau, shaped, meta


def linear(
    name: str,
    rng: np.random.Generator,
    n: int,
    length: int,
    cfg: PulseConfig,
    band: np.ndarray | None = None,
) -> tuple[np.ndarray, Meta]:
    """Symbols from the class alphabet, pulse-shaped (RRC by default) at a non-integer sps."""
    sps, tau, shaped, meta = _shaped(rng, n, cfg, band)
    points = alphabet(name)
    n_sym = pulses.symbols_needed(length, sps)
    symbols = points[rng.integers(0, len(points), size=(n, n_sym))]
    if np.all(points.imag == 0):
        symbols = symbols.real  # real alphabets (PAM/ASK/OOK) take the cheaper real path
    t = pulses.symbol_times(length, sps, tau)
    x = pulses.pulse_train(symbols, t, shaped.table, shaped.row)
    return unit_power(x.astype(np.complex64)), meta


def oqpsk(
    name: str,
    rng: np.random.Generator,
    n: int,
    length: int,
    cfg: PulseConfig,
    band: np.ndarray | None = None,
) -> tuple[np.ndarray, Meta]:
    """Offset QPSK: the Q rail is delayed by half a symbol, so the envelope never crosses zero."""
    sps, tau, shaped, meta = _shaped(rng, n, cfg, band)
    n_sym = pulses.symbols_needed(length, sps) + 1
    rails = rng.choice(np.array([-1.0, 1.0], np.float32), size=(2, n, n_sym))
    t = pulses.symbol_times(length, sps, tau) + 1.0  # +1 keeps t - 0.5 inside the table span
    i = pulses.pulse_train(rails[0], t, shaped.table, shaped.row)
    q = pulses.pulse_train(rails[1], t - 0.5, shaped.table, shaped.row)
    return unit_power(i + 1j * q), meta


def fsk_occupancy(levels: int, h: np.ndarray, shape: str, bt: np.ndarray) -> np.ndarray:
    """Nominal 99 % bandwidth x sps of CPFSK: the tone span (M - 1) h plus one tone's width.

    A tone's width is 0.6 + 0.5 h symbol rates for rectangular frequency pulses and 0.1 + 0.8 BT
    for Gaussian ones (fitted to the measured 99 % bandwidth within ~15 % for M <= 16, h <= 1).
    """
    tone = 0.1 + 0.8 * bt if shape == "gaussian" else 0.6 + 0.5 * h
    return (levels - 1) * h + tone


#: ``pulse.variants``: TorchSig 2.2's GFSK, a low modulation index and BT (Bluetooth: 0.32, 0.5)
GFSK_VARIANT = {"h": (0.1, 0.5), "bt": (0.1, 0.5)}


def variant_records(rng: np.random.Generator, n: int, cfg: PulseConfig) -> np.ndarray:
    """Which records are drawn as the variant (``cfg.variants`` of them; no draw at 0)."""
    return rng.random(n) < cfg.variants if cfg.variants > 0 else np.zeros(n, bool)


def _bt_range(cfg: PulseConfig, alt: np.ndarray) -> tuple[float, float]:
    """The BT grid's range: the config's, widened to the variant's when a record is one."""
    low, high = cfg.gaussian_bt
    if alt.any():
        low, high = min(low, GFSK_VARIANT["bt"][0]), max(high, GFSK_VARIANT["bt"][1])
    return low, high


def _draw_bt(rng, cfg: PulseConfig, alt: np.ndarray, bt_range) -> tuple[np.ndarray, np.ndarray]:
    """Per-record BT (the variant's range for ``alt``), quantised to ``bt_range``'s grid."""
    bt = rng.uniform(*cfg.gaussian_bt, size=alt.size)
    bt[alt] = rng.uniform(*GFSK_VARIANT["bt"], size=alt.sum())
    return pulses.quantise(bt, *bt_range)


def fsk(
    name: str,
    rng: np.random.Generator,
    n: int,
    length: int,
    cfg: PulseConfig,
    band: np.ndarray | None = None,
) -> tuple[np.ndarray, Meta]:
    """Continuous-phase FSK: phase = pi * h * sum_m a_m q(t - m), constant envelope.

    A GFSK variant (``cfg.variants``) is TorchSig's: h and BT in [0.1, 0.5].
    """
    levels, h_range, shape = FSK_CLASSES[name]
    sps, tau = _timing(rng, n, cfg)
    h = rng.uniform(*h_range, size=n)
    gaussian = shape == "gaussian"
    alt = variant_records(rng, n, cfg) if name == "gfsk" else np.zeros(n, bool)
    h[alt] = rng.uniform(*GFSK_VARIANT["h"], size=alt.sum())
    bt_range = _bt_range(cfg, alt)
    if band is not None:  # the BT is needed before the symbols: drawn first
        bt_idx, bt = _draw_bt(rng, cfg, alt, bt_range)
        sps = fsk_occupancy(levels, h, shape, bt) / band
    n_sym = pulses.symbols_needed(length, sps)
    alphabet_ = np.arange(levels, dtype=np.float64) * 2 - (levels - 1)  # ±1 or ±1, ±3
    symbols = alphabet_[rng.integers(0, levels, size=(n, n_sym))]
    t = pulses.symbol_times(length, sps, tau)
    meta = {"sps": sps, "timing": tau, "mod_index": h}
    fine = pulses.OVERSAMPLE
    if band is not None:
        meta["bandwidth"], fine = band, pulses.BAND_OVERSAMPLE
    if gaussian:
        if band is None:
            bt_idx, bt = _draw_bt(rng, cfg, alt, bt_range)
        table = pulses.pulse_table("gaussian_phase", *bt_range, fine)
        meta["bt"] = bt
    else:
        bt_idx, table = np.zeros(n, np.intp), pulses.pulse_table("rect_phase", 0.0, 0.0, fine)
    phase = np.pi * h[:, None] * pulses.phase_train(symbols, t, table, bt_idx)
    return expj(phase), meta


OFDM_SIZES = (16, 32, 64)  # FFT sizes; the cyclic prefix is 1/8 or 1/4 of it
#: FFT sizes with a drawn bandwidth: a record takes one that gives it >= 8 active subcarriers
BAND_OFDM_SIZES = (16, 32, 64, 128, 256)


def _band_fft_sizes(rng: np.random.Generator, band: np.ndarray) -> np.ndarray:
    """Per record, a uniform choice among the sizes that put >= 8 subcarriers in ``band``."""
    sizes = np.array(BAND_OFDM_SIZES)
    fits = np.maximum((sizes[None, :] * band[:, None] >= 8).sum(axis=1), 1)  # the largest ones
    pick = np.minimum((rng.random(band.size) * fits).astype(np.intp), fits - 1)
    return sizes[len(sizes) - fits + pick]


def _ofdm_frames(
    rng: np.random.Generator, sps: np.ndarray, use_qam: np.ndarray, size: int, cp: int, n_sym: int
) -> tuple[np.ndarray, np.ndarray]:
    """(m, n_sym * (size + cp)) CP-OFDM frames and the realised sps of each record."""
    k = np.fft.fftfreq(size) * size  # subcarrier index in FFT order
    half = np.maximum(np.rint(size / sps / 2), 1)[:, None]
    active = (np.abs(k)[None, :] <= half) & (k[None, :] != 0)  # (m, size), DC null
    m = len(sps)
    qpsk_pts, qam_pts = alphabet("qpsk"), alphabet("16qam")
    data = np.where(
        use_qam[:, None, None],
        qam_pts[rng.integers(0, 16, (m, n_sym, size))],
        qpsk_pts[rng.integers(0, 4, (m, n_sym, size))],
    )
    body = np.fft.ifft(data * active[:, None, :], axis=2)  # (m, n_sym, size)
    frames = np.concatenate([body[:, :, -cp:], body], axis=2).reshape(m, -1)
    return frames, size / (2 * half[:, 0])


def ofdm(
    name: str,
    rng: np.random.Generator,
    n: int,
    length: int,
    cfg: PulseConfig,
    band: np.ndarray | None = None,
) -> tuple[np.ndarray, Meta]:
    """CP-OFDM with QPSK or 16-QAM subcarriers; occupied share of the band = 1 / sps."""
    lo, hi = max(cfg.sps[0], 1.1), min(cfg.sps[1], 8.0)
    sps = rng.uniform(min(lo, hi), max(lo, hi), size=n)
    nfft = rng.choice(np.array(OFDM_SIZES), size=n)
    cp_div = rng.choice(np.array([8, 4]), size=n)
    start = rng.uniform(0.0, 1.0, size=n) if cfg.timing else np.zeros(n)
    use_qam = rng.random(n) < 0.5
    sizes = OFDM_SIZES
    if band is not None:
        sps, nfft, sizes = 1.0 / band, _band_fft_sizes(rng, band), BAND_OFDM_SIZES
    out = np.empty((n, length), np.complex64)
    occupancy_sps = np.empty(n)  # the sps actually realised after rounding to whole subcarriers
    for size in sizes:  # one vectorised pass per (FFT size, CP) pair
        for div in (8, 4):
            sel = np.flatnonzero((nfft == size) & (cp_div == div))
            if sel.size == 0:
                continue
            sym_len = size + size // div
            n_sym = int(np.ceil(length / sym_len)) + 2
            frames, occupancy_sps[sel] = _ofdm_frames(
                rng, sps[sel], use_qam[sel], size, size // div, n_sym
            )
            offset = (start[sel] * sym_len).astype(np.intp)[:, None] + np.arange(length)
            out[sel] = np.take_along_axis(frames, offset, axis=1)
    meta = {"sps": occupancy_sps, "timing": start}
    if band is not None:
        meta["bandwidth"] = 1.0 / occupancy_sps
    return unit_power(out), meta
