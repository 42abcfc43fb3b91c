"""Radio hardware non-idealities: a saturating transmit amplifier and a receiver ADC.

Pure functions of (records, Generator, config), like ``impairments``: every parameter is drawn
for every record whether or not it is hit, so the draws do not depend on which records are.
"""

from __future__ import annotations

import numpy as np

from .config import HardwareConfig
from .dsp import expj

Meta = dict[str, np.ndarray]

#: Per-record metadata written when ``hardware`` is on (NaN for the records it spared).
HARDWARE_META = (
    "amplifier_backoff_db",
    "amplifier_p",
    "amplifier_am_pm_deg",
    "adc_bits",
    "adc_headroom_db",
)


def nonzero_power(x: np.ndarray) -> np.ndarray:
    """Mean power per record over its non-zero samples (a gated burst: while it is on)."""
    p = np.abs(x) ** 2
    return p.sum(axis=1) / np.maximum(1, (p > 0).sum(axis=1))


def rapp(r: np.ndarray, saturation: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Rapp AM/AM: output amplitude r / (1 + (r/A)^2p)^(1/2p), which tends to A."""
    u = (r / saturation) ** (2 * p)
    return r / (1 + u) ** (1 / (2 * p))


def amplifier(
    x: np.ndarray, rng: np.random.Generator, cfg: HardwareConfig
) -> tuple[np.ndarray, Meta]:
    """A share of the records through a Rapp amplifier with AM/PM, at a drawn input back-off.

    The AM/PM turn is ``am_pm_deg`` * 2u/(1+u), u = (r/A)^2: zero for small signals, the full
    turn at saturation. It acts on the envelope, so it commutes with the band's centre shift.
    """
    n = x.shape[0]
    hit = rng.random(n) < cfg.amplifier_probability
    backoff = rng.uniform(*cfg.backoff_db, size=n)
    p = rng.uniform(*cfg.smoothness, size=n)
    turn = rng.uniform(*cfg.am_pm_deg, size=n)
    meta = {
        "amplifier_backoff_db": np.where(hit, backoff, np.nan),
        "amplifier_p": np.where(hit, p, np.nan),
        "amplifier_am_pm_deg": np.where(hit, turn, np.nan),
    }
    if not hit.any():
        return x, meta
    sel = np.flatnonzero(hit)
    xs = x[sel]
    a = (np.sqrt(nonzero_power(xs)) * 10 ** (backoff[sel] / 20))[:, None]
    r = np.abs(xs).astype(np.float64)
    u = (r / a) ** 2
    phase = np.deg2rad(turn[sel])[:, None] * 2 * u / (1 + u)
    gain = np.divide(rapp(r, a, p[sel, None]), r, out=np.ones_like(r), where=r > 0)
    out = x.copy()
    out[sel] = (xs * gain * expj(phase)).astype(np.complex64)
    return out, meta


def adc(x: np.ndarray, rng: np.random.Generator, cfg: HardwareConfig) -> tuple[np.ndarray, Meta]:
    """A share of the received records quantised: I and Q, mid-rise, clipped at full scale."""
    n = x.shape[0]
    hit = rng.random(n) < cfg.adc_probability
    bits = rng.integers(cfg.adc_bits[0], cfg.adc_bits[1] + 1, size=n)
    headroom = rng.uniform(*cfg.adc_headroom_db, size=n)
    meta = {
        "adc_bits": np.where(hit, bits, np.nan),
        "adc_headroom_db": np.where(hit, headroom, np.nan),
    }
    if not hit.any():
        return x, meta
    sel = np.flatnonzero(hit)
    full = np.sqrt(np.mean(np.abs(x[sel]) ** 2, axis=1) / 2) * 10 ** (headroom[sel] / 20)
    step = (2 * full / 2.0 ** bits[sel])[:, None]
    top = full[:, None] - step / 2
    parts = x[sel].view(np.float32).reshape(len(sel), -1, 2).astype(np.float64)
    q = np.clip((np.floor(parts / step[..., None]) + 0.5) * step[..., None], -top[..., None],
                top[..., None])  # fmt: skip
    out = x.copy()
    out[sel] = q.astype(np.float32).reshape(len(sel), -1).view(np.complex64)
    return out, meta
