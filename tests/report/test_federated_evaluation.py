"""evaluation.json of a federated evaluation (data at the sites): its reliability bins are
checked like every entry the report reads (a whole report of such a run: federated/test_sites)."""

from __future__ import annotations

import re

import pytest

from fedsb.errors import DataError
from fedsb.report.checks import check_evaluation

BINS = {"lower": [0.0, 0.5, 1.0], "confidence": [0.2, 0.7, 1.0], "accuracy": [0.0, 1.0, 1.0]}


def test_reliability_bins_are_accepted_when_well_formed(tmp_path):
    check_evaluation(
        tmp_path / "e.json", {"test": {"reliability_after": {**BINS, "count": [1, 2, 0]}}}
    )


@pytest.mark.parametrize(
    ("bins", "problem"),
    [
        (
            {**BINS, "count": [1, 2]},
            "test.reliability_before: its lists must be of one length, at least 2",
        ),
        (
            {k: [1.0] for k in (*BINS, "count")},
            "test.reliability_before: its lists must be of one length, at least 2",
        ),
        (
            {**BINS, "count": [1, "2", 0]},
            "test.reliability_before.count[1]: expected a finite number, got '2'",
        ),
        (BINS, "test.reliability_before.count: missing"),
    ],
)
def test_broken_reliability_bins_are_one_line_errors(tmp_path, bins, problem):
    path = tmp_path / "evaluation.json"
    with pytest.raises(DataError, match=f"^{re.escape(f'{path}: {problem}')}$"):
        check_evaluation(path, {"test": {"reliability_before": bins}})
