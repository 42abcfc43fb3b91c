"""``fedsb classify --run RUN RECORDING... --out DIR``: every step, checked before any is written.

The run's model and the thresholds come first, then every recording is opened and checked,
then the outputs are checked (no clash with an input, see :mod:`fedsb.io.sigmf_labels`): a
bad input is a one-line error before anything is written. Then each recording is classified
(:mod:`.classify`) and written. ``export_run`` is the library side of ``fedsb export``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import to_dict
from ..errors import ConfigError, DataError
from ..io.sigmf_archive import find_recordings
from ..io.sigmf_labels import check_outputs, write_labelled
from ..io.sigmf_stream import Recording, open_recording
from ..models.export import export_model
from ..reporter import Reporter, SilentReporter
from ..runs import holds_run, make_dir
from .classify import ClassifyConfig, classify_recording, passes
from .classify_model import DEFAULT_KEEP, choose_thresholds
from .evaluate_run import RunModel, load_classifier

FRONT_END = (
    "energy detection over the estimated noise floor, in the whole band and in sub-bands, the "
    "edges of weak bursts fitted; the model's images.frontend (when on) applied burst by burst"
)


@dataclass(frozen=True)
class ClassifyOptions:
    """What ``fedsb classify`` takes besides the run, the recordings and the output folder."""

    data: str = "auto"  # link, copy, or auto (link; copy for a .sigmf archive)
    calibrate: Path | None = None  # labelled data of known classes, for the thresholds
    keep: float = DEFAULT_KEEP
    min_confidence: float | None = None
    min_energy: float | None = None
    config: ClassifyConfig = field(default_factory=ClassifyConfig)
    device: str = "cpu"  # auto | cpu | cuda: where the model runs (results are the CPU's types)


def expand(paths: list[Path]) -> list[Path]:
    """Recordings: files as given, directories searched for SigMF recordings."""
    out = []
    for path in map(Path, paths):
        if path.is_dir():
            found = find_recordings(path)
            if not found:
                raise DataError(
                    path, "no SigMF recordings (.sigmf-meta or .sigmf) in this directory"
                )
            out += found
        else:
            out.append(path)
    if not out:
        raise ConfigError("recordings: give at least one SigMF recording")
    return out


def _info(run: Path, loaded: RunModel, meta: dict, thresholds, config: ClassifyConfig) -> dict:
    return {
        "run": str(Path(run).resolve()),
        "class_names": list(loaded.class_names),
        "record_length": loaded.length,
        "temperature": loaded.temperature,
        "temperature_fitted": "temperature" in meta,
        "thresholds": asdict(thresholds),
        "front_end": FRONT_END,
        "detector": {k: v for k, v in asdict(config.detect).items()},
        "overlap": config.overlap,
        "images_frontend": asdict(loaded.images.frontend),
    }


def _opened(paths: list[Path], length: int) -> list[Recording]:
    recordings = [open_recording(p) for p in expand(paths)]
    for rec in recordings:
        if rec.total < length:
            raise DataError(rec.path, f"holds {rec.total} samples, fewer than the model's {length}")
    return recordings


def classify_files(
    run: Path,
    paths: list[Path],
    out: Path,
    options: ClassifyOptions = ClassifyOptions(),
    reporter: Reporter | None = None,
) -> list[dict[str, Any]]:
    """Classify every recording into ``out``; one summary per recording (files, counts)."""
    loaded, meta = load_classifier(run, options.device)
    thresholds = choose_thresholds(
        loaded, run, options.calibrate, options.keep, options.min_confidence, options.min_energy
    )
    recordings = _opened(paths, loaded.length)
    mode = check_outputs(recordings, Path(out), options.data)
    out = make_dir(out)
    info = _info(run, loaded, meta, thresholds, options.config)
    summaries = []
    total = sum(passes(r) * r.total for r in recordings)
    reporter = reporter or SilentReporter()
    with reporter.task("classifying (samples)", total) as advance:
        for rec in recordings:
            items, floor = classify_recording(rec, loaded, thresholds, options.config, advance)
            extra = {"noise_floor": floor if math.isfinite(floor) else None}
            extra["bursts_from"] = "annotations" if rec.annotations else "detection"
            files = write_labelled(rec, items, out, mode, {**info, **extra})
            labels: dict[str, int] = {}
            for item in items:
                labels[item.label] = labels.get(item.label, 0) + 1
            summaries.append({"recording": str(rec.path), "bursts": len(items), "labels": labels,
                              "samples": rec.total, "files": {k: str(v) for k, v in files.items()},
                              **extra})  # fmt: skip
    return summaries


def export_run(run: Path, out: Path) -> dict[str, Path]:
    """The run's merged model, TorchScript and metadata in ``out`` (:mod:`fedsb.models.export`)."""
    loaded, meta = load_classifier(run)
    out = Path(out)
    if out.exists() and (holds_run(out) or out.resolve() == Path(run).resolve()):
        raise ConfigError(f"out: {out} holds a run; its model.safetensors would be replaced")
    out = make_dir(out)
    info = {
        **{k: meta[k] for k in ("model", "in_channels", "image_size")},
        "class_names": list(loaded.class_names),
        "images": to_dict(loaded.images),
        "length": loaded.length,
        "temperature": loaded.temperature,
        "temperature_fitted": "temperature" in meta,
        "run": str(Path(run).resolve()),
        "front_end": FRONT_END,
    }
    return export_model(loaded.model, info, out)
