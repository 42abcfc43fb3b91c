"""Generator configuration: the range every per-record parameter is drawn from.

Ranges are ``(low, high)`` tuples drawn uniformly (integers inclusive). An impairment is
switched off with ``enabled = false`` and narrowed by shrinking its range; ``(x, x)`` fixes it.
Frequencies are in cycles per sample (the sample rate is 1), delays in samples.

The broad-domain options (``center``, ``bandwidth``, ``bursts``, ``hardware``, ``distortion``,
``pulse.shapes`` and the standard TDL ``fading.model`` values) are off by default and listed in
``HASH_NEUTRAL``: at their defaults the output, the config hash and the recorded config are
what they were before them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

from ..config import check_number
from .tdl_profiles import TDL_MODELS, max_delay_ns


def _check_range(
    name: str, rng: tuple[float, float], low: float | None = None, high: float | None = None
) -> None:
    """``name: ...`` unless ``rng`` is a finite (low, high) pair within [low, high]."""
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in rng):
        raise ValueError(f"{name}: {tuple(rng)!r} must be finite numbers")
    if rng[0] > rng[1]:
        raise ValueError(f"{name}: low {rng[0]} is above high {rng[1]}")
    if low is not None and rng[0] < low:
        raise ValueError(f"{name}: {rng[0]} is below the minimum {low}")
    if high is not None and rng[1] > high:
        raise ValueError(f"{name}: {rng[1]} is above the maximum {high}")


MAX_SNR_GRID = 100_000  # SNR grid points (snr_step > 0): the grid is built as one array
MIN_BANDWIDTH = 0.01  # the narrowest drawn occupied bandwidth, a share of the sample rate

#: Pulse shapes of the linear classes (``pulse.shapes``); a record's ``pulse`` meta indexes it.
PULSE_SHAPES = ("rrc", "gaussian", "rect", "half-sine")

#: ``fading.model``: the exponential profiles, the standard ones (``tdl_profiles.TDL_MODELS``)
#: or "standard", one of those eight drawn per record.
FadingModel = Literal[
    "rayleigh", "rician", "mixed", "tdl-a", "tdl-b", "tdl-c", "tdl-d", "tdl-e", "epa", "eva",
    "etu", "standard",
]  # fmt: skip
MAX_TDL_DELAY = 256  # samples: the longest standard-profile delay a config may reach


@dataclass(frozen=True)
class PulseConfig:
    """Symbol rate and pulse shape of the digital classes."""

    sps: tuple[float, float] = (2.0, 16.0)  # samples per symbol, non-integer
    rolloff: tuple[float, float] = (0.15, 0.5)  # RRC roll-off of linear modulations
    gaussian_bt: tuple[float, float] = (0.25, 0.5)  # Gaussian BT of GFSK/GMSK
    timing: bool = True  # random symbol timing / fractional delay in [0, 1) symbol
    # pulse shapes of the linear classes, one drawn per record (Gaussian: BT from gaussian_bt)
    shapes: tuple[str, ...] = ("rrc",)
    # share of AM-DSB, AM-SSB, WBFM and GFSK records drawn as TorchSig's variants of the class
    # (``analog.VARIANT``, ``digital.GFSK_VARIANT``): white Gaussian messages, low-index GFSK
    variants: float = 0.0

    HASH_NEUTRAL: ClassVar[frozenset[str]] = frozenset({"shapes", "variants"})

    def __post_init__(self) -> None:
        _check_range("sps", self.sps, 1.5, 64.0)
        _check_range("rolloff", self.rolloff, 0.05, 1.0)
        _check_range("gaussian_bt", self.gaussian_bt, 0.1, 2.0)
        if not self.shapes:
            raise ValueError("shapes: name at least one pulse shape")
        for shape in self.shapes:
            if shape not in PULSE_SHAPES:
                raise ValueError(f"shapes: {shape!r} is not one of {', '.join(PULSE_SHAPES)}")
        if len(set(self.shapes)) != len(self.shapes):
            raise ValueError("shapes: a pulse shape is listed twice")
        check_number("variants", self.variants, 0.0, 1.0)


@dataclass(frozen=True)
class FadingConfig:
    """Sample-spaced tapped-delay-line multipath with an exponential power-delay profile."""

    enabled: bool = True
    probability: float = 1.0  # share of records that get multipath (the rest: a flat channel)
    # mixed: half Rayleigh, half Rician; TDL_MODELS or "standard": a standard profile
    model: FadingModel = "mixed"
    taps: tuple[int, int] = (1, 4)  # number of taps, one per sample of delay
    delay_spread: tuple[float, float] = (0.3, 1.5)  # decay constant of the profile, samples
    rician_k_db: tuple[float, float] = (0.0, 10.0)  # line-of-sight over scattered power
    time_varying: bool = True
    doppler: tuple[float, float] = (0.0, 0.002)  # max Doppler shift, cycles/sample
    # standard profiles only: the sample rate that scales their delays (log-uniform, MHz) and
    # the RMS delay spread of TDL-A..E (uniform, ns); EPA/EVA/ETU have fixed delays
    sample_rate_mhz: tuple[float, float] = (1.0, 10.0)
    tdl_delay_spread_ns: tuple[float, float] = (30.0, 300.0)

    HASH_NEUTRAL: ClassVar[frozenset[str]] = frozenset({"sample_rate_mhz", "tdl_delay_spread_ns"})

    def __post_init__(self) -> None:
        check_number("probability", self.probability, 0, 1)
        if self.model not in get_args(FadingModel):
            raise ValueError(
                f"model: {self.model!r} is not one of {', '.join(get_args(FadingModel))}"
            )
        _check_range("taps", self.taps, 1, 16)
        _check_range("delay_spread", self.delay_spread, 0.01)
        _check_range("rician_k_db", self.rician_k_db, -20.0, 40.0)
        _check_range("doppler", self.doppler, 0.0, 0.02)
        _check_range("sample_rate_mhz", self.sample_rate_mhz, 0.01, 1000.0)
        _check_range("tdl_delay_spread_ns", self.tdl_delay_spread_ns, 1.0, 10_000.0)
        if self.enabled and self.standard:
            reach = max_delay_ns(self.model, self.tdl_delay_spread_ns[1])
            reach *= self.sample_rate_mhz[1] / 1000
            if reach > MAX_TDL_DELAY:
                raise ValueError(
                    f"sample_rate_mhz: {self.model} reaches a delay of {reach:.0f} samples at "
                    f"{self.sample_rate_mhz[1]:g} MHz (at most {MAX_TDL_DELAY}); lower it or "
                    "tdl_delay_spread_ns"
                )

    @property
    def standard(self) -> bool:
        """Whether the model is a standard tapped-delay-line profile (or "standard": any)."""
        return self.model in TDL_MODELS or self.model == "standard"


@dataclass(frozen=True)
class ImpairmentsConfig:
    """Transmitter/receiver impairments, applied in this order after the channel."""

    cfo_enabled: bool = True
    cfo: tuple[float, float] = (-0.01, 0.01)  # carrier frequency offset, cycles/sample
    phase_enabled: bool = True  # uniform carrier phase in [0, 2*pi)
    phase_noise_enabled: bool = True
    phase_noise: tuple[float, float] = (0.0, 0.01)  # Wiener phase step std, rad/sample
    iq_imbalance_enabled: bool = True
    iq_amplitude_db: tuple[float, float] = (-1.0, 1.0)
    iq_phase_deg: tuple[float, float] = (-5.0, 5.0)
    dc_offset_enabled: bool = True
    dc_offset_db: tuple[float, float] = (-40.0, -20.0)  # DC power relative to signal power

    def __post_init__(self) -> None:
        _check_range("cfo", self.cfo, -0.25, 0.25)
        _check_range("phase_noise", self.phase_noise, 0.0, 1.0)
        _check_range("iq_amplitude_db", self.iq_amplitude_db, -6.0, 6.0)
        _check_range("iq_phase_deg", self.iq_phase_deg, -30.0, 30.0)
        _check_range("dc_offset_db", self.dc_offset_db, -100.0, 0.0)

    @staticmethod
    def all_off() -> ImpairmentsConfig:
        """Every impairment switched off (ranges at their defaults)."""
        return ImpairmentsConfig(
            cfo_enabled=False,
            phase_enabled=False,
            phase_noise_enabled=False,
            iq_imbalance_enabled=False,
            dc_offset_enabled=False,
        )


@dataclass(frozen=True)
class OnOffConfig:
    """Bursts: a share of the records is on for only part of the record, noise elsewhere."""

    probability: float = 0.0  # share of the records that are bursts (0: off, all continuous)
    duty: tuple[float, float] = (0.2, 1.0)  # on-time / record length, uniform
    count: tuple[int, int] = (1, 1)  # on-periods per burst record (the on-time is split)

    def __post_init__(self) -> None:
        check_number("probability", self.probability, 0, 1)
        _check_range("duty", self.duty, 0.01, 1.0)
        _check_range("count", self.count, 1, 16)


@dataclass(frozen=True)
class HardwareConfig:
    """Radio hardware non-idealities other toolchains model (TorchSig's level 1-2, real radios).

    ``amplifier``: a share of the records goes through a saturating transmit amplifier (Rapp
    AM/AM with smoothness p, Saleh-like AM/PM), driven at an input back-off from saturation.
    ``adc``: a share is quantised by the receiver's ADC (I and Q, ``adc_bits`` each, full scale
    ``adc_headroom_db`` above the RMS; the peaks beyond it clip). Both off by default.
    """

    amplifier_probability: float = 0.0
    backoff_db: tuple[float, float] = (0.0, 10.0)  # RMS input below the saturation level
    smoothness: tuple[float, float] = (1.0, 4.0)  # Rapp p: 1 soft, large: a hard clip
    am_pm_deg: tuple[float, float] = (0.0, 15.0)  # phase turn at saturation, degrees
    adc_probability: float = 0.0
    adc_bits: tuple[int, int] = (4, 10)
    adc_headroom_db: tuple[float, float] = (3.0, 12.0)

    def __post_init__(self) -> None:
        check_number("amplifier_probability", self.amplifier_probability, 0, 1)
        check_number("adc_probability", self.adc_probability, 0, 1)
        _check_range("backoff_db", self.backoff_db, -10.0, 40.0)
        _check_range("smoothness", self.smoothness, 0.1, 50.0)
        _check_range("am_pm_deg", self.am_pm_deg, -90.0, 90.0)
        _check_range("adc_bits", self.adc_bits, 1, 16)
        _check_range("adc_headroom_db", self.adc_headroom_db, -10.0, 40.0)

    @property
    def enabled(self) -> bool:
        """Whether any record meets the hardware (the generator skips both draws otherwise)."""
        return self.amplifier_probability > 0 or self.adc_probability > 0


@dataclass(frozen=True)
class DistortionConfig:
    """What TorchSig's impairment level 2 does that the options above do not (all off: 0).

    ``dense``: a share of the records through a static Rayleigh FIR with a flat power-delay
    profile, ceil(1 / coherence bandwidth) taps long (TorchSig's ``Fading``: 10-100 taps).
    ``polynomial``: a memoryless odd-order nonlinearity x (1 + a3 |x|^2 + a5 |x|^4) on the
    transmitted signal (TorchSig's ``IntermodulationProducts``): a = c P and c P^2, with the
    coefficients c log-uniform in ``polynomial_coefficient`` (a5's below a3's, on half the
    records) and the signal power P log-uniform over ``polynomial_level_db``, the range of
    TorchSig's record powers at its SNRs 0-50 dB. ``gain_step``: the receiver's gain jumps by
    ``gain_step_db`` at a random sample (``CoarseGainChange``). ``slope``: the record plus its
    first difference, a high-pass tilt of +9.5 dB at the band edge (``AddSlope``). ``edge_cut``:
    a brick-wall filter takes off the outer side of the placed band, a share uniform in
    ``edge_cut_share`` of its width (TorchSig's anti-aliasing filter at +-0.2475 cycles/sample
    cuts the signals placed near the band edge).
    """

    dense_probability: float = 0.0
    dense_coherence_bandwidth: tuple[float, float] = (0.01, 0.1)  # cycles/sample, uniform
    polynomial_probability: float = 0.0
    polynomial_coefficient: tuple[float, float] = (1e-4, 1e-1)
    polynomial_level_db: tuple[float, float] = (-16.0, 34.0)
    gain_step_probability: float = 0.0
    gain_step_db: tuple[float, float] = (-20.0, 20.0)
    slope_probability: float = 0.0
    edge_cut_probability: float = 0.0
    edge_cut_share: tuple[float, float] = (0.0, 0.4)  # of the occupied band, uniform

    SHARES: ClassVar[tuple[str, ...]] = (
        "dense_probability", "polynomial_probability", "gain_step_probability",
        "slope_probability", "edge_cut_probability",
    )  # fmt: skip
    #: Added later; at their defaults the output is what it was: left out of config hashes.
    HASH_NEUTRAL: ClassVar[frozenset[str]] = frozenset({"edge_cut_probability", "edge_cut_share"})

    def __post_init__(self) -> None:
        for name in self.SHARES:
            check_number(name, getattr(self, name), 0, 1)
        _check_range("dense_coherence_bandwidth", self.dense_coherence_bandwidth, 1 / 256, 1.0)
        _check_range("polynomial_coefficient", self.polynomial_coefficient, 1e-8, 10.0)
        _check_range("polynomial_level_db", self.polynomial_level_db, -60.0, 60.0)
        _check_range("gain_step_db", self.gain_step_db, -60.0, 60.0)
        _check_range("edge_cut_share", self.edge_cut_share, 0.0, 0.9)

    @property
    def enabled(self) -> bool:
        """Whether any record meets a distortion (the generator skips every draw otherwise)."""
        return any(getattr(self, name) > 0 for name in self.SHARES)

    @property
    def padding(self) -> int:
        """Leading samples the dense FIR consumes, so that it has no start transient."""
        return math.ceil(1 / self.dense_coherence_bandwidth[0]) - 1 if self.dense_probability else 0


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that defines a generated set, except the classes, counts and seed."""

    length: int = 1024  # samples per record
    snr_db: tuple[float, float] = (-10.0, 20.0)
    snr_step: float = 0.0  # > 0: SNRs on a grid (RadioML style, e.g. 2 dB); 0: continuous
    noise_enabled: bool = True  # AWGN; off gives clean records (snr_db = inf)
    pulse: PulseConfig = field(default_factory=PulseConfig)
    fading: FadingConfig = field(default_factory=FadingConfig)
    impairments: ImpairmentsConfig = field(default_factory=ImpairmentsConfig)
    # centre of the occupied band, cycles/sample, uniform (kept inside the band with bandwidth)
    center: tuple[float, float] = (0.0, 0.0)
    # occupied bandwidth / sample rate, uniform; (0, 0): each class's own (pulse.sps, ...)
    bandwidth: tuple[float, float] = (0.0, 0.0)
    bursts: OnOffConfig = field(default_factory=OnOffConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    distortion: DistortionConfig = field(default_factory=DistortionConfig)

    HASH_NEUTRAL: ClassVar[frozenset[str]] = frozenset(
        {"center", "bandwidth", "bursts", "hardware", "distortion"}
    )

    def __post_init__(self) -> None:
        if not 16 <= self.length <= 1 << 20:
            raise ValueError(f"length must be in [16, 1048576], got {self.length}")
        _check_range("snr_db", self.snr_db, -50.0, 100.0)
        check_number("snr_step", self.snr_step, 0)
        span = self.snr_db[1] - self.snr_db[0]
        if self.snr_step > 0 and span / self.snr_step > MAX_SNR_GRID:
            raise ValueError(
                f"snr_step: {self.snr_step!r} dB makes more than {MAX_SNR_GRID:,} grid points "
                f"over {span:g} dB"
            )
        _check_range("center", self.center, -0.5, 0.5)
        if self.bandwidth != (0.0, 0.0):
            _check_range("bandwidth", self.bandwidth, high=1.0)
            if self.bandwidth[0] < MIN_BANDWIDTH:
                raise ValueError(
                    f"bandwidth: {self.bandwidth[0]} is below the minimum {MIN_BANDWIDTH} "
                    "([0, 0] switches the drawn bandwidth off)"
                )

    @property
    def banded(self) -> bool:
        """Whether each record's occupied bandwidth is drawn (``bandwidth`` is not (0, 0))."""
        return self.bandwidth != (0.0, 0.0)

    def clean(self) -> GeneratorConfig:
        """The same config with every impairment and the noise switched off.

        What the signal is (its pulse shapes, band, centre and bursts) is kept.
        """
        return dataclasses.replace(
            self,
            noise_enabled=False,
            pulse=dataclasses.replace(self.pulse, timing=False),
            fading=FadingConfig(enabled=False),
            impairments=ImpairmentsConfig.all_off(),
            hardware=HardwareConfig(),
            distortion=DistortionConfig(),
        )


def recorded(config: Any) -> Any:
    """A config as a plain dict without the ``HASH_NEUTRAL`` fields at their defaults.

    What a generated set records of its config: a set made with the broad-domain options off
    records exactly what it did before they existed.
    """
    if dataclasses.is_dataclass(config):
        neutral = getattr(type(config), "HASH_NEUTRAL", frozenset())
        default = type(config)()
        return {
            f.name: recorded(getattr(config, f.name))
            for f in dataclasses.fields(config)
            if f.name not in neutral or getattr(config, f.name) != getattr(default, f.name)
        }
    if isinstance(config, tuple | list):
        return [recorded(v) for v in config]
    return config
