"""The options several commands share, defined once so their flags and help read the same."""

from __future__ import annotations

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
