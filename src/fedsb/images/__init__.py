"""Radio-signal images: IQ records (N, L) -> stacked channels (N, C, H, W) for a vision model."""

from ..signals.frontend import FrontendConfig
from .channels import CHANNELS, constellation_counts
from .config import DEFAULT_STACK, STACKS, ImageConfig, resolve_channels
from .render import to_images

__all__ = [
    "CHANNELS",
    "DEFAULT_STACK",
    "STACKS",
    "FrontendConfig",
    "ImageConfig",
    "constellation_counts",
    "resolve_channels",
    "to_images",
]
