"""Radio-signal images: IQ records (N, L) -> stacked channels (N, C, H, W) for a vision model."""

from .channels import CHANNELS, constellation_counts
from .config import DEFAULT_STACK, STACKS, ImageConfig, resolve_channels
from .render import to_images

__all__ = [
    "CHANNELS",
    "DEFAULT_STACK",
    "STACKS",
    "ImageConfig",
    "constellation_counts",
    "resolve_channels",
    "to_images",
]
