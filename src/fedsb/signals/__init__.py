"""IQ signal generation: modulations, impairments, the batched generator and the RecordSet type."""

from .classes import ALL_CLASSES, CLASS_SETS, KNOWN_CLASSES, RML2016_CLASSES, resolve_classes
from .config import FadingConfig, GeneratorConfig, ImpairmentsConfig, PulseConfig
from .generator import META_KEYS, generate
from .recordset import RecordSet

__all__ = [
    "ALL_CLASSES",
    "CLASS_SETS",
    "KNOWN_CLASSES",
    "META_KEYS",
    "RML2016_CLASSES",
    "FadingConfig",
    "GeneratorConfig",
    "ImpairmentsConfig",
    "PulseConfig",
    "RecordSet",
    "generate",
    "resolve_classes",
]
