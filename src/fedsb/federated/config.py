"""``fedsb run`` configuration: partition, clients, server, faults, DP and engine."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..data_config import DataConfig
from ..models.config import AdapterConfig
from ..training.config import TARGET_GENERATOR

#: Federated method -> the adapter each client trains. ``centralized`` is the reference: LoRA-SB
#: trained on the union of every client's training data (same rounds x local epochs, no server).
ADAPTER_OF = {
    "fedsb": "lora-sb",
    "fedit": "lora",
    "ffa": "ffa-lora",
    "fedavg": "full",
    "head-only": "head-only",
    "centralized": "lora-sb",
}
FED_METHODS = tuple(ADAPTER_OF)
AGGREGATIONS = ("mean", "median", "trimmed-mean")
SERVER_OPTIMIZERS = ("avg", "fedavgm", "fedadam")
CHANNEL_PROFILES = ("multipath", "cfo", "iq-imbalance", "flat", "phase-noise")
ATTACKS = ("none", "scale", "nan", "sign-flip", "noise", "raise", "sleep", "wrong-keys")


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
        if self.clients < 1 or self.records_per_client < 1:
            raise ValueError("clients and records_per_client must be >= 1")
        if self.dirichlet_alpha < 0 or self.quantity_sigma < 0:
            raise ValueError("dirichlet_alpha and quantity_sigma must be >= 0")
        if self.snr_window_db <= 0:
            raise ValueError("snr_window_db must be > 0")
        if self.val_per_class < 1 or self.test_per_class < 1 or self.min_records < 1:
            raise ValueError("val_per_class, test_per_class and min_records must be >= 1")


@dataclass(frozen=True)
class ClientConfig:
    """Local training on each client (AdamW, fresh every round, cosine decay over rounds)."""

    local_epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-2  # fedsb's R and every method's head (3e-2 drifts apart in round 1)
    lora_lr: float = 3e-3  # fedit's A and B, ffa's B: LoRA factors diverge at lr (3e-2)
    full_lr: float = 3e-3  # fedavg trains every weight: a ~10x smaller step (as finetune)
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    logit_adjust: float = 0.0  # tau > 0: train on logits + tau*log(local class prior) (label skew)
    prox_mu: float = 0.0  # mu > 0: FedProx term mu/2 * ||w - w_global||^2 on trained tensors
    optimizer: str = "adamw"  # adamw | sgd (momentum 0.9; the lr keys then are SGD steps)

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer {self.optimizer!r} is not adamw or sgd")
        if self.logit_adjust < 0 or self.prox_mu < 0:
            raise ValueError("logit_adjust and prox_mu must be >= 0")
        if self.local_epochs < 1 or self.batch_size < 1:
            raise ValueError("local_epochs and batch_size must be >= 1")
        if self.lr <= 0 or self.full_lr <= 0 or self.lora_lr <= 0:
            raise ValueError("lr, lora_lr and full_lr must be > 0")


@dataclass(frozen=True)
class ServerConfig:
    """Client sampling, update checks and aggregation."""

    fraction: float = 1.0  # share of clients sampled per round
    min_clients: int = 2  # fewer valid updates than this fails the round
    aggregation: str = "mean"  # mean | median | trimmed-mean (coordinate-wise)
    trim: float = 0.2  # trimmed-mean: share cut at each end
    norm_bound: float = 0.0  # > 0: drop updates whose L2 norm of (state - global) exceeds it
    timeout: float = 0.0  # > 0: drop clients slower than this many seconds
    optimizer: str = "avg"  # avg: global = aggregate; fedavgm: momentum; fedadam: Adam (on the
    # aggregated delta)
    lr: float = 1e-2  # server learning rate of fedavgm (try 1.0) and fedadam
    beta1: float = 0.9  # fedavgm momentum; fedadam first moment
    beta2: float = 0.99
    tau: float = 1e-3  # fedadam adaptivity (epsilon)

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.min_clients < 1:
            raise ValueError("min_clients must be >= 1")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation {self.aggregation!r} is not one of {AGGREGATIONS}")
        if not 0 <= self.trim < 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {self.trim}")
        if self.optimizer not in SERVER_OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r} is not one of {SERVER_OPTIMIZERS}")
        if self.norm_bound < 0 or self.timeout < 0 or self.lr <= 0:
            raise ValueError("norm_bound and timeout must be >= 0, lr > 0")


@dataclass(frozen=True)
class DPConfig:
    """Sample-level DP-SGD (Opacus) on each client's trained tensors; epsilon = 0 turns it off."""

    epsilon: float = 0.0  # target epsilon after all rounds, per client
    delta: float = 1e-5
    clip: float = 1.0  # per-sample gradient norm bound
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        if self.epsilon < 0 or not 0 < self.delta < 1 or self.clip <= 0:
            raise ValueError("dp: epsilon >= 0, 0 < delta < 1 and clip > 0 are required")
        if self.accountant not in ("rdp", "prv", "gdp"):
            raise ValueError(f"dp.accountant {self.accountant!r} is not rdp, prv or gdp")

    @property
    def enabled(self) -> bool:
        return self.epsilon > 0


@dataclass(frozen=True)
class AttackConfig:
    """Simulated misbehaving clients, for robustness studies (none by default)."""

    kind: str = "none"  # see ATTACKS
    clients: tuple[int, ...] = ()  # client ids that misbehave every round they are sampled
    factor: float = 100.0  # scale: multiply the update; noise: its standard deviation
    sleep: float = 0.0  # sleep: seconds the client stalls before answering

    def __post_init__(self) -> None:
        if self.kind not in ATTACKS:
            raise ValueError(f"attack.kind {self.kind!r} is not one of {ATTACKS}")


@dataclass(frozen=True)
class RunConfig:
    """One federated run: the target data, the partition, the method and its budget."""

    method: str = "fedsb"  # fedsb | fedit | ffa | fedavg | head-only | centralized
    rounds: int = 20
    seed: int = 0  # client sampling, batch order, local training
    # a pretrain config (cached by hash), a pretrain run directory or a .safetensors file
    pretrained: str = "configs/pretrain.toml"
    # LoRA-SB's B and A: "proxy" = the server's own data (a slice of the pretraining set, drawn
    # with its generator), "clients" = federated round 0 (each client sends its summed
    # gradients once; counted in the communication totals)
    init_source: str = "clients"
    engine: str = "local"  # local | flower (Flower simulation engine)
    workers: int = 1  # local engine: client processes (1 = sequential in this process)
    threads: int = 0  # torch threads per process (0 = one per core / worker)
    data: DataConfig = field(
        default_factory=lambda: DataConfig(per_class=1, seed=1, generator=TARGET_GENERATOR)
    )
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)  # adapter.method follows method
    client: ClientConfig = field(default_factory=ClientConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    dp: DPConfig = field(default_factory=DPConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)

    def __post_init__(self) -> None:
        if self.method not in FED_METHODS:
            raise ValueError(f"method {self.method!r} is not one of {', '.join(FED_METHODS)}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.init_source not in ("proxy", "clients"):
            raise ValueError(f"init_source {self.init_source!r} is not proxy or clients")
        if self.engine not in ("local", "flower"):
            raise ValueError(f"engine {self.engine!r} is not local or flower")
        if self.workers < 1 or self.threads < 0:
            raise ValueError("workers must be >= 1 and threads >= 0")
        if self.server.min_clients > self.partition.clients:
            raise ValueError(
                f"server.min_clients={self.server.min_clients} exceeds "
                f"partition.clients={self.partition.clients}"
            )
        bad = [c for c in self.attack.clients if not 0 <= c < self.partition.clients]
        if bad:
            raise ValueError(
                f"attack.clients {bad} are not client ids 0..{self.partition.clients - 1}"
            )
        if self.dp.enabled and self.method not in ("fedsb", "ffa", "fedit", "head-only"):
            raise ValueError(f"dp: method {self.method!r} is not supported (adapter methods only)")
        if self.dp.enabled and self.client.prox_mu > 0:
            raise ValueError(
                "client.prox_mu cannot be combined with dp (the term is not per-sample)"
            )
        if self.dp.enabled and self.client.logit_adjust > 0:
            raise ValueError(
                "client.logit_adjust cannot be combined with dp (the class prior it uses is "
                "computed from the private labels, outside the privacy accounting)"
            )
        wanted = ADAPTER_OF[self.method]
        if self.adapter.method != wanted:  # one knob: adapter.method follows method
            object.__setattr__(self, "adapter", replace(self.adapter, method=wanted))
