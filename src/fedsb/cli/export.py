"""``fedsb export``: a run's merged model as safetensors and TorchScript, with what feeds it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import console, safe


def export_cmd(
    run: Annotated[Path, typer.Option("--run", help="A finished run directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the model in.")],
) -> None:
    """Export a run's model (adapters merged) as safetensors and TorchScript, plus model.json.

    model.json: class names, image config, record length, temperature. No ONNX (see docs).
    """
    from ..evaluation.classify_run import export_run

    for kind, path in export_run(run, out).items():
        console.print(f"{kind:12} {safe(path)}")
