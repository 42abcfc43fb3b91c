"""What the report needs of each run file, checked when the file is read.

A run file that parses but holds something else (``[1, 2]`` for evaluation.json, a string
where a number belongs) would otherwise fail as a TypeError deep inside a figure; here it is a
one-line DataError naming the file and the entry. The specs list only the entries the report
reads: a key is optional unless wrapped in ``Req``, ``Opt`` also allows null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError


@dataclass(frozen=True)
class Opt:
    """Spec wrapper: the value may also be null."""

    spec: Any  # or null


@dataclass(frozen=True)
class Req:
    """Spec wrapper: the key must be present (keys are optional otherwise)."""

    spec: Any  # the key must be there


@dataclass(frozen=True)
class MapOf:
    """Spec of an object whose every value matches ``spec``, whatever its keys."""

    spec: Any  # an object whose every value is ``spec``


NUM, ANY = "a finite number", "anything"
_CAL = {"ece": Opt(NUM), "brier": Opt(NUM), "nll": Opt(NUM)}
_CLASS = {k: Req(Opt(NUM)) for k in ("accuracy", "precision", "f1", "average_precision")}
_SNR = {"snr": Req(str), "accuracy": Req(Opt(NUM)), "low_db": Req(NUM), "high_db": Req(NUM)}
_CLIENT_KEYS = ("accuracy", "ece_before", "ece_after", "brier_before", "brier_after")
#: A federated evaluation's reliability bins (``metrics.Reliability``'s fields, in order).
RELIABILITY_KEYS = ("lower", "confidence", "accuracy", "count")
_BINS = {k: Req([NUM]) for k in RELIABILITY_KEYS}
EVALUATION = {
    "test": {
        "per_snr": [_SNR],
        "per_class": MapOf({"support": Req(int), **_CLASS}),
        "confusion": [[NUM]],
        "class_names": [str],
        "temperature": NUM,
        "calibration_before": _CAL,
        "calibration_after": _CAL,
        "reliability_before": _BINS,
        "reliability_after": _BINS,
    },
    "calibration": {"nll_before": Opt(NUM), "nll_after": Opt(NUM)},
    "clients": [
        {"client": Req(int), **{k: Opt(NUM) for k in (*_CLIENT_KEYS, "nll_before", "nll_after")}}
    ],
}
PARTITION = [{"client": Req(int), "counts": Req([NUM]), "snr_db": Req([NUM]), "profile": ANY}]
_NUMBERS = ("test_acc", "test_acc_snr_ge_10", "test_loss", "cumulative_bytes", "total_bytes")
ROW = {
    "stage": Opt(str),
    "round": int,
    "accepted": list,
    "dropped": Opt(MapOf(ANY)),
    **{k: Opt(NUM) for k in _NUMBERS},
    **{
        k: Opt(NUM)
        for k in (
            "bytes_up_per_client",
            "bytes_down_per_client",
            "bytes_per_round_per_client",
            "trained_parameters",
            "update_agreement",
        )
    },
}
CONFIG = {
    "method": str,
    "rounds": int,
    "init_source": str,
    "adapter": {"rank": int},
    "partition": {
        "clients": int,
        "records_per_client": int,
        "dirichlet_alpha": NUM,
        "snr_window_db": NUM,
    },
    "client": {"local_epochs": int},
    "data": {"generator": {"length": int}},
}


def _got(value: Any) -> str:
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def problem(value: Any, spec: Any, where: str = "") -> str | None:
    """Why ``value`` does not fit ``spec`` (the first misfit, with its key path), or None."""
    head = f"{where}: " if where else ""
    if isinstance(spec, Req):
        spec = spec.spec
    if isinstance(spec, Opt):
        return None if value is None else problem(value, spec.spec, where)
    if spec is ANY:
        return None
    if spec is NUM:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok and math.isfinite(value) else f"{head}expected {NUM}, got {_got(value)}"
    if isinstance(spec, type):
        if isinstance(value, spec) and not (spec is int and isinstance(value, bool)):
            return None
        return f"{head}expected {spec.__name__}, got {_got(value)}"
    if isinstance(spec, list):
        if not isinstance(value, list):
            return f"{head}expected a list, got {_got(value)}"
        found = (problem(v, spec[0], f"{where}[{i}]") for i, v in enumerate(value))
        return next((p for p in found if p), None)
    if not isinstance(value, dict):
        return f"{head}expected an object, got {_got(value)}"
    if isinstance(spec, MapOf):
        found = (problem(v, spec.spec, _at(where, k)) for k, v in value.items())
        return next((p for p in found if p), None)
    for key, sub in spec.items():
        if key not in value:
            if isinstance(sub, Req):
                return f"{_at(where, key)}: missing"
            continue
        found = problem(value[key], sub, _at(where, key))
        if found:
            return found
    return None


def check(path: Path, value: Any, spec: Any, prefix: str = "") -> None:
    """DataError ``<path>: <prefix><entry>: expected ..., got ...`` unless ``value`` fits."""
    found = problem(value, spec)
    if found:
        raise DataError(path, prefix + found)


def check_evaluation(path: Path, evaluation: Any) -> None:
    """evaluation.json: the spec, and a K x K confusion matrix for the K class names."""
    check(path, evaluation, EVALUATION)
    test = evaluation.get("test") or {}
    for key in ("reliability_before", "reliability_after"):
        lengths = {len(v) for v in (test.get(key) or {}).values()}
        if len(lengths) > 1 or lengths == {0} or lengths == {1}:
            raise DataError(path, f"test.{key}: its lists must be of one length, at least 2")
    if "confusion" in test:
        k = len(test.get("class_names") or [])
        if not k or len(test["confusion"]) != k or any(len(r) != k for r in test["confusion"]):
            raise DataError(path, f"test.confusion must be {k} x {k}, one row per class name")


def check_partition(path: Path, partition: Any, class_names: list | None) -> None:
    """partition.json: the spec, one count per class for every client, SNR windows lo..hi."""
    check(path, partition, PARTITION)
    k = len(class_names) if class_names else len(partition[0]["counts"]) if partition else 0
    for i, client in enumerate(partition):
        if len(client["counts"]) != k or not k:
            raise DataError(path, f"[{i}].counts: expected {k} counts (one per class)")
        if len(client["snr_db"]) != 2:
            raise DataError(path, f"[{i}].snr_db: expected [low, high]")


def check_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """metrics.jsonl: each row the spec; init and round rows have their round number."""
    for i, row in enumerate(rows, 1):
        if row.get("stage") in ("init", "round") and "round" not in row:
            raise DataError(path, f"row {i}: round: missing")
        check(path, row, ROW, prefix=f"row {i}: ")
