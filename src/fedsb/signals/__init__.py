"""IQ signal generation: modulations, impairments, the batched generator and the RecordSet type."""

from .classes import ALL_CLASSES, CLASS_SETS, KNOWN_CLASSES, RML2016_CLASSES, resolve_classes
from .recordset import RecordSet

__all__ = [
    "ALL_CLASSES", "CLASS_SETS", "KNOWN_CLASSES", "RML2016_CLASSES", "RecordSet", "resolve_classes",
]  # fmt: skip
