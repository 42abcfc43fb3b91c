"""DataConfig: what to generate (classes, counts, seed, generator ranges) and how to image it."""

from __future__ import annotations

from dataclasses import dataclass, field

from .images.config import ImageConfig
from .signals.classes import resolve_classes
from .signals.config import GeneratorConfig


@dataclass(frozen=True)
class DataConfig:
    """A generated data set and its image representation (``configs/data.toml``)."""

    classes: str = "rml2016"  # a class-set name or a comma-separated list of classes
    per_class: int = 200
    seed: int = 0
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    images: ImageConfig = field(default_factory=ImageConfig)

    def __post_init__(self) -> None:
        resolve_classes(self.classes)  # fail at load time, naming the class
        if self.per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {self.per_class}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
