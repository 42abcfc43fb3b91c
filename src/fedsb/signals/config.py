"""Generator configuration: the range every per-record parameter is drawn from.

Ranges are ``(low, high)`` tuples drawn uniformly (integers inclusive). An impairment is
switched off with ``enabled = false`` and narrowed by shrinking its range; ``(x, x)`` fixes it.
Frequencies are in cycles per sample (the sample rate is 1), delays in samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ..config import check_number


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


@dataclass(frozen=True)
class PulseConfig:
    """Symbol rate and pulse shape of the digital classes."""

    sps: tuple[float, float] = (2.0, 16.0)  # samples per symbol, non-integer
    rolloff: tuple[float, float] = (0.15, 0.5)  # RRC roll-off of linear modulations
    gaussian_bt: tuple[float, float] = (0.25, 0.5)  # Gaussian BT of GFSK/GMSK
    timing: bool = True  # random symbol timing / fractional delay in [0, 1) symbol

    def __post_init__(self) -> None:
        _check_range("sps", self.sps, 1.5, 64.0)
        _check_range("rolloff", self.rolloff, 0.05, 1.0)
        _check_range("gaussian_bt", self.gaussian_bt, 0.1, 2.0)


@dataclass(frozen=True)
class FadingConfig:
    """Sample-spaced tapped-delay-line multipath with an exponential power-delay profile."""

    enabled: bool = True
    probability: float = 1.0  # share of records that get multipath (the rest: a flat channel)
    model: Literal["rayleigh", "rician", "mixed"] = "mixed"  # mixed: half Rayleigh, half Rician
    taps: tuple[int, int] = (1, 4)  # number of taps, one per sample of delay
    delay_spread: tuple[float, float] = (0.3, 1.5)  # decay constant of the profile, samples
    rician_k_db: tuple[float, float] = (0.0, 10.0)  # line-of-sight over scattered power
    time_varying: bool = True
    doppler: tuple[float, float] = (0.0, 0.002)  # max Doppler shift, cycles/sample

    def __post_init__(self) -> None:
        check_number("probability", self.probability, 0, 1)
        _check_range("taps", self.taps, 1, 16)
        _check_range("delay_spread", self.delay_spread, 0.01)
        _check_range("rician_k_db", self.rician_k_db, -20.0, 40.0)
        _check_range("doppler", self.doppler, 0.0, 0.02)


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
class GeneratorConfig:
    """Everything that defines a generated set, except the classes, counts and seed."""

    length: int = 1024  # samples per record
    snr_db: tuple[float, float] = (-10.0, 20.0)
    snr_step: float = 0.0  # > 0: SNRs on a grid (RadioML style, e.g. 2 dB); 0: continuous
    noise_enabled: bool = True  # AWGN; off gives clean records (snr_db = inf)
    pulse: PulseConfig = field(default_factory=PulseConfig)
    fading: FadingConfig = field(default_factory=FadingConfig)
    impairments: ImpairmentsConfig = field(default_factory=ImpairmentsConfig)

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

    def clean(self) -> GeneratorConfig:
        """The same config with every impairment and the noise switched off."""
        return GeneratorConfig(
            length=self.length,
            snr_db=self.snr_db,
            snr_step=self.snr_step,
            noise_enabled=False,
            pulse=PulseConfig(
                sps=self.pulse.sps,
                rolloff=self.pulse.rolloff,
                gaussian_bt=self.pulse.gaussian_bt,
                timing=False,
            ),
            fading=FadingConfig(enabled=False),
            impairments=ImpairmentsConfig.all_off(),
        )
