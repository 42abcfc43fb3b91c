"""``fedsb classify``: label the bursts of SigMF recordings with a finished run's model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import console, safe

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
    float, typer.Option("--keep", help="Share of the calibration windows the thresholds keep.")
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
    keep: KeepOpt = 0.95,
    min_confidence: ConfidenceOpt = None,
    min_energy: EnergyOpt = None,
    batch: Annotated[int, typer.Option("--batch", help="Windows per model call.")] = 256,
) -> None:
    """Label the bursts of SigMF recordings: a new SigMF recording, CSV and JSON per input.

    Annotated recordings: each annotation; others: the bursts energy detection finds.
    """
    from ..evaluation.classify import ClassifyConfig
    from ..evaluation.classify_run import ClassifyOptions, classify_files
    from .progress import RichReporter

    config = ClassifyConfig(batch=batch)
    options = ClassifyOptions(data, calibrate, keep, min_confidence, min_energy, config)
    for s in classify_files(run, recordings, out, options, RichReporter()):
        labels = ", ".join(f"{k} {n}" for k, n in sorted(s["labels"].items()))
        source = s["bursts_from"]
        line = f"{safe(s['recording'])}: {s['bursts']} bursts ({source}): {safe(labels)}"
        console.print(line, soft_wrap=True)
    console.print(f"wrote [bold]{safe(out)}[/]")
