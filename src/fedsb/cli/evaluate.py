"""``fedsb evaluate``: a finished run's model on any labelled IQ data, written to eval.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import console, safe
from .options import Rml2018OrderOpt
from .tables import eval_table

DataOpt = Annotated[
    list[str],
    typer.Option("--data", help="Labelled recordings: a file, glob or directory (npz, SigMF, "
                 "RadioML 2016 .pkl/.dat, RadioML 2018 .h5); repeatable. Read a chunk at a time."),
]  # fmt: skip
SnrKeyOpt = Annotated[
    str, typer.Option("--snr-key", help="A SigMF field holding the SNR in dB (besides "
                      "capture_details:SNRdB), or an npz meta column.")
]  # fmt: skip
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
    rml2018_order: Rml2018OrderOpt = "corrected",
    snr_key: SnrKeyOpt = "",
) -> None:
    """Evaluate a run's model on any labelled IQ data and write eval.json.

    Accuracy overall, per SNR and per class; calibration before and after the run's temperature.
    """
    from ..evaluation.evaluate_run import evaluate_run
    from ..evaluation.file_logits import ReadOptions
    from ..io.labels import class_list, rml2018_names
    from ..report.tables import num, pct
    from ..runs import check_file_out, write_json
    from .progress import RichReporter

    target = check_file_out(out or Path(run) / "eval.json")
    only = class_list(classes, "--classes", strict=True) if classes else ()
    rml2018_names(rml2018_order)  # an unknown order fails before the model is read
    options = ReadOptions(rml2018_order=rml2018_order, snr_key=snr_key)
    result, _ = evaluate_run(run, data, drop_unknown, device, only, options, RichReporter())
    write_json(target, result)
    before, after = result["calibration_before"], result["calibration_after"]
    name = Path(data[0]).name if len(data) == 1 else f"{len(data)} data specs"
    title = f"{name}: {result['records']} records, T = {result['temperature']:.2f}"
    console.print(eval_table(result, title))
    console.print(
        f"ECE {pct(before['ece'])} % -> {pct(after['ece'])} %, Brier {num(before['brier'])} -> "
        f"{num(after['brier'])}, NLL {num(before['nll'])} -> {num(after['nll'])} "
        "(T = 1 -> the run's fitted T)"
    )
    for entry in result.get("per_source", []):
        accuracy = "-" if entry["accuracy"] is None else f"{pct(entry['accuracy'])} %"
        name = Path(entry["data"]).name  # eval.json has the whole path
        console.print(f"  {safe(name)}: {entry['records']} records, {accuracy}")
    if result["windowed"]:
        console.print(f"records of {result['record_length']} samples were cut into windows")
    console.print(f"wrote [bold]{safe(target)}[/]")
