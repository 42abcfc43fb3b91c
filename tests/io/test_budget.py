"""The input budget: FEDSB_INPUT_BUDGET parsing, its default, and the over-budget message."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from fedsb.errors import ConfigError, DataError
from fedsb.io.budget import check_budget, input_budget, parse_size


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("8G", 8 * 10**9),
        ("512M", 512 * 10**6),
        ("100k", 100_000),
        ("100K", 100_000),
        ("4096", 4096),
        ("1.5T", 1_500_000_000_000),
        ("8Gi", 8 * 2**30),
        ("8GB", 8 * 10**9),
        (" 2 MiB ", 2 * 2**20),
        ("123456789012345678901", 123456789012345678901),
    ],
)
def test_sizes_parse_exactly(text: str, nbytes: int, budget) -> None:
    assert parse_size(text) == nbytes
    budget(text)
    assert input_budget() == nbytes


@pytest.mark.parametrize("text", ["lots", "8X", "-1", "1e9", "G", "8 G B i", "i"])
def test_a_bad_value_is_a_config_error_naming_the_variable(text: str, budget) -> None:
    budget(text)
    pattern = r"\AFEDSB_INPUT_BUDGET: '.*' is not a size; use e\.g\. 8G, 512M, 100k"
    with pytest.raises(ConfigError, match=pattern):
        input_budget()


@pytest.mark.parametrize("text", ["0", "0.0000001"])
def test_a_zero_budget_is_a_config_error(text: str, budget) -> None:
    budget(text)
    with pytest.raises(ConfigError, match=r"\AFEDSB_INPUT_BUDGET: '.*' must be more than 0"):
        input_budget()


def test_default_is_half_the_physical_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        pytest.skip("needs /proc/meminfo as the independent reference")
    monkeypatch.delenv("FEDSB_INPUT_BUDGET", raising=False)
    total_kb = next(
        int(line.split()[1])
        for line in meminfo.read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    assert abs(input_budget() - total_kb * 1024 // 2) <= os.sysconf("SC_PAGE_SIZE")


def test_over_budget_message_names_file_claim_budget_and_the_fix(budget) -> None:
    budget("12G")
    message = (
        "x.npz: member 'iq' claims 8.0 TB (10^12 complex64 values), over the 12.0 GB input "
        "budget; set FEDSB_INPUT_BUDGET=8T to raise it"
    )
    with pytest.raises(DataError, match=r"\A" + re.escape(message) + r"\Z"):
        check_budget("x.npz", 8 * 10**12, "member 'iq'", "10^12 complex64 values")


@pytest.mark.parametrize("claim", [1, 999, 1000, 10**6 + 1, 8 * 10**12 + 1, 3 * 10**15 + 7])
def test_the_suggested_budget_admits_the_claim(claim: int, budget) -> None:
    budget("1")
    with pytest.raises(DataError) as excinfo:
        check_budget("f", claim + 1, "it")
    suggested = str(excinfo.value).split("FEDSB_INPUT_BUDGET=")[1].split()[0]
    budget(suggested)
    check_budget("f", claim + 1, "it")  # no error now


def test_a_claim_within_budget_passes(budget) -> None:
    budget("1000")
    check_budget("f", 1000, "it")
    with pytest.raises(DataError, match=r"\Af: it claims 1,001 bytes, over the 1,000-byte input"):
        check_budget("f", 1001, "it")
    with pytest.raises(DataError, match=r"\Af: it is 2\.0 kB, over the 1\.0 kB input budget"):
        check_budget("f", 2000, "it", verb="is")
