"""``fedsb run`` configuration: partition, clients, server, faults, DP and engine."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal, get_args

from ..config import check_number
from ..data.config import CHANNEL_PROFILES, DataConfig, PartitionConfig  # noqa: F401 (re-exported)
from ..errors import ConfigError
from ..models.config import AdapterConfig
from ..training.config import DEFAULT_BACKBONE, TARGET_GENERATOR, TARGET_IMAGES
from .methods import METHODS, FedMethod, method
from .payload import PAYLOADS, Payload, fixed_kind

#: Federated method -> the adapter each client trains (from the registry, ``methods.METHODS``).
ADAPTER_OF = {name: m.adapter for name, m in METHODS.items()}
FED_METHODS = tuple(METHODS)
Aggregation = Literal["mean", "median", "trimmed-mean"]
ServerOptimizer = Literal["avg", "fedavgm", "fedadam"]
ClientOptimizer = Literal["adamw", "sgd"]
Accountant = Literal["rdp", "prv", "gdp"]
Attack = Literal["none", "scale", "nan", "sign-flip", "noise", "raise", "sleep", "wrong-keys"]
InitSource = Literal["proxy", "clients", "sketch"]
EngineName = Literal["local", "flower"]
BasisPayload = Literal["auto", "fp32", "fp16", "int8"]
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)
SERVER_OPTIMIZERS: tuple[str, ...] = get_args(ServerOptimizer)
ATTACKS: tuple[str, ...] = get_args(Attack)
BASIS_PAYLOADS: tuple[str, ...] = get_args(BasisPayload)


@dataclass(frozen=True)
class ClientConfig:
    """Local training on each client (AdamW, fresh every round, cosine decay over rounds)."""

    local_epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-2  # fedsb's R and every method's head (3e-2 drifts apart in round 1)
    lora_lr: float = 3e-3  # fedit's A and B, ffa's B: LoRA factors diverge at lr (3e-2)
    full_lr: float = 3e-3  # fedavg trains every weight: a ~10x smaller step (as finetune)
    head_lr: float = 0.0  # > 0: every method's plain head at this rate instead of lr
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    logit_adjust: float = 0.0  # tau > 0: train on logits + tau*log(local class prior) (label skew)
    prox_mu: float = 0.0  # mu > 0: FedProx term mu/2 * ||w - w_global||^2 on trained tensors
    optimizer: ClientOptimizer = "adamw"  # sgd: momentum 0.9; the lr keys then are SGD steps
    # what every transfer sends, both ways, round 0 too (``payload``): int8 (error feedback) |
    # fp16 | fp32 (exact: Fed-SB's average to the last bit)
    payload: Payload = "int8"
    # what the server sends once (round 0's Q, LoRA-SB's B and A): auto (fp32 with fp32, else
    # fp16) | fp32 | fp16 | int8 (power-of-two scales, so every node decodes the same bits)
    basis_payload: BasisPayload = "auto"

    def __post_init__(self) -> None:
        if self.optimizer not in get_args(ClientOptimizer):
            raise ValueError(f"optimizer {self.optimizer!r} is not adamw or sgd")
        if self.payload not in PAYLOADS:
            raise ValueError(f"payload {self.payload!r} is not one of {', '.join(PAYLOADS)}")
        if self.basis_payload not in BASIS_PAYLOADS:
            kinds = ", ".join(BASIS_PAYLOADS)
            raise ValueError(f"basis_payload {self.basis_payload!r} is not one of {kinds}")
        for key in ("logit_adjust", "prox_mu", "weight_decay", "head_lr"):
            check_number(key, getattr(self, key), 0)
        check_number("label_smoothing", self.label_smoothing, 0, 1, open_high=True)
        check_number("local_epochs", self.local_epochs, 1)
        check_number("batch_size", self.batch_size, 1)
        for key in ("lr", "lora_lr", "full_lr"):
            check_number(key, getattr(self, key), 0, open_low=True)

    @property
    def basis_kind(self) -> str:
        """The precision of Q, B and A on the wire (``payload.fixed_kind``)."""
        return fixed_kind(self.payload, self.basis_payload)


@dataclass(frozen=True)
class ServerConfig:
    """Client sampling, update checks and aggregation."""

    fraction: float = 1.0  # share of clients sampled per round
    min_clients: int = 2  # fewer valid updates than this fails the round
    aggregation: Aggregation = "mean"  # mean | median | trimmed-mean (coordinate-wise)
    trim: float = 0.2  # trimmed-mean: share cut at each end
    norm_bound: float = 0.0  # > 0: drop updates whose L2 norm of (state - global) exceeds it
    timeout: float = 0.0  # > 0: drop clients slower than this many seconds
    # avg: global = aggregate; fedavgm: momentum; fedadam: Adam (on the aggregated delta)
    optimizer: ServerOptimizer = "avg"
    lr: float = 1e-2  # server learning rate of fedavgm (try 1.0) and fedadam
    beta1: float = 0.9  # fedavgm momentum; fedadam first moment
    beta2: float = 0.99
    tau: float = 1e-3  # fedadam adaptivity (epsilon)
    # > 0: each round's row scores a seeded sample of this many validation and test records
    # (thousands of clients); the round-0 and final rows always score all of them
    eval_records: int = 0

    def __post_init__(self) -> None:
        check_number("fraction", self.fraction, 0, 1, open_low=True)
        check_number("eval_records", self.eval_records, 0)
        check_number("min_clients", self.min_clients, 1)
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation {self.aggregation!r} is not one of {AGGREGATIONS}")
        check_number("trim", self.trim, 0, 0.5, open_high=True)
        if self.optimizer not in SERVER_OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r} is not one of {SERVER_OPTIMIZERS}")
        # inf is "no bound" / "wait for ever", as 0 is
        check_number("norm_bound", self.norm_bound, 0, allow_inf=True)
        check_number("timeout", self.timeout, 0, allow_inf=True)
        check_number("lr", self.lr, 0, open_low=True)
        check_number("beta1", self.beta1, 0, 1, open_high=True)
        check_number("beta2", self.beta2, 0, 1, open_high=True)
        check_number("tau", self.tau, 0, open_low=True)


@dataclass(frozen=True)
class DPConfig:
    """Sample-level DP-SGD (Opacus) on each client's trained tensors; epsilon = 0 turns it off."""

    epsilon: float = 0.0  # target epsilon after all rounds, per client
    delta: float = 1e-5
    clip: float = 1.0  # per-sample gradient norm bound
    accountant: Accountant = "rdp"

    def __post_init__(self) -> None:
        check_number("epsilon", self.epsilon, 0)
        check_number("delta", self.delta, 0, 1, open_low=True, open_high=True)
        check_number("clip", self.clip, 0, open_low=True)
        if self.accountant not in get_args(Accountant):
            raise ValueError(f"accountant {self.accountant!r} is not rdp, prv or gdp")

    @property
    def enabled(self) -> bool:
        """Whether DP-SGD is on: a positive target ``epsilon``."""
        return self.epsilon > 0


@dataclass(frozen=True)
class AttackConfig:
    """Simulated misbehaving clients, for robustness studies (none by default)."""

    kind: Attack = "none"
    clients: tuple[int, ...] = ()  # client ids that misbehave every round they are sampled
    factor: float = 100.0  # scale: multiply the update; noise: its standard deviation
    sleep: float = 0.0  # sleep: seconds the client stalls before answering

    def __post_init__(self) -> None:
        if self.kind not in ATTACKS:
            raise ValueError(f"kind {self.kind!r} is not one of {ATTACKS}")
        check_number("factor", self.factor, allow_inf=True)  # scale by inf: a test of the checks
        check_number("sleep", self.sleep, 0)


@dataclass(frozen=True)
class FlowerConfig:
    """What each simulated ClientApp reserves (``engine = "flower"``: Ray's client_resources)."""

    num_cpus: int = 1  # 1: two clients train at once on two cores
    num_gpus: float = 0.0  # a share of one GPU per client, e.g. 0.25: four clients per GPU

    def __post_init__(self) -> None:
        check_number("num_cpus", self.num_cpus, 1)
        check_number("num_gpus", self.num_gpus, 0, 1)


@dataclass(frozen=True)
class RunConfig:
    """One federated run: the target data, the partition, the method and its budget."""

    # fedsb | fedit | ffa | fedex | flora | fedsa | fedavg | head-only | centralized
    method: str = "fedsb"
    rounds: int = 20
    seed: int = 0  # client sampling, batch order, local training
    # a pretrain config (cached by hash), a pretrain run directory or a .safetensors file
    pretrained: str = DEFAULT_BACKBONE  # the preset
    # LoRA-SB's B and A: "proxy" = the server's own data (a slice of the pretraining set, drawn
    # with its generator), "clients" = federated round 0 (each client sends its summed
    # gradients once; counted in the communication totals), "sketch" = round 0 as a two-pass
    # randomized range finder over the summed gradient (k = rank + init_oversample columns)
    init_source: InitSource = "sketch"  # measured: within 0.1 point of "clients", 2.6x less
    init_clients: int = 0  # round 0's clients: 0 = drawn like a round's (server.fraction)
    init_oversample: int = 8  # sketch: columns beyond the rank (Halko et al.'s p)
    engine: EngineName = "local"  # local | flower (Flower simulation engine)
    workers: int = 1  # local engine: client processes (1 = sequential in this process)
    threads: int = 0  # torch threads per process (0 = one per core / worker)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # the clients' and the server's models
    data: DataConfig = field(
        default_factory=lambda: DataConfig(
            per_class=1, seed=1, generator=TARGET_GENERATOR, images=TARGET_IMAGES
        )
    )
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    # adapter.method "" (the default) follows method; an explicit one must agree with it
    adapter: AdapterConfig = field(default_factory=lambda: AdapterConfig(method=""))
    client: ClientConfig = field(default_factory=ClientConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    dp: DPConfig = field(default_factory=DPConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    flower: FlowerConfig = field(default_factory=FlowerConfig)

    FOLLOWERS: ClassVar[dict[str, str]] = {"adapter.method": "method"}  # see config.from_dict

    def __post_init__(self) -> None:
        fed = method(self.method)
        check_number("rounds", self.rounds, 1)
        check_number("seed", self.seed, 0)
        if self.init_source not in get_args(InitSource):
            raise ValueError(f"init_source {self.init_source!r} is not proxy, clients or sketch")
        check_number("init_clients", self.init_clients, 0)
        check_number("init_oversample", self.init_oversample, 0)
        if self.engine not in get_args(EngineName):
            raise ValueError(f"engine {self.engine!r} is not local or flower")
        check_number("workers", self.workers, 1)
        check_number("threads", self.threads, 0)
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
        if self.dp.enabled and not fed.dp:
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
        self._check_method(fed)
        self._follow(fed.adapter)

    def _check_method(self, fed: FedMethod) -> None:
        """Refuse what the method cannot do: robust aggregation of a fold, a Flower engine."""
        if not fed.robust and self.server.aggregation != "mean":
            raise ConfigError(
                f"server.aggregation: {self.server.aggregation!r} cannot be used with method "
                f"{self.method!r} (it folds the exact weighted mean of the clients' updates into "
                "the base weights); use 'mean'"
            )
        if self.engine == "flower" and fed.no_flower:
            raise ConfigError(
                f"engine: 'flower' cannot run method {self.method!r}: {fed.no_flower}"
            )

    def _follow(self, wanted: str) -> None:
        """Resolve adapter.method "" to the method's adapter; refuse an explicit other one.

        The resolved value is what config.toml then keeps, as before; a conflicting one is
        refused, not silently replaced.
        """
        if self.adapter.method == "":
            object.__setattr__(self, "adapter", replace(self.adapter, method=wanted))
        elif self.adapter.method != wanted:
            raise ConfigError(
                f"adapter.method: {self.adapter.method!r} conflicts with method "
                f"{self.method!r} (which trains {wanted!r}); leave adapter.method out"
            )
