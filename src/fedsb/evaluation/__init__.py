"""Metrics, calibration and evaluation of trained runs (plain numpy; no engine inside)."""

from ..training.calibration import (
    TemperatureFit,
    TemperatureStats,
    fit_temperature,
    temperature_stats,
)
from .metrics import (
    accuracy,
    average_precision,
    brier,
    calibration_summary,
    classwise_ece,
    confusion_matrix,
    ece,
    mce,
    nll,
    pr_curve,
    precision_recall,
    reliability,
    softmax,
)

__all__ = [
    "TemperatureFit",
    "TemperatureStats",
    "accuracy",
    "average_precision",
    "brier",
    "calibration_summary",
    "classwise_ece",
    "confusion_matrix",
    "ece",
    "fit_temperature",
    "mce",
    "nll",
    "pr_curve",
    "precision_recall",
    "reliability",
    "softmax",
    "temperature_stats",
]
