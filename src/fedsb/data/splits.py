"""The train/val/test splits of a data set, each from its own seed (cached by config hash)."""

from __future__ import annotations

from pathlib import Path

from ..reporter import Reporter
from ..signals import resolve_classes
from .config import DataConfig
from .imageset import ImageSet, load_or_build, split_config


def build_splits(
    data: DataConfig,
    val_per_class: int,
    test_per_class: int,
    cache_dir: Path | None,
    reporter: Reporter,
    classes: tuple[str, ...] | None = None,
) -> dict[str, ImageSet]:
    """Train/val/test ImageSets: generated, each from its own seed, or the user's files.

    Files are cut to ``data.generator.length`` and mapped onto ``classes`` (a backbone's; None:
    ``data.classes``), then split by group with ``data.val_fraction``/``test_fraction``.
    """
    if data.from_files:
        from .file_sets import file_classes, file_image_splits

        wanted = classes if classes is not None else file_classes(data)
        return file_image_splits(data, data.generator.length, wanted, cache_dir, reporter)
    sizes = {"train": data.per_class, "val": val_per_class, "test": test_per_class}
    splits = {}
    for name, per_class in sizes.items():
        cfg = split_config(data, name, per_class)
        total = per_class * len(resolve_classes(data.classes))
        with reporter.task(f"{name} split", total) as advance:
            splits[name] = load_or_build(cfg, cache_dir, progress=advance)
    return splits
