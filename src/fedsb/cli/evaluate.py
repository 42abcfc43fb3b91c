"""``fedsb evaluate``: a finished run's model on any labelled IQ data, written to eval.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import console, safe
from .tables import eval_table

DataOpt = Annotated[
    Path,
    typer.Option("--data", help="npz cache, SigMF file/archive/directory, or RadioML file."),
]
EvalOutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="JSON to write (default RUN/eval.json).")
]
DropOpt = Annotated[
    bool, typer.Option("--drop-unknown", help="Leave out classes the model does not know.")
]
ClassesOpt = Annotated[
    str,
    typer.Option("--classes", help="Only these of the model's classes (those the data can hold), "
                 "e.g. rml2016 or bpsk,qpsk: the others' logits are left out."),
]  # fmt: skip
DeviceOpt = Annotated[
    str,
    typer.Option("--device", help="Where the model runs: auto (the GPU when there is one), cpu "
                 "or cuda."),
]  # fmt: skip


def evaluate_cmd(
    run: Annotated[Path, typer.Option("--run", help="A finished run directory.")],
    data: DataOpt,
    out: EvalOutOpt = None,
    drop_unknown: DropOpt = False,
    device: DeviceOpt = "auto",
    classes: ClassesOpt = "",
) -> None:
    """Evaluate a run's model on any labelled IQ data and write eval.json.

    Accuracy overall, per SNR and per class; calibration before and after the run's temperature.
    """
    from ..evaluation.evaluate_run import evaluate_run
    from ..io.labels import class_list
    from ..report.tables import num, pct
    from ..runs import check_file_out, write_json

    target = check_file_out(out or Path(run) / "eval.json")
    only = class_list(classes, "--classes", strict=True) if classes else ()
    result, _ = evaluate_run(run, data, drop_unknown, device, only)
    write_json(target, result)
    before, after = result["calibration_before"], result["calibration_after"]
    title = f"{data.name}: {result['records']} records, T = {result['temperature']:.2f}"
    console.print(eval_table(result, title))
    console.print(
        f"ECE {pct(before['ece'])} % -> {pct(after['ece'])} %, Brier {num(before['brier'])} -> "
        f"{num(after['brier'])}, NLL {num(before['nll'])} -> {num(after['nll'])} "
        "(T = 1 -> the run's fitted T)"
    )
    if result["windowed"]:
        console.print(f"records of {result['record_length']} samples were cut into windows")
    console.print(f"wrote [bold]{safe(target)}[/]")
