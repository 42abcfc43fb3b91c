"""The options several commands share, defined once so their flags and help read the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_CACHE = Path(".cache/fedsb")
DEFAULT_RUN_CONFIG = "run"  # the preset shipped in the package (fedsb/presets/run.toml)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="A data config TOML (configs/data.toml); flags override it."
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override any config key, e.g. generator.fading.enabled=false."),
]
LengthOpt = Annotated[
    int | None, typer.Option("--length", help="Samples per record (window length for SigMF input).")
]
DataOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--data",
        help="Your recordings instead of the generator: a file, glob or directory (npz, SigMF, "
        "RadioML 2016 .pkl/.dat, RadioML 2018 .h5); repeatable.",
    ),
]
ValDataOpt = Annotated[
    list[str] | None,
    typer.Option("--val-data", help="Validation recordings (default: a split of --data)."),
]
TestDataOpt = Annotated[
    list[str] | None,
    typer.Option("--test-data", help="Test recordings (default: a split of --data)."),
]
ClassesOpt = Annotated[
    str | None,
    typer.Option(
        "--classes",
        help="Classes and their order, e.g. bpsk,qpsk,16qam or rml2016 (with --data, default: "
        "every class the files hold).",
    ),
]
DropUnknownOpt = Annotated[
    bool,
    typer.Option("--drop-unknown", help="Leave out records of other classes instead of failing."),
]
Rml2018OrderOpt = Annotated[
    str,
    typer.Option("--rml2018-order", help="One-hot column order of RadioML 2018 files: corrected "
                 "(docs/data.md) or classes-txt (the published classes.txt)."),
]  # fmt: skip
MaxRecordsOpt = Annotated[
    int | None, typer.Option("--max-records", help="Use at most this many records (whole bursts).")
]
SkipOpt = Annotated[
    bool,
    typer.Option(
        "--skip-unknown", help="Drop records whose label is not a known class instead of failing."
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")]
CacheOpt = Annotated[
    Path, typer.Option("--cache", help="Cache for generated data sets and pretrained backbones.")
]
PretrainConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="A pretraining config TOML or a preset name (default: pretrain-broad, the "
        "default backbone's).",
    ),
]
FinetuneConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="A fine-tuning config TOML or a preset name."),
]
RunConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="A run config TOML or a preset name (default: run)."),
]
RankOpt = Annotated[int | None, typer.Option(help="Adapter rank r.")]
RunArg = Annotated[
    Path,
    typer.Argument(help="A run directory, or a directory of runs (methods, sweep cells)."),
]


def method_list(text: str | None, default: str) -> list[str]:
    """``--method a,b`` -> ``["a", "b"]``; no option: the config's one method."""
    return [m.strip() for m in text.split(",")] if text else [default]


def data_overrides(
    data: list[str] | None,
    val_data: list[str] | None = None,
    test_data: list[str] | None = None,
    classes: str | None = None,
    drop_unknown: bool = False,
    max_records: int | None = None,
    length: int | None = None,
) -> list[str]:
    """The ``--set`` items of the data options; paths become absolute (the run keeps them)."""

    def paths(specs: list[str]) -> str:
        return json.dumps([str(Path(s).expanduser().absolute()) for s in specs])

    sets = []
    if data:
        sets += ["data.source='files'", f"data.paths={paths(data)}"]
        sets += [] if classes else ["data.classes='found'"]
    for key, specs in (("val_paths", val_data), ("test_paths", test_data)):
        if specs:
            sets.append(f"data.{key}={paths(specs)}")
    if classes:
        sets.append(f"data.classes={json.dumps(classes)}")
    if drop_unknown:
        sets.append("data.drop_unknown=true")
    if max_records is not None:
        sets.append(f"data.max_records={max_records}")
    if length is not None:
        sets.append(f"data.generator.length={length}")
    return sets
