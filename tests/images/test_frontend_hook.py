"""The front-end hook of to_images: off leaves every image bit-identical, on applies the
signal front-end to each record first; the setting round-trips through the image config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedsb.config import apply_overrides, config_hash, from_dict, to_dict
from fedsb.images import CHANNELS, FrontendConfig, ImageConfig, to_images
from fedsb.images.dsp import shared_intermediates
from fedsb.signals.frontend import apply_frontend

from .test_render import one_thread, records  # noqa: F401 - a fixture

FULL = FrontendConfig(recentre=True, resample=True, gate=True)


def offset_records(
    n: int, length: int = 512, seed: int = 1, offsets: np.ndarray | None = None
) -> np.ndarray:
    """QPSK-ish records far off centre, half of them a burst in noise."""
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-0.25, 0.25, n) if offsets is None else offsets
    k = np.arange(length)
    sym = rng.choice([-1, 1], (n, length)) + 1j * rng.choice([-1, 1], (n, length))
    held = np.repeat(sym[:, ::4], 4, axis=1)[:, :length]  # 4 samples per symbol
    x = held * np.exp(2j * np.pi * offsets[:, None] * k)
    x[: n // 2, : length // 3] = 0  # bursts: silent first third
    noise = rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length))
    return (x + 0.1 * noise).astype(np.complex64)


def direct_images(x: np.ndarray, config: ImageConfig) -> torch.Tensor:
    """The channel functions applied to the records as they are (what to_images did before)."""
    chunk = torch.from_numpy(x)
    pad = -chunk.shape[0] % 16
    chunk = torch.cat([chunk, chunk.new_zeros(pad, chunk.shape[1])])
    with torch.inference_mode(), shared_intermediates(chunk):
        planes = [CHANNELS[c](chunk, config.size, config)[: len(x)] for c in config.channels]
    return torch.stack(planes, dim=1)


@pytest.mark.usefixtures("one_thread")
def test_frontend_off_gives_the_images_of_the_records_as_they_are():
    x = records(32, 1024)
    config = ImageConfig(channels=tuple(CHANNELS))
    assert config.frontend == FrontendConfig() and not config.frontend.active
    assert torch.equal(to_images(x, config), direct_images(x, config))
    assert torch.equal(to_images(x), direct_images(x, ImageConfig()))


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("frontend", [FrontendConfig(recentre=True), FULL])
def test_frontend_on_renders_the_processed_records(frontend):
    x = offset_records(20)
    on = ImageConfig(frontend=frontend)
    processed, _ = apply_frontend(x, frontend)
    assert torch.equal(to_images(x, on), to_images(processed, ImageConfig()))
    assert not torch.equal(to_images(x, on), to_images(x, ImageConfig()))


@pytest.mark.usefixtures("one_thread")
def test_frontend_images_do_not_depend_on_the_chunking():
    x = offset_records(40)
    config = ImageConfig(frontend=FULL)
    assert torch.equal(to_images(x, config), to_images(x, config, chunk_size=7))


def test_recentring_brings_the_spectrogram_band_to_the_middle_rows():
    x = offset_records(8, offsets=np.array([0.2, -0.2] * 4))  # 6.4 rows off centre
    config = ImageConfig(channels="spectrogram", size=32)
    rows = torch.arange(32, dtype=torch.float64)

    def mean_row_offset(images: torch.Tensor) -> torch.Tensor:
        level = images[:, 0].double().mean(dim=2) ** 4  # (N, rows): the band stands out
        return ((level * rows).sum(1) / level.sum(1) - 15.5).abs()

    before = mean_row_offset(to_images(x, config))
    after = mean_row_offset(
        to_images(
            x, ImageConfig(channels="spectrogram", size=32, frontend=FrontendConfig(recentre=True))
        )
    )
    assert after.max() < 0.75 and before.min() > 1.75  # the dB image dilutes the centroid


def test_a_config_without_the_frontend_key_loads_as_off():
    old = to_dict(ImageConfig())
    del old["frontend"]  # an image config written before the front-end existed
    assert from_dict(ImageConfig, old) == ImageConfig()
    on = apply_overrides(ImageConfig(), ["frontend.recentre=true", "frontend.fill='zeros'"])
    assert on.frontend == FrontendConfig(recentre=True, fill="zeros")
    assert from_dict(ImageConfig, to_dict(on)) == on
    assert config_hash(on) != config_hash(ImageConfig())  # caches keep them apart


def test_frontend_must_be_a_frontend_config():
    with pytest.raises(ValueError, match=r"\Afrontend must be a FrontendConfig, got 'full'\Z"):
        ImageConfig(frontend="full")  # type: ignore[arg-type]
