"""Data at the sites: each SuperNode's own files, and a server that never opens them.

In a deployment with ``data-at-sites = true`` every SuperNode is started with its own
``data-path`` (node config; several paths separated by ","). The node reads only those files,
with the run's data settings (record length, the backbone's classes, ``drop_unknown``,
``snr_key``, caps, ...), and splits them locally by group into train, validation and test
(``data.file_sets.file_splits``, seeded by ``data.seed``): its data are its partition, so the
partition config is not used. The server builds its ``Task`` without client data
(``site_task``: the number of clients is the nodes' ``num-partitions``) and evaluates on the
nodes (``site_eval``), or on a global test set of its own (``test-data``).
``sites.json`` in the run directory records both for ``--resume`` and the report.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data.config import DataConfig
from ..data.file_sets import file_dataset
from ..data.imageset import ImageSet
from ..data.partition import ClientData
from ..errors import ConfigError, DataError
from ..reporter import Reporter
from ..runs import read_json, write_json
from .config import RunConfig
from .methods import method

SITES_FILE = "sites.json"  # a run with its data at the sites: {"test_data": [...]}


def parse_paths(value: object, key: str = "data-path") -> tuple[str, ...]:
    """The absolute paths of a ``data-path``-style value: one or several, separated by ","."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{key}: expected one or more absolute paths separated by ',', got {value!r}"
        )
    paths = []
    for part in value.split(","):
        path = os.path.expanduser(part.strip())
        if not path:
            raise ConfigError(f"{key}: an empty path in {value!r}")
        if not os.path.isabs(path):
            raise ConfigError(
                f"{key}: {part.strip()!r} is a relative path; give an absolute one (the "
                "ClientApp does not run in the directory the SuperNode was started in)"
            )
        paths.append(path)
    return tuple(paths)


def site_data_config(data: DataConfig, paths: tuple[str, ...]) -> DataConfig:
    """The run's data settings applied to ``paths``: files, splits drawn locally."""
    return replace(data, source="files", paths=paths, val_paths=(), test_paths=())


def site_data(
    cfg: RunConfig,
    paths: tuple[str, ...],
    classes: tuple[str, ...],
    cache_dir: Path | None,
    reporter: Reporter,
) -> ClientData:
    """A site's train/val/test ImageSets: its files, mapped onto ``classes``, split by group."""
    data = site_data_config(cfg.data, paths)
    splits, images = file_dataset(data, cfg.data.generator.length, classes, cache_dir, reporter)
    if not splits.train.size:
        raise DataError(paths[0], "no training records left after the split (too few groups)")
    files = len(splits.records.records.info.get("sources", []))
    return ClientData(
        f"own data ({files} file{'s' * (files != 1)})",
        images.subset(splits.train),
        images.subset(splits.val),
        images.subset(splits.test),
    )


def site_row(client: int, data: ClientData) -> dict:
    """The site's line of partition.json: sizes, class counts, SNR range (no paths)."""
    labels, snr = data.train.labels.numpy(), data.train.snr_db.numpy().astype(np.float64)
    finite = snr[np.isfinite(snr)]
    return {
        "client": client,
        "records": len(data.train),
        "val": len(data.val),
        "test": len(data.test),
        "counts": np.bincount(labels, minlength=len(data.train.class_names)).tolist(),
        "snr_db": [float(finite.min()), float(finite.max())] if finite.size else [0.0, 0.0],
        "profile": str(data.plan) + ("" if finite.size else ", no SNR"),
    }


def server_test_set(
    cfg: RunConfig,
    test_paths: tuple[str, ...],
    classes: tuple[str, ...],
    cache_dir: Path | None,
    reporter: Reporter,
) -> ImageSet:
    """The server's own global test set (``test-data``): every record of those files."""
    data = replace(site_data_config(cfg.data, test_paths), val_fraction=0.0, test_fraction=0.0)
    _, images = file_dataset(data, cfg.data.generator.length, classes, cache_dir, reporter)
    return images


def check_site_config(cfg: RunConfig) -> None:
    """Refuse settings that would make the server read training data it must not hold."""
    if method(cfg.method).pooled:
        raise ConfigError(
            f"method: {cfg.method!r} trains on the union of every client's data, which a run "
            "with its data at the sites never gathers"
        )
    if cfg.data.from_files:
        raise ConfigError(
            "data.source: 'files' makes the server read training files, but with "
            "data-at-sites = true each SuperNode reads its own data-path; leave data.source and "
            "data.paths out (a global test set for the server: test-data)"
        )


def with_sites(cfg: RunConfig, sites: int) -> RunConfig:
    """``cfg`` with ``partition.clients`` = the number of sites (checked like any config)."""
    try:
        return replace(cfg, partition=replace(cfg.partition, clients=sites))
    except ValueError as exc:
        raise ConfigError(f"{exc} (the run has {sites} sites: num-partitions)") from None


def save_sites(run_dir: Path, test_paths: tuple[str, ...]) -> None:
    """Record in the run directory that its data are at the sites (and the server's test set)."""
    write_json(Path(run_dir) / SITES_FILE, {"data_at_sites": True, "test_data": list(test_paths)})


def load_sites(run_dir: Path) -> tuple[str, ...] | None:
    """The server's test paths of a run at the sites; None when the run is not one."""
    path = Path(run_dir) / SITES_FILE
    if not path.is_file():
        return None
    content = read_json(path)
    paths = content.get("test_data") if isinstance(content, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise DataError(path, "test_data: expected a list of paths")
    return tuple(paths)
