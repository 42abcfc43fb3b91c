"""Images on disk: a uint8 (N, C, H, W) .npy file written chunk by chunk, read memory-mapped.

The images of an RML2018-sized file (2.5 M records x 8 KB) do not fit in memory. They are
written with plain sequential writes (no dirty mapped pages) and read back through a read-only
memory map, one batch at a time. Mapped pages a process has touched count in its resident
memory although the kernel may drop them at will, and one fault maps more than the record
read (fault-around maps 64 KB of cached neighbours, a large folio more): random 8 KB reads can
map 8x what they read. So the process's resident file-backed memory is watched
(``/proc/self/statm``; elsewhere the bytes read stand for it) and once it has grown by
:data:`RELEASE_BYTES` the map's pages are handed back (``MADV_DONTNEED``; they stay in the
page cache): resident memory stays bounded however many epochs run.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

from ..errors import DataError
from ..io.cache import atomic_file

#: Bytes read through a map before its pages are handed back to the kernel.
RELEASE_BYTES = 128 * 2**20
_HEADERS = {(1, 0): npformat.read_array_header_1_0, (2, 0): npformat.read_array_header_2_0}
_PAGE = mmap.PAGESIZE


def resident_file_bytes() -> int | None:
    """File-backed resident memory of this process (statm "shared"), or None where unknown."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[2]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


class ImageStore:
    """A read-only uint8 (N, C, H, W) array, memory-mapped from ``path`` (or in memory).

    ``take`` copies rows out, so callers never hold a view of the map. Pickling reopens the
    file by its path (a temporary, already deleted store is pickled as its bytes).
    """

    def __init__(
        self, array: np.ndarray, path: Path | None = None, mapping: mmap.mmap | None = None
    ):
        self.array = array
        self.path = path
        self._mapping = mapping
        self._touched = 0
        self._baseline = resident_file_bytes() if mapping is not None else None

    @property
    def shape(self) -> tuple[int, ...]:
        """(N, C, H, W)."""
        return tuple(self.array.shape)

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def take(self, rows: np.ndarray) -> np.ndarray:
        """A copy of the images at ``rows`` (any order, repeats allowed)."""
        out = self.array[np.asarray(rows, dtype=np.int64)]
        if self._mapping is not None and self._growth(out.nbytes) >= RELEASE_BYTES:
            self.release()
        return out

    def _growth(self, nbytes: int) -> int:
        """Bytes the map may hold resident since the last release: read, or measured if more."""
        self._touched += nbytes
        now = resident_file_bytes()
        if now is None or self._baseline is None:
            return self._touched
        return max(self._touched, now - self._baseline)

    def release(self) -> None:
        """Hand the map's resident pages back to the kernel (the data stay readable)."""
        self._touched = 0
        if self._mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
            with contextlib.suppress(OSError):
                self._mapping.madvise(mmap.MADV_DONTNEED)
        self._baseline = resident_file_bytes()

    def __reduce__(self):
        if self.path is not None and self.path.exists():
            return open_store, (self.path,)
        return ImageStore, (np.array(self.array),)

    def __repr__(self) -> str:
        return f"ImageStore({self.shape}, path={self.path})"


def _header(path: Path, handle) -> tuple[tuple[int, ...], int]:
    """(shape, data offset) of a uint8 C-order .npy file; DataError if it is not one."""
    version = npformat.read_magic(handle)
    if version not in _HEADERS:
        raise DataError(path, f"unsupported .npy format version {version}")
    shape, fortran, dtype = _HEADERS[version](handle)
    if dtype != np.uint8 or fortran or len(shape) != 4:
        raise DataError(path, f"not a uint8 (N, C, H, W) image array: {dtype} {shape}")
    return tuple(int(s) for s in shape), handle.tell()


def open_store(path: str | Path) -> ImageStore:
    """The images of ``path``, memory-mapped read-only.

    A file whose size is not what its header claims (a torn or damaged write) is a DataError.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            shape, offset = _header(path, handle)
            size = os.fstat(handle.fileno()).st_size
            count = math.prod(shape)
            if size != offset + count:
                raise DataError(
                    path, f"holds {size - offset:,} image bytes, its header claims {count:,}"
                )
            mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"not a readable image file ({' '.join(str(exc).split())})") from exc
    array = np.frombuffer(mapping, dtype=np.uint8, count=count, offset=offset).reshape(shape)
    return ImageStore(array, path, mapping)


def write_store(path: Path, n: int, chunks: Iterable[np.ndarray]) -> None:
    """Write ``n`` images, given in uint8 chunks of (m, C, H, W), atomically to ``path``.

    The header needs the image shape, so it is written with the first chunk.
    """
    if n <= 0:
        raise ValueError("an image store needs at least one image")
    written = 0
    with atomic_file(path, ".npy") as handle:
        for chunk in chunks:
            if written == 0:
                header = {"descr": "|u1", "fortran_order": False, "shape": (n, *chunk.shape[1:])}
                npformat.write_array_header_2_0(handle, header)
            if chunk.dtype != np.uint8 or written + len(chunk) > n:
                raise ValueError(f"chunk {chunk.dtype} {chunk.shape} after {written} of {n}")
            handle.write(np.ascontiguousarray(chunk).data)
            written += len(chunk)
        if written != n:
            raise ValueError(f"{written} images written, {n} expected")


def temporary_store(n: int, chunks: Iterable[np.ndarray]) -> ImageStore:
    """A store in a temporary file, deleted at once (the map keeps it until the process ends)."""
    handle, name = tempfile.mkstemp(prefix="fedsb-images-", suffix=".npy")
    os.close(handle)
    path = Path(name)
    try:
        write_store(path, n, chunks)
        store = open_store(path)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    store.path = None
    return store


__all__ = [
    "RELEASE_BYTES",
    "ImageStore",
    "open_store",
    "resident_file_bytes",
    "temporary_store",
    "write_store",
]
