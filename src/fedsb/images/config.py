"""Image configuration: which channels to stack and the few knobs they have.

``ImageConfig`` is a frozen dataclass of scalars, tuples and the nested ``FrontendConfig`` so
``fedsb.config`` can load it from TOML and hash it for caches. ``channels`` may be a preset
name (``"rich"``), a comma-separated list (handy for ``images.channels=spectrogram,amplitude``
overrides) or a tuple; it is always stored resolved, so equal channel lists give equal configs
and equal cache keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from ..signals.frontend import FrontendConfig
from .channels import CHANNELS

#: Named channel stacks. A later benchmark decides which classifies best.
STACKS: dict[str, tuple[str, ...]] = {
    "spectrogram": ("spectrogram",),
    "constellation": ("constellation",),
    "spec_const": ("spectrogram", "constellation"),
    "cyclic": ("spectrum_x1", "spectrum_x2", "spectrum_x4", "spectrum_x8"),
    "irt": ("amplitude", "phase", "inst_freq"),
    "rich": (
        "spectrogram",
        "constellation_comp",
        "constellation_diff",
        "spectrum_x2",
        "spectrum_x4",
        "spectrum_x8",
        "amplitude",
        "inst_freq",
    ),
}

#: The stack ``ImageConfig()`` uses.
DEFAULT_STACK = "rich"

MIN_SIZE = 8
MAX_SIZE = 256  # the constellation histograms hold chunk * (size + 2)^2 float32 counts
_COMP_POWERS = (2, 4, 8)
_POSITIVE = ("spec_dynamic_range_db", "const_extent", "spectrum_dynamic_range_db", "amp_clip")


def resolve_channels(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Channel names from a preset name, a comma-separated string or a sequence.

    Items of a sequence may themselves be preset names (expanded in place). Raises ValueError
    naming an unknown item, or a channel that appears twice.
    """
    if isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = [str(s).strip() for s in spec]
    if not items:
        raise ValueError("channels: empty channel list")
    names: list[str] = []
    for item in items:
        key = item.lower()
        if key in CHANNELS:
            names.append(key)
        elif key in STACKS:
            names.extend(STACKS[key])
        else:
            raise ValueError(
                f"channels: unknown channel {item!r}; channels: {', '.join(CHANNELS)}; "
                f"presets: {', '.join(STACKS)}"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"channels: {repeated[0]!r} is listed twice")
    return tuple(names)


@dataclass(frozen=True)
class ImageConfig:
    """How IQ records become (C, size, size) images; see ``fedsb.images.channels``."""

    channels: tuple[str, ...] | str = STACKS[DEFAULT_STACK]  # names or a preset; stored resolved
    size: int = 32  # image height = width, pixels
    spec_dynamic_range_db: float = 50.0  # spectrogram: levels below peak - this are black
    const_extent: float = 2.0  # constellations span [-extent, extent]^2 in RMS units
    const_log: bool = True  # constellations: log(1 + count) before scaling to the max
    diff_lag: int = 1  # constellation_diff: x[k] * conj(x[k - lag])
    comp_powers: tuple[int, ...] = _COMP_POWERS  # constellation_comp: x^p lines searched
    spectrum_dynamic_range_db: float = 40.0  # spectrum_xP: curve floor below the peak
    spectrum_soft: bool = True  # spectrum_xP: fractional top pixel (smoother curves)
    amp_clip: float = 3.0  # amplitude: |x| / rms at which the image saturates
    #: The signal front-end applied to the records first (off: the records as they are).
    frontend: FrontendConfig = field(default_factory=FrontendConfig)

    #: Off (the default) is what images were before the front-end: no new cache keys.
    HASH_NEUTRAL: ClassVar[frozenset[str]] = frozenset({"frontend"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", resolve_channels(self.channels))
        if not isinstance(self.frontend, FrontendConfig):
            raise ValueError(f"frontend must be a FrontendConfig, got {self.frontend!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise ValueError(f"size must be an integer, got {self.size!r}")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ValueError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}], got {self.size}")
        for name in _POSITIVE:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if isinstance(self.diff_lag, bool) or not isinstance(self.diff_lag, int):
            raise ValueError(f"diff_lag must be an integer, got {self.diff_lag!r}")
        if self.diff_lag < 1:
            raise ValueError(f"diff_lag must be >= 1, got {self.diff_lag}")
        powers = tuple(self.comp_powers)
        bad = [p for p in powers if p not in _COMP_POWERS]
        if not powers or bad or len(set(powers)) != len(powers):
            raise ValueError(
                f"comp_powers must be distinct values from {_COMP_POWERS}, got {powers!r}"
            )
        object.__setattr__(self, "comp_powers", tuple(int(p) for p in powers))

    @property
    def n_channels(self) -> int:
        """C, the number of stacked channels."""
        return len(self.channels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return (len(self.channels), self.size, self.size)
