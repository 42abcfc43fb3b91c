"""Classify the bursts of SigMF recordings with a run's model, streaming in bounded memory.

What is classified: each annotation of a recording that has some; in one without, the bursts
that detection finds (:mod:`fedsb.signals.bursts`: energy over the whole band and in
sub-bands, edges fitted). A burst is cut into windows of the model's record length, each
``overlap`` of a window after the last (half a window by default; plus one flush with its end
when a quarter step or more is left; a burst shorter than a window gets one window centred on
it); its log-probabilities at the run's temperature are averaged over its windows and
renormalised: the burst's calibrated probabilities. Then ``unknown`` by the thresholds of
:mod:`.classify_model`.

When the model's images use the front-end (``images.frontend``), each burst's band is
estimated once over the burst and its windows are gated by its edges
(:mod:`fedsb.signals.burst_frontend`), instead of every window estimating its own.

Memory: samples are read ``chunk`` at a time for detection and one batch of windows at a time
for the model; only the bursts still being classified keep accumulators (their log-probability
and periodogram sums). Detection keeps 4 bytes of power per 64 samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..data.imageset import quantised_images
from ..devices import model_device
from ..errors import ConfigError
from ..images.config import ImageConfig
from ..io.sigmf_labels import Labelled
from ..io.sigmf_spans import capture_of
from ..io.sigmf_stream import Recording
from ..signals.burst_frontend import BAND_SAMPLES, apply_given, burst_band
from ..signals.burst_search import SpectralPower
from ..signals.bursts import BlockPower, BurstConfig, band_edges, detect_bursts, periodogram
from ..signals.frontend import FrontendConfig
from .classify_model import Thresholds, window_scores
from .evaluate_run import RunModel

Advance = Callable[[int], None]


@dataclass(frozen=True)
class ClassifyConfig:
    """Batching and detection settings of :func:`classify_recording`."""

    batch: int = 256  # windows per model call
    chunk: int = 1 << 20  # samples per read while detecting
    top: int = 3  # classes listed per burst
    nfft: int = 256  # periodogram bins for the frequency edges
    detect: BurstConfig = field(default_factory=BurstConfig)
    overlap: float = 0.5  # share of a window the next one overlaps (0: side by side)

    def __post_init__(self) -> None:
        for key in ("batch", "chunk", "top", "nfft"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.overlap < 1:
            raise ConfigError(f"overlap: must be in [0, 1), got {self.overlap}")
        self.detect.check()

    def hop(self, length: int) -> int:
        """Samples from one window's start to the next one's."""
        return max(1, round(length * (1 - self.overlap)))


@dataclass(frozen=True)
class Segment:
    """A span to classify, from an annotation or from detection."""

    start: int
    count: int
    source: str
    given: str | None = None  # the annotation's core:label
    freq: tuple[float, float] | None = None  # the annotation's own edges


def passes(rec: Recording) -> int:
    """Reads of the samples: 1 for an annotated recording, 2 when bursts are detected first."""
    return 1 if rec.annotations else 2


def _annotated(rec: Recording) -> list[Segment]:
    out = []
    for i, ann in enumerate(rec.annotations):
        start = ann["core:sample_start"]
        count = ann.get("core:sample_count", rec.total - start)
        if count == 0:
            continue
        given = ann.get("core:label")
        lo, hi = ann.get("core:freq_lower_edge"), ann.get("core:freq_upper_edge")
        freq = (float(lo), float(hi)) if _number(lo) and _number(hi) else None
        out.append(
            Segment(
                start, count, f"annotation {i}", given if isinstance(given, str) else None, freq
            )
        )
    return sorted(out, key=lambda s: s.start)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def find_segments(
    rec: Recording, config: ClassifyConfig, advance: Advance
) -> tuple[list[Segment], float]:
    """(segments in start order, noise floor per sample or NaN when none was estimated)."""
    if rec.annotations:
        return _annotated(rec), math.nan
    acc = BlockPower(config.detect.block)
    spec = SpectralPower() if config.detect.band_sigmas > 0 else None
    for chunk in rec.chunks(config.chunk):
        acc.add(chunk)
        if spec is not None:
            spec.add(chunk)
        advance(chunk.size)
    spectrum = spec.result() if spec is not None else None
    found, floor = detect_bursts(acc.result(), config.detect, spectrum=spectrum)
    return [Segment(s, n, "detected") for s, n in found], floor


def window_starts(
    start: int, count: int, length: int, total: int, hop: int | None = None
) -> np.ndarray:
    """Starts of the windows of one span, ``hop`` apart (default ``length``; see module doc)."""
    hop = length if hop is None else hop
    if count < length:
        centred = start + count // 2 - length // 2
        return np.asarray([min(max(centred, 0), total - length)], np.int64)
    k = (count - length) // hop + 1
    starts = start + hop * np.arange(k, dtype=np.int64)
    if count - (k - 1) * hop - length >= hop // 4:
        starts = np.append(starts, start + count - length)
    return starts


@dataclass
class _Acc:
    """Sums over one segment's windows."""

    logp: np.ndarray
    energy: float = 0.0
    n: int = 0
    power: float = 0.0
    psd: np.ndarray | None = None
    segments: int = 0
    band: tuple[float, float, bool] | None = None  # the burst's front-end band estimate


def _read(rec: Recording, starts: np.ndarray, length: int, limit: int) -> np.ndarray:
    """(n, length) windows: one read when they lie close together, else one read each."""
    lo, hi = int(starts.min()), int(starts.max()) + length
    if hi - lo <= limit:
        block = rec.read(lo, hi - lo)
        return np.stack([block[s - lo : s - lo + length] for s in starts.tolist()])
    return np.stack([rec.read(s, length) for s in starts.tolist()])


def _logits(loaded: RunModel, iq: np.ndarray, config: ImageConfig | None = None) -> np.ndarray:
    images = quantised_images(iq, config or loaded.images).float().div_(255.0)
    with torch.inference_mode():
        logits = loaded.model(images.to(model_device(loaded.model)))
        return logits.cpu().double().numpy()


def _finish(
    seg: Segment, acc: _Acc, rec: Recording, ctx: tuple[RunModel, Thresholds, float, int]
) -> Labelled:
    """The label, probabilities, edges and SNR of one segment from its sums."""
    loaded, thresholds, floor, top = ctx
    mean = acc.logp / acc.n
    logp = mean - np.logaddexp.reduce(mean)
    p = np.exp(logp)
    order = np.argsort(-p, kind="stable")[:top]
    best, energy = float(p[order[0]]), acc.energy / acc.n
    unknown = best < thresholds.confidence or (
        thresholds.energy is not None and energy < thresholds.energy
    )
    ratio = acc.power / (acc.n * loaded.length) / floor - 1 if floor > 0 else math.nan
    edges = None
    if acc.psd is not None:
        edges = band_edges(acc.psd, acc.segments, floor, rec.sample_rate)
    if edges is not None:
        starts = [c.get("core:sample_start", 0) for c in rec.captures]
        centre = capture_of(rec.captures, starts, seg.start).get("core:frequency", 0.0)
        centre = float(centre) if _number(centre) else 0.0
        edges = (centre + edges[0], centre + edges[1])
    return Labelled(
        start=seg.start,
        count=seg.count,
        label="unknown" if unknown else loaded.class_names[order[0]],
        probability=best,
        top=tuple((loaded.class_names[i], float(p[i])) for i in order),
        energy=float(energy),
        windows=acc.n,
        source=seg.source,
        freq=edges if edges is not None else seg.freq,
        snr_db=10 * math.log10(ratio) if ratio > 0 else math.nan,
        given=seg.given,
    )


def _windows(
    segments: list[Segment], length: int, total: int, hop: int
) -> tuple[np.ndarray, np.ndarray]:
    """(segment index, start) of every window, segment by segment."""
    parts = [window_starts(s.start, s.count, length, total, hop) for s in segments]
    index = np.repeat(np.arange(len(parts), dtype=np.int64), [p.size for p in parts])
    return index, (np.concatenate(parts) if parts else np.zeros(0, np.int64))


def classify_segments(
    rec: Recording,
    segments: list[Segment],
    loaded: RunModel,
    thresholds: Thresholds,
    floor: float = math.nan,
    config: ClassifyConfig = ClassifyConfig(),
    advance: Advance = lambda n: None,
) -> list[Labelled]:
    """Every segment classified (see module doc); ``advance`` gets the samples passed over."""
    length = loaded.length
    index, starts = _windows(segments, length, rec.total, config.hop(length))
    open_: dict[int, _Acc] = {}
    out: list[Labelled] = []
    ctx = (loaded, thresholds, floor, config.top)
    pos, limit = 0, max(config.chunk, 2 * config.batch * length)
    front = loaded.images.frontend
    plain = replace(loaded.images, frontend=FrontendConfig()) if front.active else None
    for lo in range(0, index.size, config.batch):
        seg, st = index[lo : lo + config.batch], starts[lo : lo + config.batch]
        iq = _read(rec, st, length, limit)
        for s in np.unique(seg).tolist():
            open_.setdefault(s, _Acc(np.zeros(len(loaded.class_names))))
        seen = _front(rec, segments, open_, (seg, st, iq), front) if plain else iq
        logp, energy = window_scores(_logits(loaded, seen, plain), loaded.temperature)
        for s in np.unique(seg).tolist():
            rows = seg == s
            _add(open_[s], logp[rows], energy[rows], iq[rows], floor, config.nfft)
        done = int(seg[-1]) if lo + config.batch >= index.size else int(seg[-1]) - 1
        for s in sorted(k for k in open_ if k <= done):
            out.append(_finish(segments[s], open_.pop(s), rec, ctx))
        end = int(st.max()) + length
        if end > pos:
            advance(end - pos)
            pos = end
    if rec.total > pos:
        advance(rec.total - pos)
    return out


def _front(
    rec: Recording,
    segments: list[Segment],
    accs: dict[int, _Acc],
    batch: tuple[np.ndarray, np.ndarray, np.ndarray],
    config: FrontendConfig,
) -> np.ndarray:
    """A batch of windows (segment, start, samples) through the front-end, burst by burst.

    Each burst's band is estimated once, on its middle ``BAND_SAMPLES``; each window is gated
    to the part of it that lies in its burst.
    """
    seg, st, iq = batch
    band = np.empty((3, seg.size))
    for s in np.unique(seg).tolist():
        acc, span = accs[s], segments[s]
        if acc.band is None:
            n = min(span.count, BAND_SAMPLES)
            acc.band = burst_band(rec.read(span.start + (span.count - n) // 2, n))
        band[:, seg == s] = np.asarray(acc.band, np.float64)[:, None]
    first = np.asarray([segments[s].start for s in seg.tolist()], np.int64) - st
    end = first + np.asarray([segments[s].count for s in seg.tolist()], np.int64)
    length = iq.shape[1]
    start = np.clip(first, 0, length - 1)
    stop = np.maximum(np.clip(end, 1, length), start + 1)
    return apply_given(iq, config, (band[0], band[1], band[2] > 0), (start, stop))


def _add(acc: _Acc, logp: np.ndarray, energy: np.ndarray, iq: np.ndarray, floor, nfft) -> None:
    acc.logp += logp.sum(0)
    acc.energy += float(energy.sum())
    acc.n += logp.shape[0]
    acc.power += float((iq.real.astype(np.float64) ** 2 + iq.imag.astype(np.float64) ** 2).sum())
    if floor > 0:
        psd, n = periodogram(iq, nfft)
        acc.psd = psd if acc.psd is None else acc.psd + psd
        acc.segments += n


def classify_recording(
    rec: Recording,
    loaded: RunModel,
    thresholds: Thresholds,
    config: ClassifyConfig = ClassifyConfig(),
    advance: Advance = lambda n: None,
) -> tuple[list[Labelled], float]:
    """(classified bursts or annotations, noise floor or NaN) of one recording."""
    segments, floor = find_segments(rec, config, advance)
    return classify_segments(rec, segments, loaded, thresholds, floor, config, advance), floor
