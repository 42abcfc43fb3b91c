"""Backbones pretrained once and shipped in the package, so that `make demo` need not pretrain.

A shipped backbone is the run `fedsb pretrain` wrote for a shipped pretrain preset (its
checkpoint, config and metrics; the figures left out), kept under
``presets/backbones/<config hash>/``, so that whatever reads a pretrain run (``init_source =
"proxy"``, ``fedsb evaluate --run``) reads it too. It is used only for a config of exactly that
hash, so any change to the preset (``--set data.per_class=...``) pretrains afresh, and ``fedsb
pretrain`` with the preset reproduces it (the command is in the folder's README.md).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..runs import MODEL_FILE
from .checkpoint import load_checkpoint

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "presets" / "backbones"


def shipped_backbone(config_hash: str) -> Path | None:
    """The shipped checkpoint pretrained from a config of hash ``config_hash``, or None.

    Its own metadata must name the same hash: a file renamed by hand is refused, not trusted.
    """
    path = SHIPPED_DIR / config_hash / MODEL_FILE
    if not path.is_file():
        return None
    _, meta = load_checkpoint(path, tensors=False)
    if meta.get("config_hash") != config_hash:
        raise DataError(path, f"was pretrained from config {meta.get('config_hash')!r}, "
                              f"not {config_hash!r} (its name)")  # fmt: skip
    return path


def shipped_hashes() -> list[str]:
    """Config hashes of every shipped backbone, sorted."""
    return sorted(p.parent.name for p in SHIPPED_DIR.glob(f"*/{MODEL_FILE}"))
