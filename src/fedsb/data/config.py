"""Data configs: what to generate and how to image it, and how clients' data differ.

DataConfig: what to generate (classes, counts, seed, generator ranges) and how to image it;
PartitionConfig: how the data differ between federated clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import check_number
from ..images.config import ImageConfig
from ..signals.classes import resolve_classes
from ..signals.config import GeneratorConfig

CHANNEL_PROFILES = ("multipath", "cfo", "iq-imbalance", "flat", "phase-noise")


@dataclass(frozen=True)
class DataConfig:
    """A generated data set and its image representation (``configs/data.toml``)."""

    classes: str = "rml2016"  # a class-set name or a comma-separated list of classes
    per_class: int = 200
    seed: int = 0
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    images: ImageConfig = field(default_factory=ImageConfig)

    def __post_init__(self) -> None:
        resolve_classes(self.classes)  # fail at load time, naming the class
        if self.per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {self.per_class}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


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

    def __post_init__(self) -> None:
        for key in ("clients", "records_per_client", "val_per_class", "test_per_class"):
            check_number(key, getattr(self, key), 1)
        check_number("min_records", self.min_records, 1)
        check_number("dirichlet_alpha", self.dirichlet_alpha, 0)
        check_number("quantity_sigma", self.quantity_sigma, 0)
        # inf: one window as wide as the whole SNR range (the window is clipped to the range)
        check_number("snr_window_db", self.snr_window_db, 0, open_low=True, allow_inf=True)
        check_number("seed", self.seed, 0)
