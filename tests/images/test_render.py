"""to_images (shapes, ranges, determinism, batch independence) and ImageConfig validation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from fedsb.config import apply_overrides, from_dict, to_dict
from fedsb.errors import ConfigError
from fedsb.images import CHANNELS, DEFAULT_STACK, STACKS, ImageConfig, resolve_channels, to_images

ALL = ImageConfig(channels=tuple(CHANNELS))


def records(n: int, length: int, seed: int = 0) -> np.ndarray:
    """Noisy QPSK-ish records with a carrier offset, plus one all-zero record."""
    rng = np.random.default_rng(seed)
    k = np.arange(length)
    sym = rng.choice([-1, 1], (n, length)) + 1j * rng.choice([-1, 1], (n, length))
    noise = rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length))
    x = sym * np.exp(2j * np.pi * rng.uniform(-0.02, 0.02, (n, 1)) * k) + 0.3 * noise
    x[0] = 0.0
    return x.astype(np.complex64)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Bit-identity across chunkings holds for a fixed split of work: pin intra-op threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("length", [128, 1000, 1024])
@pytest.mark.parametrize("size", [16, 24, 32, 64])
def test_shape_dtype_and_range(length: int, size: int) -> None:
    config = ImageConfig(channels=tuple(CHANNELS), size=size)
    images = to_images(records(3, length), config)
    assert images.shape == (3, len(CHANNELS), size, size)
    assert images.dtype == torch.float32
    assert torch.isfinite(images).all()
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert (images[1:].amax(dim=(2, 3)) > 0).all()  # no channel is blank on a real record


def test_empty_batch_and_short_records() -> None:
    assert to_images(np.zeros((0, 128), np.complex64)).shape == (0, 8, 32, 32)
    small = to_images(records(2, 16), ImageConfig(channels="irt", size=8))
    assert small.shape == (2, 3, 8, 8) and torch.isfinite(small).all()


def test_default_stack_is_rich() -> None:
    assert DEFAULT_STACK == "rich"
    assert ImageConfig().channels == STACKS["rich"]
    assert ImageConfig().shape == (8, 32, 32)


def test_deterministic_and_independent_of_chunking_and_batch(one_thread: None) -> None:
    x = records(37, 1000, seed=1)
    first = to_images(x, ALL)
    assert torch.equal(first, to_images(x, ALL))
    for chunk in (1, 5, 16, 17):
        assert torch.equal(first, to_images(x, ALL, chunk_size=chunk))
    singles = torch.cat([to_images(x[i : i + 1], ALL) for i in range(0, 37, 6)])
    assert torch.equal(first[::6], singles)
    mixed = np.concatenate([records(9, 1000, seed=2), x[:5]])  # other records around
    assert torch.equal(to_images(mixed, ALL)[9:], first[:5])


def test_numpy_and_torch_inputs_agree() -> None:
    x = records(4, 256)
    images = to_images(x, ALL)
    assert torch.equal(images, to_images(torch.from_numpy(x), ALL))
    assert torch.equal(images, to_images(x.astype(np.complex128), ALL))


def test_gain_does_not_change_images() -> None:
    x = records(4, 256)
    assert torch.equal(to_images(x, ALL), to_images(x * 4, ALL))  # power of two: exact


def test_out_buffer_is_filled() -> None:
    x = records(5, 128)
    out = torch.full((5, 8, 32, 32), -1.0)
    assert to_images(x, out=out) is out
    assert torch.equal(out, to_images(x))
    with pytest.raises(ValueError, match="out must be"):
        to_images(x, out=torch.zeros(5, 8, 32, 31))


@pytest.mark.parametrize(
    ("iq", "message"),
    [
        (np.ones((2, 128), np.float32), "complex"),
        (np.ones(128, np.complex64), r"\(N, L\)"),
        (np.ones((2, 8), np.complex64), "at least 16"),
        (torch.ones(2, 128), "complex"),
    ],
)
def test_bad_input_is_rejected(iq: np.ndarray | torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_images(iq)


def test_bad_chunk_size() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        to_images(records(2, 128), chunk_size=0)


# --------------------------------------------------------------------------- ImageConfig


def test_presets_and_lists_resolve() -> None:
    assert set(STACKS) >= {"spectrogram", "constellation", "spec_const", "cyclic", "irt", "rich"}
    assert STACKS["spec_const"] == ("spectrogram", "constellation")
    assert STACKS["cyclic"] == ("spectrum_x1", "spectrum_x2", "spectrum_x4", "spectrum_x8")
    assert STACKS["irt"] == ("amplitude", "phase", "inst_freq")
    for name, channels in STACKS.items():
        assert ImageConfig(channels=name).channels == channels
        assert all(c in CHANNELS for c in channels)
    assert resolve_channels("spectrogram, Amplitude") == ("spectrogram", "amplitude")
    assert resolve_channels(["cyclic", "phase"]) == STACKS["cyclic"] + ("phase",)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": ("spectrogram", "sepctrum")}, r"unknown channel 'sepctrum'.*inst_freq"),
        ({"channels": "nope"}, "unknown channel 'nope'"),
        ({"channels": ()}, "empty"),
        ({"channels": ("phase", "irt")}, "'phase' is listed twice"),
        ({"size": 4}, "size must be in .*got 4"),
        ({"size": 32.0}, "size must be an integer"),
        ({"const_extent": 0.0}, "const_extent"),
        ({"spec_dynamic_range_db": -3.0}, "spec_dynamic_range_db"),
        ({"diff_lag": 0}, "diff_lag"),
        ({"comp_powers": (3,)}, "comp_powers"),
        ({"comp_powers": ()}, "comp_powers"),
    ],
)
def test_invalid_config_raises_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImageConfig(**kwargs)


def test_config_loader_round_trip() -> None:
    config = from_dict(ImageConfig, {"channels": "irt", "size": 24})
    assert config.channels == STACKS["irt"] and config.size == 24
    assert from_dict(ImageConfig, to_dict(config)) == config
    assert from_dict(ImageConfig, {"channels": ["phase", "spectrogram"]}).n_channels == 2
    assert apply_overrides(ImageConfig(), ["channels=cyclic"]).channels == STACKS["cyclic"]
    with pytest.raises(ConfigError, match="size"):
        apply_overrides(ImageConfig(), ["size=4"])
    with pytest.raises(ConfigError, match="'bogus'"):
        from_dict(ImageConfig, {"channels": "spectrogram,bogus"})
