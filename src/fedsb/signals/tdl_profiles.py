"""The standard tapped-delay-line power-delay profiles, as published (pure data, no numpy).

3GPP TR 38.901 Table 7.7.2-1..5 (TDL-A..E): normalised delays (multiply by the RMS delay
spread) and powers in dB; TDL-D and TDL-E start with a line-of-sight path (its K-factor is
the ratio of that path to the Rayleigh path at the same delay). 3GPP TS 36.104 Annex B.2
(EPA, EVA, ETU): delays in ns and powers in dB, all paths Rayleigh.
"""

from __future__ import annotations

from typing import NamedTuple


class Profile(NamedTuple):
    """One standard profile: path delays, path powers (dB) and whether path 0 is LOS."""

    delays: tuple[float, ...]  # normalised (scaled by the delay spread) or ns (absolute)
    powers_db: tuple[float, ...]
    los: bool  # path 0 is a specular line-of-sight path
    normalised: bool  # delays are multiples of the RMS delay spread (TDL-A..E)


PROFILES: dict[str, Profile] = {
    "tdl-a": Profile(
        (0.0, 0.3819, 0.4025, 0.5868, 0.4610, 0.5375, 0.6708, 0.5750, 0.7618, 1.5375, 1.8978,
         2.2242, 2.1718, 2.4942, 2.5119, 3.0582, 4.0810, 4.4579, 4.5695, 4.7966, 5.0066,
         5.3043, 9.6586),
        (-13.4, 0.0, -2.2, -4.0, -6.0, -8.2, -9.9, -10.5, -7.5, -15.9, -6.6, -16.7, -12.4,
         -15.2, -10.8, -11.3, -12.7, -16.2, -18.3, -18.9, -16.6, -19.9, -29.7),
        los=False, normalised=True,
    ),
    "tdl-b": Profile(
        (0.0, 0.1072, 0.2155, 0.2095, 0.2870, 0.2986, 0.3752, 0.5055, 0.3681, 0.3697, 0.5700,
         0.5283, 1.1021, 1.2756, 1.5474, 1.7842, 2.0169, 2.8294, 3.0219, 3.6187, 4.1067,
         4.2790, 4.7834),
        (0.0, -2.2, -4.0, -3.2, -9.8, -1.2, -3.4, -5.2, -7.6, -3.0, -8.9, -9.0, -4.8, -5.7,
         -7.5, -1.9, -7.6, -12.2, -9.8, -11.4, -14.9, -9.2, -11.3),
        los=False, normalised=True,
    ),
    "tdl-c": Profile(
        (0.0, 0.2099, 0.2219, 0.2329, 0.2176, 0.6366, 0.6448, 0.6560, 0.6584, 0.7935, 0.8213,
         0.9336, 1.2285, 1.3083, 2.1704, 2.7105, 4.2589, 4.6003, 5.4902, 5.6077, 6.3065,
         6.6374, 7.0427, 8.6523),
        (-4.4, -1.2, -3.5, -5.2, -2.5, 0.0, -2.2, -3.9, -7.4, -7.1, -10.7, -11.1, -5.1, -6.8,
         -8.7, -13.2, -13.9, -13.9, -15.8, -17.1, -16.0, -15.7, -21.6, -22.8),
        los=False, normalised=True,
    ),
    "tdl-d": Profile(
        (0.0, 0.0, 0.035, 0.612, 1.363, 1.405, 1.804, 2.596, 1.775, 4.042, 7.937, 9.424,
         9.708, 12.525),
        (-0.2, -13.5, -18.8, -21.0, -22.8, -17.9, -20.1, -21.9, -22.9, -27.8, -23.6, -24.8,
         -30.0, -27.7),
        los=True, normalised=True,
    ),
    "tdl-e": Profile(
        (0.0, 0.0, 0.5133, 0.5440, 0.5630, 0.5440, 0.7112, 1.9092, 1.9293, 1.9589, 2.6426,
         3.7136, 5.4524, 12.0034, 20.6519),
        (-0.03, -22.03, -15.8, -18.1, -19.8, -22.9, -22.4, -18.6, -20.8, -22.6, -22.3, -25.6,
         -20.2, -29.8, -29.2),
        los=True, normalised=True,
    ),
    "epa": Profile(
        (0.0, 30.0, 70.0, 90.0, 110.0, 190.0, 410.0),
        (0.0, -1.0, -2.0, -3.0, -8.0, -17.2, -20.8),
        los=False, normalised=False,
    ),
    "eva": Profile(
        (0.0, 30.0, 150.0, 310.0, 370.0, 710.0, 1090.0, 1730.0, 2510.0),
        (0.0, -1.5, -1.4, -3.6, -0.6, -9.1, -7.0, -12.0, -16.9),
        los=False, normalised=False,
    ),
    "etu": Profile(
        (0.0, 50.0, 120.0, 200.0, 230.0, 500.0, 1600.0, 2300.0, 5000.0),
        (-1.0, -1.0, -1.0, 0.0, 0.0, 0.0, -3.0, -5.0, -7.0),
        los=False, normalised=False,
    ),
}  # fmt: skip

#: The profiles' names, in the order the ``tdl`` metadata indexes them.
TDL_MODELS: tuple[str, ...] = tuple(PROFILES)
MAX_PATHS = max(len(p.delays) for p in PROFILES.values())


def models_of(model: str) -> tuple[str, ...]:
    """The profiles a ``fading.model`` draws from: itself, or all eight for "standard"."""
    return TDL_MODELS if model == "standard" else (model,)


def max_delay_ns(model: str, delay_spread_ns: float) -> float:
    """The longest path delay (ns) of ``model`` at RMS delay spread ``delay_spread_ns``."""
    reach = 0.0
    for name in models_of(model):
        p = PROFILES[name]
        reach = max(reach, max(p.delays) * (delay_spread_ns if p.normalised else 1.0))
    return reach


def delay_samples(delay_ns: float, rate_mhz: float) -> int:
    """A path delay on the sample grid: the nearest sample at ``rate_mhz``."""
    return int(round(delay_ns * rate_mhz / 1000))


def max_delay_samples(
    model: str, delay_spread_ns: tuple[float, float], rate_mhz: tuple[float, float]
) -> int:
    """The longest path delay ``model`` can draw, in samples."""
    return delay_samples(max_delay_ns(model, delay_spread_ns[1]), rate_mhz[1])
