"""The model ``fedsb classify`` and ``fedsb export`` use, and when to call a signal unknown.

:func:`.evaluate_run.load_classifier` takes any finished run (federated, finetune or
pretrain). A run without a fitted temperature uses T = 1 (its metadata has no ``temperature``).

Unknown signals: a burst is labelled ``unknown`` when its calibrated confidence (the top
probability of the mean log-probabilities) is below ``confidence``, or when its energy score
``T * logsumexp(logits / T)`` (Liu et al. 2020, "Energy-based out-of-distribution detection",
sign flipped so that higher means more familiar) is below ``energy``. Thresholds come, in
order, from the options; from labelled data of known classes (``--calibrate``); from the
run's held-out ``predictions.npz`` (federated runs); from the run's test data
(``data.test_paths`` of its config, e.g. a ``fedsb finetune --test-data`` run), when those
files are still there; else the defaults (confidence 0.5, no energy threshold, since the
energy's scale depends on the model).

Chosen on data, each keeps the fraction ``keep`` of that data's confident windows (its
``1 - keep`` quantile): those the model labels right at ``CALIBRATE_MIN_SNR`` dB or more
(windows without an SNR count). An unknown signal is one that looks less familiar than the
model's own classes do when it can tell them; a weak known burst may fall below that too,
and is then unknown rather than a guess. With fewer than ``MIN_CALIBRATION`` such windows,
all windows are used.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.files import expand_paths
from ..errors import ConfigError, DataError
from ..runs import CONFIG_FILE, PREDICTIONS_FILE
from .evaluate_run import RunModel
from .file_logits import ReadOptions, file_logits
from .scoring import load_predictions

#: Below this calibrated confidence a burst is unknown, unless thresholds are chosen on data.
DEFAULT_CONFIDENCE = 0.5
DEFAULT_KEEP = 0.99  # chosen on the GNU Radio validation recordings (docs/classify.md)
CALIBRATE_MIN_SNR = 10.0  # dB: the calibration windows (see module doc)
MIN_CALIBRATION = 20


@dataclass(frozen=True)
class Thresholds:
    """When a burst is unknown: confidence below ``confidence`` or energy below ``energy``."""

    confidence: float = DEFAULT_CONFIDENCE
    energy: float | None = None
    source: str = "defaults"


def window_scores(logits: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(log-probabilities (N, K), energy scores (N,)) of logits at ``temperature``."""
    z = torch.as_tensor(logits, dtype=torch.float64) / temperature
    energy = temperature * torch.logsumexp(z, dim=1)
    return torch.log_softmax(z, dim=1).numpy(), energy.numpy()


def thresholds_from_logits(
    logits: np.ndarray,
    temperature: float,
    keep: float,
    source: str,
    labels: np.ndarray | None = None,
    snr_db: np.ndarray | None = None,
) -> Thresholds:
    """Thresholds that each keep the fraction ``keep`` of these known windows.

    With ``labels`` (and ``snr_db``), only the confident windows count (see module doc).
    """
    if not 0 < keep <= 1:
        raise ConfigError(f"keep: must be in (0, 1], got {keep}")
    logp, energy = window_scores(logits, temperature)
    use = np.ones(len(logits), bool)
    if labels is not None:
        use = logp.argmax(1) == np.asarray(labels)
        if snr_db is not None:
            snr = np.asarray(snr_db, np.float64)
            use &= ~(snr < CALIBRATE_MIN_SNR)  # NaN (no SNR) counts
        if use.sum() >= MIN_CALIBRATION:
            source += f", {int(use.sum())} windows right at >= {CALIBRATE_MIN_SNR:g} dB"
        else:
            use[:] = True
            source += f", all {use.size} windows (too few right at >= {CALIBRATE_MIN_SNR:g} dB)"
    q = 1 - keep
    confidence = float(np.quantile(np.exp(logp[use].max(1)), q))
    return Thresholds(confidence, float(np.quantile(energy[use], q)), source)


def calibration_logits(loaded: RunModel, data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits, labels, SNRs in dB) of the model on labelled data of its classes.

    The data is read as ``fedsb evaluate`` reads it, a chunk at a time; other classes are left
    out.
    """
    data = Path(data)
    if not data.exists():
        raise DataError(data, "file not found")
    pred, _ = file_logits(loaded, expand_paths([data]), ReadOptions(drop_unknown=True))
    return pred.logits, pred.labels, pred.snr_db


def run_test_data(run: Path) -> list[Path]:
    """``data.test_paths`` of the run's config (none when unreadable or not all present)."""
    try:
        config = tomllib.loads((Path(run) / CONFIG_FILE).read_text())
        paths = [Path(p) for p in config["data"]["test_paths"]]
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        return []
    return paths if paths and all(p.exists() for p in paths) else []


def _calibrated(loaded: RunModel, paths: list[Path], keep: float, source: str) -> Thresholds:
    parts = [calibration_logits(loaded, p) for p in paths]
    logits, labels, snr = (np.concatenate([part[i] for part in parts]) for i in range(3))
    return thresholds_from_logits(logits, loaded.temperature, keep, source, labels, snr)


def choose_thresholds(
    loaded: RunModel,
    run: Path,
    calibrate: Path | None = None,
    keep: float = DEFAULT_KEEP,
    confidence: float | None = None,
    energy: float | None = None,
) -> Thresholds:
    """The thresholds in the order of the module doc (explicit values win, one by one)."""
    if not 0 < keep <= 1:
        raise ConfigError(f"keep: must be in (0, 1], got {keep}")
    if confidence is not None and not 0 <= confidence <= 1:
        raise ConfigError(f"min_confidence: must be in [0, 1], got {confidence}")
    if energy is not None and not math.isfinite(energy):
        raise ConfigError(f"min_energy: must be a finite number, got {energy}")
    chosen = Thresholds()
    tests = run_test_data(run) if calibrate is None else []
    if calibrate is not None:
        chosen = _calibrated(loaded, [Path(calibrate)], keep, f"calibrated on {calibrate}")
    elif (Path(run) / PREDICTIONS_FILE).exists():
        pred = load_predictions(Path(run) / PREDICTIONS_FILE)
        if pred.logits.shape[1] == len(loaded.class_names):
            source = f"the run's {PREDICTIONS_FILE} (held-out test split)"
            chosen = thresholds_from_logits(
                pred.logits, loaded.temperature, keep, source, pred.labels, pred.snr_db
            )
    elif tests:
        source = f"the run's test data ({', '.join(map(str, tests))})"
        chosen = _calibrated(loaded, tests, keep, source)
    if confidence is None and energy is None:
        return chosen
    return Thresholds(
        chosen.confidence if confidence is None else confidence,
        chosen.energy if energy is None else energy,
        f"{chosen.source}, with options" if chosen.source != "defaults" else "options",
    )
