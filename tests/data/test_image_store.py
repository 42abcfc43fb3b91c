"""ImageStore: uint8 images written in chunks, memory-mapped back; MappedImageSet over it."""

from __future__ import annotations

import multiprocessing
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import fedsb.data.image_store as image_store
from fedsb.data.image_store import open_store, temporary_store, write_store
from fedsb.data.imageset import ImageSet, MappedImageSet, join_sets
from fedsb.errors import DataError

NAMES = ("a", "b", "c")


def _images(n: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 2, 4, 4), dtype=np.uint8)


def _sets(tmp_path: Path, n: int = 50) -> tuple[MappedImageSet, ImageSet]:
    """The same records twice: on disk and in memory."""
    images = _images(n)
    write_store(tmp_path / "s.npy", n, [images[:7], images[7:30], images[30:]])
    labels, snr = torch.arange(n) % 3, torch.linspace(-10, 10, n)
    mapped = MappedImageSet(open_store(tmp_path / "s.npy"), np.arange(n), labels, snr, NAMES)
    return mapped, ImageSet(torch.from_numpy(images), labels, snr, NAMES)


def test_a_store_is_a_plain_npy_file_of_every_chunk_in_order(tmp_path: Path) -> None:
    images = _images()
    write_store(tmp_path / "s.npy", 50, [images[:20], images[20:]])
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), images)
    store = open_store(tmp_path / "s.npy")
    assert store.shape == (50, 2, 4, 4) and len(store) == 50
    np.testing.assert_array_equal(store.take(np.array([9, 3, 3])), images[[9, 3, 3]])


def test_a_wrong_count_of_images_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="40 images written, 50 expected"):
        write_store(tmp_path / "s.npy", 50, [_images(40)])
    with pytest.raises(ValueError, match="chunk uint8"):
        write_store(tmp_path / "s.npy", 10, [_images(40)])
    assert list(tmp_path.iterdir()) == []


def _refused(path: Path, problem: str, whole: bool = True):
    end = r"\Z" if whole else ""
    return pytest.raises(DataError, match=r"\A" + re.escape(f"{path}: {problem}") + end)


def test_damaged_stores_are_one_line_data_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.npy"
    write_store(path, 50, [_images()])
    whole = path.read_bytes()
    path.write_bytes(whole[:-16])
    with _refused(path, "holds 1,584 image bytes, its header claims 1,600"):
        open_store(path)
    path.write_bytes(b"\x10" * 64)
    with _refused(path, "not a readable image file (", whole=False):
        open_store(path)
    np.save(path, np.zeros((3, 4), np.float32))
    with _refused(path, "not a uint8 (N, C, H, W) image array: float32 (3, 4)"):
        open_store(path)


def _rss_file() -> int:
    with open("/proc/self/status") as status:
        return next(int(x.split()[1]) * 1024 for x in status if x.startswith("RssFile"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_random_reads_keep_the_mapped_pages_resident_below_release_bytes(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(image_store, "RELEASE_BYTES", 4 * 2**20)
    n = 8192  # 8 KB images: 64 MB, read 128 random ones at a time, 64 MB in all
    write_store(tmp_path / "s.npy", n, [np.full((n, 8, 32, 32), 7, np.uint8)])
    store, rng = open_store(tmp_path / "s.npy"), np.random.default_rng(0)
    start, peak = _rss_file(), 0
    for _ in range(64):
        assert (store.take(rng.integers(0, n, 128)) == 7).all()
        peak = max(peak, _rss_file() - start)
    # a fault maps more than the 8 KB asked for: counting bytes read alone lets this reach 64 MB
    assert peak < 3 * image_store.RELEASE_BYTES, f"{peak / 2**20:.0f} MB of the map resident"


def test_without_proc_the_bytes_read_trigger_the_release(tmp_path, monkeypatch) -> None:
    mapped, _ = _sets(tmp_path)
    calls = []
    monkeypatch.setattr(image_store, "resident_file_bytes", lambda: None)
    monkeypatch.setattr(image_store, "RELEASE_BYTES", 32 * 10)
    monkeypatch.setattr(type(mapped.store), "release", lambda self: calls.append(self._touched))
    for a in range(0, 50, 10):
        mapped.store.take(np.arange(a, a + 10))  # 320 bytes each
    assert calls == [320, 640, 960, 1280, 1600]  # the stub does not reset the count


def test_released_pages_still_read_the_same_bytes(tmp_path: Path) -> None:
    mapped, memory = _sets(tmp_path)
    before = mapped.store.take(np.arange(50))
    mapped.store.release()
    np.testing.assert_array_equal(mapped.store.take(np.arange(50)), before)
    np.testing.assert_array_equal(before, memory.images.numpy())


def test_mapped_batches_and_subsets_equal_the_in_memory_set(tmp_path: Path) -> None:
    mapped, memory = _sets(tmp_path)
    index = torch.tensor([4, 0, 4, 31])
    for a, b in ((mapped, memory), (mapped.subset([5, 9, 40, 41]), memory.subset([5, 9, 40, 41]))):
        x, y = a.batch(index[index < len(a)])
        want_x, want_y = b.batch(index[index < len(b)])
        assert x.dtype == torch.float32 and torch.equal(x, want_x) and torch.equal(y, want_y)
        assert torch.equal(a.images, b.images) and torch.equal(a.snr_db, b.snr_db)
        assert a.shape == b.shape == (2, 4, 4) and len(a) == len(b)
    nested = mapped.subset(np.arange(10, 30)).subset(torch.tensor([0, 19]))
    np.testing.assert_array_equal(nested.rows, [10, 29])


def test_join_sets_stays_on_disk_for_one_store_and_joins_in_memory_otherwise(tmp_path) -> None:
    mapped, memory = _sets(tmp_path)
    joined = join_sets([mapped.subset([3, 1]), mapped.subset([7])])
    assert isinstance(joined, MappedImageSet)
    np.testing.assert_array_equal(joined.rows, [3, 1, 7])
    mixed = join_sets([mapped.subset([3, 1]), memory.subset([7])])
    assert not isinstance(mixed, MappedImageSet)
    assert torch.equal(mixed.images, memory.images[[3, 1, 7]])
    assert torch.equal(mixed.labels, memory.labels[[3, 1, 7]])


def test_a_pickled_set_reopens_its_file(tmp_path: Path) -> None:
    mapped, memory = _sets(tmp_path)
    back = pickle.loads(pickle.dumps(mapped.subset([2, 8])))
    assert back.store.path == tmp_path / "s.npy" and back.store is not mapped.store
    assert torch.equal(back.images, memory.images[[2, 8]])


def test_a_temporary_store_leaves_no_file_behind(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    store = temporary_store(50, [_images()])
    assert list(tmp_path.iterdir()) == [] and store.path is None
    np.testing.assert_array_equal(store.take(np.arange(50)), _images())
    back = pickle.loads(pickle.dumps(store))  # no file to reopen: its bytes travel
    np.testing.assert_array_equal(back.take(np.array([1])), _images()[[1]])


def _child_sum(data: MappedImageSet, queue) -> None:
    queue.put(float(data.batch(torch.arange(len(data)))[0].sum()))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is Linux's")
def test_forked_workers_read_the_inherited_map(tmp_path: Path) -> None:
    mapped, memory = _sets(tmp_path)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_sum, args=(mapped.subset(np.arange(10, 40)), queue))
    child.start()
    got = queue.get(timeout=60)
    child.join(60)
    assert got == pytest.approx(
        float(memory.subset(np.arange(10, 40)).batch(torch.arange(30))[0].sum())
    )
