"""ImageSet: generated records -> uint8 images, cached by config hash, splits with own seeds."""

from __future__ import annotations

import torch

from fedsb.config import apply_overrides
from fedsb.data.config import DataConfig
from fedsb.data.imageset import SPLIT_SEEDS, load_or_build, split_config
from fedsb.images import to_images
from fedsb.signals import generate

SMALL = apply_overrides(
    DataConfig(),
    [
        "classes='bpsk,qpsk'",
        "per_class=6",
        "generator.length=256",
        "images.size=16",
        "images.channels='spectrogram,amplitude'",
    ],
)


def test_images_are_the_quantised_render_of_the_generated_records():
    built = load_or_build(SMALL, cache_dir=None, workers=1)
    records = generate(SMALL.generator, SMALL.classes, SMALL.per_class, SMALL.seed)
    expected = to_images(records.iq, SMALL.images)
    assert built.images.dtype == torch.uint8 and built.images.shape == (12, 2, 16, 16)
    assert torch.equal(built.images, (expected * 255).round().to(torch.uint8))
    assert torch.equal(built.labels, torch.from_numpy(records.labels))
    x, y = built.batch(torch.arange(3))
    assert x.dtype == torch.float32 and float(x.max()) <= 1.0 and torch.equal(y, built.labels[:3])


def test_cache_hit_returns_identical_tensors_and_counts_progress(tmp_path):
    first = load_or_build(SMALL, tmp_path, workers=1)
    files = list(tmp_path.glob("images-*.safetensors"))
    assert len(files) == 1
    seen = []
    second = load_or_build(SMALL, tmp_path, workers=1, progress=seen.append)
    assert sum(seen) == len(first)
    assert torch.equal(first.images, second.images) and torch.equal(first.snr_db, second.snr_db)
    assert second.class_names == ("bpsk", "qpsk")
    other = apply_overrides(SMALL, ["seed=5"])
    load_or_build(other, tmp_path, workers=1)
    assert len(list(tmp_path.glob("images-*.safetensors"))) == 2  # a new config, a new entry


def test_splits_have_their_own_seeds_and_sizes():
    val = split_config(SMALL, "val", 3)
    test = split_config(SMALL, "test", 4)
    assert val.seed == SMALL.seed + SPLIT_SEEDS["val"] and val.per_class == 3
    assert len({SMALL.seed, val.seed, test.seed}) == 3
    a, b = load_or_build(val, None, workers=1), load_or_build(test, None, workers=1)
    assert len(a) == 6 and len(b) == 8
    assert not torch.equal(a.images[:6], b.images[:6])


def test_a_damaged_cache_entry_is_rebuilt_not_a_crash(tmp_path, caplog):
    first = load_or_build(SMALL, tmp_path, workers=1)
    (entry,) = tmp_path.glob("images-*.safetensors")
    for damage in (b"", b"\x10" * 64, entry.read_bytes()[:100]):
        entry.write_bytes(damage)
        again = load_or_build(SMALL, tmp_path, workers=1)
        assert torch.equal(again.images, first.images) and again.class_names == first.class_names
        assert "damaged image cache" in caplog.text
    assert load_or_build(SMALL, tmp_path, workers=1).images.shape == first.images.shape
