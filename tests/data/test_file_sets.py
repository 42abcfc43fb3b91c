"""The user's files as image sets: chunked conversion into an on-disk cache, read memory-mapped."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import fedsb.data.file_sets as file_sets
import fedsb.data.files as files
import fedsb.data.sources as sources
from fedsb.config import apply_overrides
from fedsb.data.config import DataConfig, PartitionConfig
from fedsb.data.file_sets import file_clients, file_dataset, file_image_splits
from fedsb.data.files import load_files
from fedsb.data.groups import assign_to_splits
from fedsb.data.imageset import MappedImageSet, join_sets, quantised_images
from fedsb.reporter import SilentReporter

from .test_files import _npz, _traced

LENGTH = 64


@pytest.fixture(autouse=True)
def one_thread():
    """Images bit for bit whatever the chunking (torch's threads may move a last bit)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gold(path: Path, n: int = 600, length: int = LENGTH, seed: int = 0) -> Path:
    """A GOLD-style RML2018 file of random samples: classes 0-5 of 24, SNR -20..30 dB."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 24), dtype=np.int64)
    y[np.arange(n), rng.integers(0, 6, n)] = 1
    with h5py.File(path, "w") as handle:
        handle["X"] = rng.standard_normal((n, length, 2)).astype(np.float32)
        handle["Y"] = y
        handle["Z"] = rng.integers(-10, 16, (n, 1)) * 2
    return path


def _config(paths, *sets: str) -> DataConfig:
    base = ["source='files'", f"paths={[str(p) for p in paths]!r}", "classes='found'"]
    base += [f"generator.length={LENGTH}", "images.size=8"]
    base += ["images.channels='spectrogram,amplitude'"]
    return apply_overrides(DataConfig(), [*base, *sets])


def _reference(data: DataConfig, paths, test=None) -> tuple[dict, torch.Tensor, np.ndarray]:
    """Splits and images the plain way: every sample in memory, imaged in one go."""
    kw = {"length": LENGTH, "max_records": data.max_records, "seed": data.seed}
    train = load_files(paths, **kw)
    names = train.records.class_names
    test_part = None if test is None else load_files(test, length=LENGTH, classes=names)
    splits = assign_to_splits(
        train,
        None,
        test_part,
        val_fraction=data.val_fraction,
        test_fraction=0.0 if test else data.test_fraction,
        seed=data.seed,
    )
    images = quantised_images(splits.records.records.iq, data.images)
    index = {"train": splits.train, "val": splits.val, "test": splits.test}
    return index, images, splits.records.records.labels


def _assert_equal(got: dict, index: dict, images: torch.Tensor, labels: np.ndarray) -> None:
    for name, rows in index.items():
        assert isinstance(got[name], MappedImageSet)
        assert torch.equal(got[name].images, images[rows]), name
        assert got[name].labels.tolist() == labels[rows].tolist(), name
        x, y = got[name].batch(torch.arange(len(rows)))
        assert torch.equal(x, images[rows].float() / 255.0) and torch.equal(y, got[name].labels)


def test_fresh_cached_and_uncached_sets_equal_the_in_memory_reference(tmp_path: Path) -> None:
    gold = _gold(tmp_path / "g.h5")
    held = _npz(tmp_path / "test.npz", _traced(30, LENGTH, ("qpsk", "bpsk")))
    data = _config([gold], "max_records=400", f"test_paths=[{str(held)!r}]")
    index, images, labels = _reference(data, [gold], [held])
    cache = tmp_path / "cache"
    for cache_dir in (cache, cache, None):  # built, then read back, then without a cache
        got = file_image_splits(data, LENGTH, None, cache_dir, SilentReporter())
        _assert_equal(got, index, images, labels)
        assert len(got["test"]) == 30 and len(got["train"]) + len(got["val"]) == 400
    assert sorted(p.suffix for p in cache.iterdir()) == [".npy", ".npz"]


def test_the_caps_leave_given_test_and_validation_files_whole(tmp_path: Path) -> None:
    """A capped run (few-shot) is scored on the same test records as an uncapped one."""
    gold = _gold(tmp_path / "g.h5")
    held = _npz(tmp_path / "test.npz", _traced(30, LENGTH, ("qpsk", "bpsk")))
    val = _npz(tmp_path / "val.npz", _traced(20, LENGTH, ("bpsk", "qpsk")))
    sets = (f"test_paths=[{str(held)!r}]", f"val_paths=[{str(val)!r}]")
    for caps in (("max_per_class=4",), ("max_records=7",), ()):
        got = file_image_splits(_config([gold], *caps, *sets), LENGTH, None, None, SilentReporter())
        assert len(got["test"]) == 30 and len(got["val"]) == 20, caps
        counts = np.bincount(got["train"].labels.numpy())
        if caps == ("max_per_class=4",):
            assert counts.max() == 4
        elif caps:
            assert len(got["train"]) == 7


def _no_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a source file was opened")

    for module, name in (
        (files, "open_source"),
        (sources, "read_rml2018"),
        (sources, "read_rml2018_index"),
        (sources, "load_npz"),
        (h5py, "File"),
    ):
        monkeypatch.setattr(module, name, refuse)


def test_a_cache_hit_opens_no_source_file(tmp_path: Path, monkeypatch) -> None:
    gold = _gold(tmp_path / "g.h5")
    data = _config([gold])
    first, images = file_dataset(data, LENGTH, None, tmp_path, SilentReporter(), by="file")
    _no_reading(monkeypatch)
    again, cached = file_dataset(data, LENGTH, None, tmp_path, SilentReporter(), by="file")
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
    assert torch.equal(cached.images, images.images)
    assert again.records.attrs["file"].tolist() == first.records.attrs["file"].tolist()
    np.testing.assert_array_equal(again.records.groups, first.records.groups)
    os.utime(gold, ns=(1, 1))  # the file changed: a new key, so it must be read again
    with pytest.raises(AssertionError, match="a source file was opened"):
        file_dataset(data, LENGTH, None, tmp_path, SilentReporter())


def _damage_npz(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def _damage_npy(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x10" * 64)


@pytest.mark.parametrize(
    ("which", "damage", "problem"),
    [
        (1, _damage_npz, "not a readable file cache index"),
        (1, _garbage, "not a readable file cache index"),
        (0, _damage_npy, "image bytes, its header claims"),
        (0, _garbage, "not a readable image file"),
    ],
)
def test_a_damaged_entry_is_rebuilt(tmp_path, caplog, which, damage, problem) -> None:
    gold = _gold(tmp_path / "g.h5")
    data = _config([gold])
    _, first = file_dataset(data, LENGTH, None, tmp_path / "c", SilentReporter())
    want = first.images  # read now: the damage below rewrites the very file it maps
    key_files = sorted((tmp_path / "c").iterdir())  # .npy, .npz
    damage(key_files[which])
    with caplog.at_level(logging.WARNING, logger="fedsb.data.file_cache"):
        _, again = file_dataset(data, LENGTH, None, tmp_path / "c", SilentReporter())
    assert "damaged file cache" in caplog.text and problem in caplog.text
    assert torch.equal(again.images, want)
    caplog.clear()
    file_dataset(data, LENGTH, None, tmp_path / "c", SilentReporter())  # rebuilt: a clean hit
    assert "damaged" not in caplog.text


def test_caps_choose_rows_before_any_sample_is_read(tmp_path: Path, monkeypatch) -> None:
    gold = _gold(tmp_path / "g.h5", n=600)
    asked: list[np.ndarray] = []
    real = sources.read_rml2018

    def spy(path, *args, index=None, **kwargs):
        asked.append(np.asarray(index))
        return real(path, *args, index=index, **kwargs)

    monkeypatch.setattr(sources, "read_rml2018", spy)
    monkeypatch.setattr(file_sets, "IMAGE_CHUNK", 16)
    monkeypatch.setattr(file_sets, "READ_BYTES", 8 * LENGTH * 48)  # 48 records a read
    data = _config([gold], "max_per_class=20")
    _, images = file_dataset(data, LENGTH, None, None, SilentReporter())
    assert len(images) == 120 and images.labels.bincount().tolist() == [20] * 6
    read = np.concatenate(asked)
    assert [len(a) for a in asked] == [48, 48, 24]  # chunk by chunk, only the capped rows
    assert read.size == np.unique(read).size == 120 and (np.diff(read) > 0).all()
    capped = load_files([gold], length=LENGTH, max_per_class=20)  # the same seeded choice
    assert torch.equal(images.images, quantised_images(capped.records.iq, data.images))


class _Recorder:
    def __init__(self):
        self.tasks: list[list] = []

    def task(self, description: str, total: int):
        from contextlib import contextmanager

        @contextmanager
        def run():
            entry = [description, total, 0]
            self.tasks.append(entry)
            yield lambda n: entry.__setitem__(2, entry[2] + n)

        return run()

    def info(self, message: str) -> None:
        pass


def test_progress_counts_every_record_converted(tmp_path: Path) -> None:
    gold = _gold(tmp_path / "g.h5", n=300)
    data = _config([gold])
    reporter = _Recorder()
    file_dataset(data, LENGTH, None, tmp_path, reporter)
    assert reporter.tasks == [["reading training files", 1, 1], ["images", 300, 300]]
    reporter.tasks.clear()
    file_dataset(data, LENGTH, None, tmp_path, reporter)  # a hit: the bar still completes
    assert reporter.tasks == [["images", 300, 300]]


def test_federated_clients_are_rows_of_one_store(tmp_path: Path) -> None:
    gold = _gold(tmp_path / "g.h5", n=600)
    data = _config([gold])
    part = PartitionConfig(clients=3, val_per_class=2, test_per_class=3, min_records=4)
    clients, rows = file_clients(data, part, LENGTH, None, tmp_path, SilentReporter())
    splits, images = file_dataset(data, LENGTH, None, tmp_path, SilentReporter())
    every = images.images
    assert len(clients) == len(rows) == 3
    for client in clients:
        for split in (client.train, client.val, client.test):
            assert isinstance(split, MappedImageSet) and split.store.path == images.store.path
            assert torch.equal(split.images, every[split.rows])
    union = join_sets([c.test for c in clients])
    assert torch.equal(union.images, every[np.concatenate([c.test.rows for c in clients])])


_CHILD = """
import sys, time, torch
from fedsb.config import apply_overrides
from fedsb.data.config import DataConfig
import fedsb.data.file_sets as fs
from fedsb.reporter import SilentReporter
def hwm():
    lines = open("/proc/self/status").read().splitlines()
    return next(int(l.split()[1]) * 1024 for l in lines if l.startswith("VmHWM"))
torch.set_num_threads(1)
fs.READ_BYTES, fs.IMAGE_CHUNK = 4 * 2**20, 512  # 512 records a read: 4 MB of samples
data = apply_overrides(DataConfig(), ["source='files'", f"paths=[{sys.argv[1]!r}]",
    "classes='found'", "generator.length=1024", "images.size=8", "images.channels='amplitude'"])
fs.quantised_images(torch.zeros(4, 1024, dtype=torch.complex64).numpy(), data.images)
before = hwm()
splits, images = fs.file_dataset(data, 1024, None, sys.argv[2], SilentReporter())
print(len(images), hwm() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_converting_a_200_mb_file_holds_a_small_part_of_it(tmp_path: Path) -> None:
    n = 25_000  # 25,000 x 1,024 x 2 float32 = 205 MB
    path = tmp_path / "big.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        xs = handle.create_dataset("X", (n, 1024, 2), np.float32)
        for a in range(0, n, 5000):
            xs[a : a + 5000] = rng.standard_normal((5000, 1024, 2), dtype=np.float32)
        y = np.zeros((n, 24), np.int64)
        y[np.arange(n), np.arange(n) % 24] = 1
        handle["Y"], handle["Z"] = y, np.zeros((n, 1), np.int64)
    size = path.stat().st_size
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    count, grown = (int(v) for v in out.stdout.split())
    assert count == n and size > 200e6
    assert grown < 0.25 * size, (
        f"peak RSS grew by {grown / 1e6:.0f} MB for a {size / 1e6:.0f} MB file"
    )
