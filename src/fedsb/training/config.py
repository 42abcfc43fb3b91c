"""Configs of centralized pretraining (source domain) and fine-tuning (target domain)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ..config import check_number
from ..data.config import DataConfig
from ..images.config import FrontendConfig, ImageConfig
from ..models.config import AdapterConfig, ModelConfig
from ..signals.config import FadingConfig, GeneratorConfig, ImpairmentsConfig, PulseConfig

#: Source domain: the conditions the backbone is pretrained on. Cabled-like: no multipath,
#: a tenth of the target's carrier offset, mild IQ imbalance, higher SNR, narrower sps range.
SOURCE_GENERATOR = GeneratorConfig(
    snr_db=(0.0, 30.0),
    pulse=PulseConfig(sps=(4.0, 12.0)),
    fading=FadingConfig(enabled=False),
    impairments=ImpairmentsConfig(
        cfo=(-0.001, 0.001),
        phase_noise=(0.0, 0.002),
        iq_amplitude_db=(-0.2, 0.2),
        iq_phase_deg=(-1.0, 1.0),
    ),
)

#: Target domain: what clients see (the generator defaults): Rayleigh/Rician multipath with
#: Doppler, +-0.01 cycles/sample carrier offset, IQ imbalance, phase noise, SNR -10..20 dB.
TARGET_GENERATOR = GeneratorConfig()

#: The default backbone (``pretrain-broad``) sees every record through the blind front-end
#: (docs/data.md, "Front-end"), so the runs that adapt it render their images the same way.
BLIND_FRONTEND = FrontendConfig(recentre=True, resample=True, gate=True)
TARGET_IMAGES = ImageConfig(frontend=BLIND_FRONTEND)
DEFAULT_BACKBONE = "pretrain-broad"  # the preset: measured in docs/results.md, "Transfer"


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule: AdamW, linear warm-up then cosine decay, per-step."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # share of all steps spent warming up
    label_smoothing: float = 0.0
    seed: int = 0  # model init, batch order
    threads: int = 0  # torch threads, 0 = one per core
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: the GPU when there is one
    amp: bool = False  # bfloat16 autocast of the training steps; needs device = "cuda"

    #: Where it runs is not what it trains (and amp off is what every older run did): left out
    #: of config hashes at the default.
    HASH_NEUTRAL: ClassVar[frozenset[str]] = frozenset({"device", "amp"})

    def __post_init__(self) -> None:
        check_number("epochs", self.epochs, 1)
        check_number("batch_size", self.batch_size, 1)
        check_number("lr", self.lr, 0, open_low=True)
        check_number("weight_decay", self.weight_decay, 0)
        check_number("warmup", self.warmup, 0, 1, open_high=True)
        check_number("label_smoothing", self.label_smoothing, 0, 1, open_high=True)
        check_number("seed", self.seed, 0)
        check_number("threads", self.threads, 0)
        if self.amp and self.device != "cuda":
            raise ValueError(
                f"amp: mixed precision runs on CUDA only; set device = 'cuda' (it is "
                f"{self.device!r}) or amp = false"
            )


def _check_splits(cfg: PretrainConfig | FinetuneConfig) -> None:
    """Validation and test records per class: every split needs at least one."""
    check_number("val_per_class", cfg.val_per_class, 1)
    check_number("test_per_class", cfg.test_per_class, 1)


@dataclass(frozen=True)
class PretrainConfig:
    """``fedsb pretrain``: a backbone trained from scratch on the source domain."""

    data: DataConfig = field(
        default_factory=lambda: DataConfig(per_class=2000, generator=SOURCE_GENERATOR)
    )
    val_per_class: int = 100
    test_per_class: int = 200
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        _check_splits(self)


@dataclass(frozen=True)
class FinetuneConfig:
    """``fedsb finetune``: adapt a pretrained backbone to the target domain (centralized)."""

    data: DataConfig = field(
        default_factory=lambda: DataConfig(
            per_class=1000, seed=1, generator=TARGET_GENERATOR, images=TARGET_IMAGES
        )
    )
    val_per_class: int = 100
    test_per_class: int = 300
    # a pretrain config (its checkpoint is cached by config hash, trained when missing),
    # a run directory holding model.safetensors, or a .safetensors file
    pretrained: str = DEFAULT_BACKBONE
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    # adapters and the head take train.lr; full fine-tuning of every weight needs a ~10x
    # smaller step (measured: 3e-3 vs 3e-2 for lora-sb, README "Pretraining and fine-tuning")
    full_lr: float = 3e-3
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=8, lr=3e-2, weight_decay=0.0)
    )

    def __post_init__(self) -> None:
        _check_splits(self)
        check_number("full_lr", self.full_lr, 0, open_low=True)
        if not self.adapter.method:  # "" means "follow the federated method": none here
            raise ValueError("adapter.method: name the adapter to fine-tune (e.g. 'lora-sb')")
