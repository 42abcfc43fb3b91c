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


def _points(label: str) -> list[complex]:
    """Constellation points (from GNU Radio's own constellations) scaled to unit mean power."""
    if label == "PAM4":
        pts = np.array([-3.0, -1.0, 1.0, 3.0], complex)
    else:
        objects = {
            "BPSK": digital.constellation_bpsk,
            "QPSK": digital.constellation_qpsk,
            "8PSK": digital.constellation_8psk,
            "QAM16": digital.constellation_16qam,
            "QAM64": lambda: digital.qam_constellation(64),
        }
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
    """Binary CPFSK: NRZ bits held for ``sps`` samples -> analog.frequency_modulator_fc."""
    sps = p["sps"]
    src = blocks.vector_source_b(_bits(p, n + sps), False)
    nrz = digital.chunks_to_symbols_bf([-1.0, 1.0])
    hold = blocks.repeat(gr.sizeof_float, sps)
    fm = analog.frequency_modulator_fc(math.pi * p["index"] / sps)
    tb.connect(src, nrz, hold, fm)
    return fm, sps


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
    """Double sideband with carrier: 1 + m * audio, interpolated to FS."""
    gain, carrier = blocks.multiply_const_ff(p["mod_index"]), blocks.add_const_ff(1.0)
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


_TX = {
    **dict.fromkeys(("BPSK", "QPSK", "8PSK", "QAM16", "QAM64", "PAM4"), _linear),
    "GFSK": _gfsk,
    "CPFSK": _cpfsk,
    "AM-DSB": _am_dsb,
    "AM-SSB": _am_ssb,
    "WBFM": _wbfm,
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
