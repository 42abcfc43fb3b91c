"""GNU Radio transmitters and channel for scripts/gnuradio_recordings.py (never imports fedsb).

Each burst is rendered by two small flowgraphs run to completion (transmitter, then
``channels.channel_model``), so its samples depend only on its parameters and seeds, never on
thread scheduling or on which worker process rendered it.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import numpy as np
from gnuradio import analog, blocks, channels, digital, filter, gr
from gnuradio import fft as gr_fft

#: Sample rate of every recording; the audio sources run at FS / AUDIO_INTERP.
FS = 200e3
AUDIO_INTERP = 5
#: Root-raised-cosine span in symbols; the first span of every pulse-shaped burst is dropped.
RRC_SPAN = 11
#: Samples dropped at the start of analog bursts (filter and resampler transients).
ANALOG_SKIP = 512
#: Zeros appended behind every channel input so the resampler's history never cuts the burst.
TAIL = 64

_delay: int | None = None


def _cross32() -> np.ndarray:
    """32-point cross QAM: the 6 x 6 square grid less its corners."""
    grid = np.arange(-5, 6, 2, dtype=float)
    pts = np.array([complex(i, q) for i in grid for q in grid])
    return pts[(np.abs(pts.real) < 5) | (np.abs(pts.imag) < 5)]


def _apsk16() -> np.ndarray:
    """DVB-S2 16APSK: 4 points on the inner ring, 12 on the outer (radius ratio 2.57)."""
    inner = np.exp(1j * (np.pi / 4 + np.pi / 2 * np.arange(4)))
    outer = 2.57 * np.exp(1j * (np.pi / 12 + np.pi / 6 * np.arange(12)))
    return np.concatenate([inner, outer])


def _points(label: str) -> list[complex]:
    """Constellation points (GNU Radio's own where it has them) scaled to unit mean power."""
    fixed = {
        "PAM4": lambda: np.array([-3.0, -1.0, 1.0, 3.0], complex),
        "OOK": lambda: np.array([0.0, 1.0], complex),
        "32QAM": _cross32,
        "16APSK": _apsk16,
    }
    objects = {
        "BPSK": digital.constellation_bpsk,
        "QPSK": digital.constellation_qpsk,
        "8PSK": digital.constellation_8psk,
        "QAM16": digital.constellation_16qam,
        "QAM64": lambda: digital.qam_constellation(64),
        "16PSK": lambda: digital.psk_constellation(16),
        "256QAM": lambda: digital.qam_constellation(256),
    }
    if label in fixed:
        pts = fixed[label]()
    else:
        pts = np.array(objects[label]().points(), complex)
    return list(pts / math.sqrt(np.mean(np.abs(pts) ** 2)))


def _collect(tb: gr.top_block, last: Any, n: int) -> np.ndarray:
    """Run ``tb`` until ``n`` complex samples left ``last``; returns them as complex64."""
    head = blocks.head(gr.sizeof_gr_complex, n)
    sink = blocks.vector_sink_c()
    tb.connect(last, head, sink)
    tb.run()
    out = np.asarray(sink.data(), dtype=np.complex64)
    if len(out) != n:
        raise RuntimeError(f"flowgraph gave {len(out)} samples, expected {n}")
    return out


def _linear(tb: gr.top_block, p: dict[str, Any], n: int) -> tuple[Any, int]:
    """PSK/QAM/PAM: random symbols -> chunks_to_symbols -> RRC interpolating FIR."""
    sps, points = p["sps"], _points(p["label"])
    skip = RRC_SPAN * sps
    nsym = (n + skip) // sps + 2 * RRC_SPAN + 2
    rng = np.random.default_rng(p["data_seed"])
    symbols = rng.integers(0, len(points), nsym).astype(np.uint8)
    taps = filter.firdes.root_raised_cosine(sps, sps, 1.0, p["rolloff"], RRC_SPAN * sps + 1)
    src = blocks.vector_source_b(symbols.tolist(), False)
    mapper = digital.chunks_to_symbols_bc(points)
    rrc = filter.interp_fir_filter_ccf(sps, taps)
    tb.connect(src, mapper, rrc)
    return rrc, skip


def _bits(p: dict[str, Any], n: int) -> list[int]:
    rng = np.random.default_rng(p["data_seed"])
    return rng.integers(0, 2, n // p["sps"] + 16).astype(np.uint8).tolist()


def _gfsk(tb: gr.top_block, p: dict[str, Any], n: int) -> tuple[Any, int]:
    """GFSK via digital.gfsk_mod (Gaussian filter of bandwidth-time product ``bt``)."""
    sps, skip = p["sps"], 4 * p["sps"]
    bits = np.asarray(_bits(p, n + skip), np.uint8)
    packed = np.packbits(np.pad(bits, (0, -len(bits) % 8))).tolist()
    mod = digital.gfsk_mod(sps, math.pi * p["index"] / sps, p["bt"], False, False, True)
    tb.connect(blocks.vector_source_b(packed, False), mod)
    return mod, skip


def _cpfsk(tb: gr.top_block, p: dict[str, Any], n: int) -> tuple[Any, int]:
    """CPFSK: NRZ symbols held for ``sps`` samples -> analog.frequency_modulator_fc.

    Binary (CPFSK), or 4-level (4FSK: levels -3, -1, 1, 3 over 3, the outer ones at ``index``).
    """
    sps = p["sps"]
    levels = [-1.0, -1 / 3, 1 / 3, 1.0] if p["label"] == "4FSK" else [-1.0, 1.0]
    rng = np.random.default_rng(p["data_seed"])
    symbols = rng.integers(0, len(levels), (n + sps) // sps + 16).astype(np.uint8)
    src = blocks.vector_source_b(symbols.tolist(), False)
    nrz = digital.chunks_to_symbols_bf(levels)
    hold = blocks.repeat(gr.sizeof_float, sps)
    fm = analog.frequency_modulator_fc(math.pi * p["index"] / sps)
    tb.connect(src, nrz, hold, fm)
    return fm, sps


def _lfm(tb: gr.top_block, p: dict[str, Any], n: int) -> tuple[Any, int]:
    """Linear FM chirps: a sawtooth sweeping ``sweep`` of FS every ``period`` samples."""
    saw = analog.sig_source_f(FS, analog.GR_SAW_WAVE, FS / p["period"], 1.0, -0.5)
    fm = analog.frequency_modulator_fc(2 * math.pi * p["sweep"])
    tb.connect(saw, fm)
    return fm, 0


def _ofdm(tb: gr.top_block, p: dict[str, Any], n: int) -> tuple[Any, int]:
    """OFDM: QPSK or 16QAM on the ``used`` middle subcarriers, inverse fft_vcc, cyclic prefix."""
    size, cp = p["fft_len"], p["fft_len"] // 4
    rng = np.random.default_rng(p["data_seed"])
    points = np.asarray(_points("QPSK" if p["bits"] == 2 else "QAM16"))
    used = np.r_[-p["used"] // 2 : 0, 1 : p["used"] // 2 + 1] % size  # DC left empty
    count = n // (size + cp) + 2
    grid = np.zeros((count, size), complex)
    grid[:, used] = points[rng.integers(0, points.size, (count, used.size))]
    src = blocks.vector_source_c(grid.astype(np.complex64).reshape(-1).tolist(), False, size)
    ifft = gr_fft.fft_vcc(size, False, [], False)
    prefix = digital.ofdm_cyclic_prefixer(size, size + cp)
    tb.connect(src, ifft, prefix)
    return prefix, 0


def _audio(tb: gr.top_block, p: dict[str, Any]) -> Any:
    """Speech-like audio: band-passed Gaussian noise with a syllable envelope, plus a tone."""
    rate = FS / AUDIO_INTERP
    taps = np.asarray(filter.firdes.band_pass(1.0, rate, 200.0, p["audio_bw"], 400.0))
    taps *= p["audio_rms"] / math.sqrt(np.sum(taps**2))  # unit-variance noise in -> audio_rms
    noise = analog.noise_source_f(analog.GR_GAUSSIAN, 1.0, p["audio_seed"])
    band = filter.fir_filter_fff(1, taps.tolist())
    env = analog.sig_source_f(rate, analog.GR_SIN_WAVE, p["syllable_hz"], 0.45, 0.55)
    tone = analog.sig_source_f(rate, analog.GR_SIN_WAVE, p["tone_hz"], p["tone_amp"])
    mult, add = blocks.multiply_ff(), blocks.add_ff()
    tb.connect(noise, band, (mult, 0))
    tb.connect(env, (mult, 1))
    tb.connect(mult, (add, 0))
    tb.connect(tone, (add, 1))
    return add


def _am_dsb(tb: gr.top_block, p: dict[str, Any], n: int) -> tuple[Any, int]:
    """Double sideband: 1 + m * audio (AM-DSB), or m * audio (AM-DSB-SC), interpolated to FS."""
    gain = blocks.multiply_const_ff(p["mod_index"])
    carrier = blocks.add_const_ff(0.0 if p["label"] == "AM-DSB-SC" else 1.0)
    to_c = blocks.float_to_complex(1)
    up = filter.rational_resampler_ccf(AUDIO_INTERP, 1)
    tb.connect(_audio(tb, p), gain, carrier, to_c, up)
    return up, ANALOG_SKIP


def _am_ssb(tb: gr.top_block, p: dict[str, Any], n: int) -> tuple[Any, int]:
    """Suppressed-carrier SSB: analytic audio from filter.hilbert_fc (conjugated for LSB)."""
    chain = [_audio(tb, p), filter.hilbert_fc(129)]
    if p["sideband"] == "lsb":
        chain.append(blocks.conjugate_cc())
    chain.append(filter.rational_resampler_ccf(AUDIO_INTERP, 1))
    tb.connect(*chain)
    return chain[-1], ANALOG_SKIP


def _wbfm(tb: gr.top_block, p: dict[str, Any], n: int) -> tuple[Any, int]:
    """Broadcast FM via analog.wfm_tx (pre-emphasis ``tau``, peak deviation ``max_dev``)."""
    with contextlib.redirect_stdout(io.StringIO()):  # wfm_tx prints its filter length
        tx = analog.wfm_tx(FS / AUDIO_INTERP, FS, p["tau"], p["max_dev"])
    tb.connect(_audio(tb, p), tx)
    return tx, ANALOG_SKIP


def _nbfm(tb: gr.top_block, p: dict[str, Any], n: int) -> tuple[Any, int]:
    """Narrowband FM via analog.nbfm_tx (peak deviation ``max_dev`` / 10: 2.5-7.5 kHz)."""
    with contextlib.redirect_stdout(io.StringIO()):
        tx = analog.nbfm_tx(FS / AUDIO_INTERP, FS, p["tau"], p["max_dev"] / 10)
    tb.connect(_audio(tb, p), tx)
    return tx, ANALOG_SKIP


_LINEAR = ("BPSK", "QPSK", "8PSK", "QAM16", "QAM64", "PAM4", "OOK", "16PSK", "32QAM", "256QAM",
           "16APSK")  # fmt: skip
_TX = {
    **dict.fromkeys(_LINEAR, _linear),
    "GFSK": _gfsk,
    "CPFSK": _cpfsk,
    "4FSK": _cpfsk,
    "AM-DSB": _am_dsb,
    "AM-DSB-SC": _am_dsb,
    "AM-SSB": _am_ssb,
    "WBFM": _wbfm,
    "NBFM": _nbfm,
    "LFM": _lfm,
    "OFDM": _ofdm,
}


def transmit(p: dict[str, Any], n: int) -> np.ndarray:
    """``n`` clean baseband samples of the transmitter ``p["label"]`` (transients dropped)."""
    tb = gr.top_block()
    last, skip = _TX[p["label"]](tb, p, n)
    return _collect(tb, last, n + skip)[skip:]


def _channel_run(x: np.ndarray, c: dict[str, Any]) -> np.ndarray:
    tb = gr.top_block()
    src = blocks.vector_source_c(x.tolist(), False)
    model = channels.channel_model(
        c["noise_voltage"], c["cfo"], c["epsilon"], c["taps"], c["noise_seed"], False
    )
    sink = blocks.vector_sink_c()
    tb.connect(src, model, sink)
    tb.run()
    return np.asarray(sink.data(), dtype=np.complex64)


def channel_delay() -> int:
    """Samples by which channel_model (its timing resampler) advances its input; measured once."""
    global _delay
    if _delay is None:
        x = np.zeros(128, np.complex64)
        x[64] = 1.0
        c = {"noise_voltage": 0.0, "cfo": 0.0, "epsilon": 1.0, "taps": [1.0], "noise_seed": 1}
        _delay = 64 - int(np.argmax(np.abs(_channel_run(x, c))))
    return _delay


def render(spec: dict[str, Any]) -> np.ndarray:
    """One chunk: ``gap`` samples of noise, then ``count`` samples of the burst (if any).

    The clean burst is scaled so that its measured power is ``SNR * noise_voltage**2`` (taps
    have unit energy), then channel_model adds CFO, timing drift, multipath and noise.
    """
    gap, count, c = spec["gap"], spec["count"], spec["channel"]
    x = np.zeros(gap + channel_delay() + count + TAIL, np.complex64)
    if count:
        clean = transmit(spec["tx"], count + TAIL)
        power = float(np.mean(np.abs(clean[:count]) ** 2))
        level = c["noise_voltage"] * math.sqrt(10 ** (spec["snr_db"] / 10) / power)
        x[gap + channel_delay() :] = clean * np.complex64(level * np.exp(1j * c["phase"]))
    out = _channel_run(x, c)
    if len(out) < gap + count:
        raise RuntimeError(f"channel gave {len(out)} samples, expected {gap + count}")
    return out[: gap + count]
