"""``fedsb classify``: label the bursts of SigMF recordings with a finished run's model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import console, safe
from .evaluate import DeviceOpt

RecordingsArg = Annotated[
    list[Path],
    typer.Argument(help="SigMF recordings (.sigmf-meta, .sigmf-data, .sigmf) or folders of them."),
]
DataModeOpt = Annotated[
    str,
    typer.Option("--data", help="The new recording's samples: link, copy, or auto (link; copy "
                 "for a .sigmf archive)."),
]  # fmt: skip
CalibrateOpt = Annotated[
    Path | None,
    typer.Option("--calibrate", help="Labelled data of the model's classes: choose the unknown "
                 "thresholds on it."),
]  # fmt: skip
KeepOpt = Annotated[
    float,
    typer.Option("--keep", help="Share of the confident calibration windows (right, >= 10 dB) "
                 "the thresholds keep."),
]  # fmt: skip
OverlapOpt = Annotated[
    float, typer.Option("--overlap", help="Share of a window the next one overlaps (0: none).")
]
ConfidenceOpt = Annotated[
    float | None, typer.Option("--min-confidence", help="Unknown below this probability.")
]
EnergyOpt = Annotated[
    float | None, typer.Option("--min-energy", help="Unknown below this T*logsumexp(logits/T).")
]


def classify_cmd(
    recordings: RecordingsArg,
    run: Annotated[Path, typer.Option("--run", help="A finished run directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the results in.")],
    data: DataModeOpt = "auto",
    calibrate: CalibrateOpt = None,
    keep: KeepOpt = 0.99,
    overlap: OverlapOpt = 0.5,
    min_confidence: ConfidenceOpt = None,
    min_energy: EnergyOpt = None,
    batch: Annotated[int, typer.Option("--batch", help="Windows per model call.")] = 256,
    device: DeviceOpt = "auto",
) -> None:
    """Label the bursts of SigMF recordings: a new SigMF recording, CSV and JSON per input.

    Annotated recordings: each annotation; others: the bursts detection finds (energy over
    the whole band and in sub-bands).
    """
    from ..evaluation.classify import ClassifyConfig
    from ..evaluation.classify_run import ClassifyOptions, classify_files
    from .progress import RichReporter

    config = ClassifyConfig(batch=batch, overlap=overlap)
    options = ClassifyOptions(data, calibrate, keep, min_confidence, min_energy, config, device)
    for s in classify_files(run, recordings, out, options, RichReporter()):
        labels = ", ".join(f"{k} {n}" for k, n in sorted(s["labels"].items()))
        source = s["bursts_from"]
        line = f"{safe(s['recording'])}: {s['bursts']} bursts ({source}): {safe(labels)}"
        console.print(line, soft_wrap=True)
    console.print(f"wrote [bold]{safe(out)}[/]")
