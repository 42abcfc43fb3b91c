"""Data configs: what to generate and how to image it, and how clients' data differ.

DataConfig: what to generate (classes, counts, seed, generator ranges) and how to image it;
PartitionConfig: how the data differ between federated clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ..config import check_number
from ..images.config import ImageConfig
from ..io.labels import class_list
from ..signals.classes import resolve_classes
from ..signals.config import GeneratorConfig

CHANNEL_PROFILES = ("multipath", "cfo", "iq-imbalance", "flat", "phase-noise")


@dataclass(frozen=True)
class DataConfig:
    """Where the records come from and how they are imaged (``configs/data.toml``).

    ``source = "generator"`` draws them (``per_class``, ``seed``, ``generator``);
    ``source = "files"`` reads the user's recordings (``paths``: files, globs or directories of
    npz, SigMF, RadioML 2016 or 2018), cut to ``generator.length`` samples. Without
    ``val_paths``/``test_paths`` a seeded split by group (burst, annotation or recording, never
    by window) stratified by class and SNR holds out ``val_fraction`` and ``test_fraction``.
    """

    # a class-set name or a comma-separated list of classes; files: also "found" (all they hold)
    classes: str = "rml2016"
    per_class: int = 200
    seed: int = 0  # the generator's draws; for files, the split and the caps
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    images: ImageConfig = field(default_factory=ImageConfig)
    source: Literal["generator", "files"] = "generator"
    paths: tuple[str, ...] = ()  # the training recordings (and val/test when not given)
    val_paths: tuple[str, ...] = ()
    test_paths: tuple[str, ...] = ()
    drop_unknown: bool = False  # leave out records of classes not in ``classes``
    rml2018_order: Literal["corrected", "classes-txt"] = "corrected"  # one-hot column order
    snr_key: str = ""  # a SigMF annotation key holding the SNR in dB, besides SNRdB
    max_records: int = 0  # 0 = all; a seeded choice of whole groups
    max_per_class: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.2

    #: Left out of config hashes at their defaults (``config.config_hash``): the file-source
    #: settings, so a generated set keeps the cache key it had before they existed.
    HASH_NEUTRAL: ClassVar[frozenset[str]] = frozenset(
        {
            "source",
            "paths",
            "val_paths",
            "test_paths",
            "drop_unknown",
            "rml2018_order",
            "snr_key",
            "max_records",
            "max_per_class",
            "val_fraction",
            "test_fraction",
        }
    )

    def __post_init__(self) -> None:
        if self.classes == "found":  # every class the files hold
            if self.source != "files":
                raise ValueError(
                    "classes: 'found' (the classes the files hold) needs source='files'"
                )
        elif self.source == "files":  # files-only names (64apsk) work too
            class_list(self.classes)  # fail at load time, naming the class
        else:
            resolve_classes(self.classes)
        if self.per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {self.per_class}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        for key in ("max_records", "max_per_class"):
            check_number(key, getattr(self, key), 0)
        check_number("val_fraction", self.val_fraction, 0, 1, open_high=True)
        check_number("test_fraction", self.test_fraction, 0, 1, open_high=True)
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be < 1 (training keeps the rest)")
        if self.source == "files" and not self.paths:
            raise ValueError("paths: source = 'files' needs at least one file, glob or directory")
        if self.source == "generator" and (self.paths or self.val_paths or self.test_paths):
            raise ValueError("paths: files are given but source = 'generator' (set source='files')")

    @property
    def from_files(self) -> bool:
        """Whether the records are the user's files rather than generated."""
        return self.source == "files"


@dataclass(frozen=True)
class PartitionConfig:
    """How client data differ. The skews combine; all off gives IID clients."""

    clients: int = 10
    records_per_client: int = 1000  # training records per client (mean when quantity-skewed)
    val_per_class: int = 10  # per client, class-balanced, from the client's own conditions
    test_per_class: int = 30  # per client; the global test set is the union of these
    dirichlet_alpha: float = 0.5  # label skew: class shares ~ Dirichlet(alpha); 0 = balanced
    quantity_sigma: float = 0.0  # quantity skew: sizes ~ lognormal(0, sigma); 0 = equal
    snr_skew: bool = True  # each client draws SNR from its own window of the SNR range
    snr_window_db: float = 15.0  # width of each client's SNR window
    channel_skew: bool = True  # each client gets one impairment profile (CHANNEL_PROFILES)
    min_records: int = 32  # no client gets fewer training records than this
    seed: int = 0  # partition draws (shares, sizes, windows, profiles)
    # file data only: "" = the skews above; "file", "directory" or a SigMF key (core:hw, ...) =
    # one client per distinct value, the data's own heterogeneity
    by: str = ""

    HASH_NEUTRAL: ClassVar[frozenset[str]] = frozenset({"by"})

    def __post_init__(self) -> None:
        for key in ("clients", "records_per_client", "val_per_class", "test_per_class"):
            check_number(key, getattr(self, key), 1)
        check_number("min_records", self.min_records, 1)
        check_number("dirichlet_alpha", self.dirichlet_alpha, 0)
        check_number("quantity_sigma", self.quantity_sigma, 0)
        # inf: one window as wide as the whole SNR range (the window is clipped to the range)
        check_number("snr_window_db", self.snr_window_db, 0, open_low=True, allow_inf=True)
        check_number("seed", self.seed, 0)
