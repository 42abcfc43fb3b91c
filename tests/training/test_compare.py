"""training.compare.gain_recovered: the share of full fine-tuning's gain, by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsb.training.calibration import TemperatureFit
from fedsb.training.compare import gain_recovered
from fedsb.training.finetune import FinetuneResult
from fedsb.training.loop import Evaluation


def result(frozen: float, test: float, method: str = "lora-sb") -> FinetuneResult:
    def ev(acc: float) -> Evaluation:
        return Evaluation(0.0, acc, acc, ("0",), (acc,), (1,))

    fit = TemperatureFit(1.0, 1, 0.5, 0.5, ((1.0, 0.5),))
    return FinetuneResult(Path("run"), method, 4, 10, 100, ev(frozen), ev(test), fit)


@pytest.mark.parametrize(
    ("frozen", "test", "expected"),
    [
        (0.40, 0.70, 0.75),  # (0.70 - 0.40) / (0.80 - 0.40)
        (0.40, 0.80, 1.0),
        (0.40, 0.40, 0.0),
        (0.40, 0.30, -0.25),  # worse than the frozen backbone
        (0.40, 0.90, 1.25),  # (0.90 - 0.40) / 0.40: beats full fine-tuning
        (0.50, 0.70, 0.50),  # its own frozen score: (0.70 - 0.50) / 0.40
    ],
)
def test_gain_recovered_by_hand(frozen, test, expected):
    full = result(0.40, 0.80, "full")
    assert gain_recovered(result(frozen, test), full) == pytest.approx(expected)


def test_full_recovers_all_of_its_own_gain():
    full = result(0.25, 0.65, "full")
    assert gain_recovered(full, full) == pytest.approx(1.0)


@pytest.mark.parametrize("full", [None, result(0.6, 0.6, "full"), result(0.6, 0.5, "full")])
def test_no_full_run_or_no_full_gain_has_no_share(full):
    assert gain_recovered(result(0.4, 0.7), full) is None
