"""Vet a SigMF archive before sigmf-python opens it: member names, types and sizes.

sigmf-python (1.x) never extracts: it reads the metadata and data members into memory
(compressed archives) or memory-maps the data inside the tar (``.sigmf``), skipping anything
that is not a regular file. That is safe from path traversal but not from bombs: a few-MB
``.sigmf.gz`` can declare gigabytes, and tarfile itself reads long-name and pax headers
whole. So the archive is scanned here first, as a stream that may not unpack more than the
input budget, and refused if any member
* has an absolute name or a ``..`` component (a name meant to escape an extraction folder),
* is a symbolic or hard link, a device, a FIFO or a sparse file (no link is ever followed),
* or if the members claim more than the budget, or there is not exactly one metadata member.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from ..errors import DataError
from .budget import check_budget, exceeded, input_budget
from .sigmf_checks import SHORT

#: Members a SigMF archive may hold (a folder, its metadata and data, a few extras).
MAX_MEMBERS = 1000
_MAGIC = {b"\x1f\x8b": "gzip", b"\xfd7zXZ": "xz", b"BZh": "bzip2"}
_OPENERS: dict[str, Callable[[BinaryIO], BinaryIO]] = {
    "gzip": lambda raw: gzip.GzipFile(fileobj=raw),
    "xz": lzma.LZMAFile,
    "bzip2": bz2.BZ2File,
}
SCAN_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    ValueError,
)


class _OverBudget(Exception):
    """The stream unpacked more bytes than the input budget."""


class _Capped:
    """A decompressed stream that fails once more than ``limit`` bytes have come out of it."""

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self.raw, self.limit, self.count = raw, limit, 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or self.count + n > self.limit:
            n = self.limit - self.count + 1  # read just past the limit, never more
        data = self.raw.read(n)
        self.count += len(data)
        if self.count > self.limit:
            raise _OverBudget
        return data


class _Bounded:
    """A tar file whose header reads may not claim more than it holds or than the budget.

    Data is seeked over; Python allocates a read's size before reading.
    """

    def __init__(self, raw: BinaryIO, size: int, limit: int) -> None:
        self.raw, self.size, self.limit = raw, size, limit

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.raw.tell()
        if n is not None and n > max(left, tarfile.BLOCKSIZE):
            raise tarfile.ReadError(f"a header claims {n} bytes but only {left} remain")
        if n is not None and n > self.limit:
            raise _OverBudget
        return self.raw.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()


def _bad_name(name: str) -> str | None:
    """Why ``name`` could escape an extraction folder, or None."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute name"
    if ".." in parts:
        return "climbs out of the archive with '..'"
    return None


def _refuse(path: Path, member: str, problem: str) -> None:
    raise DataError(path, f"refused archive member {SHORT.repr(member)}: it {problem}")


def _tar_member(path: Path, info: tarfile.TarInfo) -> None:
    """Name and type of one tar member."""
    problem = _bad_name(info.name)
    if problem:
        _refuse(path, info.name, problem)
    if info.issym() or info.islnk():
        kind = "a symbolic link" if info.issym() else "a hard link"
        _refuse(
            path,
            info.name,
            f"is {kind} (to {SHORT.repr(info.linkname)}); fedsb never follows links",
        )
    if info.issparse() or not (info.isfile() or info.isdir()):
        _refuse(path, info.name, "is not a regular file or folder (a device, FIFO or sparse file)")


def _check_metas(path: Path, names: list[str]) -> None:
    metas = [n for n in names if n.endswith(".sigmf-meta")]
    if not metas:
        raise DataError(path, "archive holds no .sigmf-meta member (no recording in it)")
    if len(metas) > 1:
        raise DataError(path, f"archive holds {len(metas)} .sigmf-meta members; fedsb reads one")


def _scan_tar(path: Path, stream: Any, streaming: bool, in_memory: bool) -> None:
    """Every member header, in one pass (a decompressed stream is never seeked back).

    ``in_memory``: sigmf-python will load the members (compressed archives), so their
    total counts against the budget; otherwise only the metadata is loaded.
    """
    names: list[str] = []
    total = 0
    with tarfile.open(fileobj=stream, mode="r|" if streaming else "r:") as archive:
        for info in archive:
            if len(names) >= MAX_MEMBERS:
                raise DataError(path, f"archive has more than {MAX_MEMBERS} members")
            _tar_member(path, info)
            names.append(info.name)
            if info.name.endswith(".sigmf-meta"):
                check_budget(path, info.size, f"archive member {SHORT.repr(info.name)}")
            total += info.size
            if in_memory:  # checked before the member's data is unpacked
                check_budget(path, total, "the archive's members", verb="unpack to")
    _check_metas(path, names)


def _scan_zip(path: Path) -> None:
    names, total = [], 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if len(names) >= MAX_MEMBERS:
                raise DataError(path, f"archive has more than {MAX_MEMBERS} members")
            problem = _bad_name(info.filename)
            if problem:
                _refuse(path, info.filename, problem)
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix file type recorded
            if kind == stat.S_IFLNK:
                _refuse(path, info.filename, "is a symbolic link; fedsb never follows links")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                _refuse(path, info.filename, "is not a regular file or folder")
            names.append(info.filename)
            total += info.file_size
            check_budget(path, total, "the archive's members", verb="unpack to")
    _check_metas(path, names)


def check_archive(path: Path) -> None:
    """DataError unless ``path`` is a safe, within-budget SigMF archive (see module doc)."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return _scan_zip(path)
    with open(path, "rb") as raw:
        head = raw.read(6)
        raw.seek(0)
        kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)
        if kind is not None and name.endswith(".sigmf"):
            raise DataError(path, f"a .sigmf archive is an uncompressed tar, this one is {kind}")
        budget = input_budget()
        try:
            if kind is None:
                bounded = _Bounded(raw, path.stat().st_size, budget)
                in_memory = not name.endswith(".sigmf")
                return _scan_tar(path, bounded, streaming=False, in_memory=in_memory)
            with _OPENERS[kind](raw) as unpacked:
                return _scan_tar(path, _Capped(unpacked, budget), streaming=True, in_memory=True)
        except _OverBudget:
            raise exceeded(path, "the archive unpacks to") from None


#: Names of SigMF archives: a tar, or a compressed one.
ARCHIVE_SUFFIXES: tuple[str, ...] = (".sigmf", ".sigmf.gz", ".sigmf.xz", ".sigmf.zip")


def is_archive(path: Path) -> bool:
    """True for ``.sigmf`` (and compressed ``.sigmf.*``) archive names."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def find_recordings(directory: Path) -> list[Path]:
    """Every SigMF recording under ``directory`` (recursive, sorted, hidden files skipped)."""
    found = [
        p
        for p in directory.rglob("*")
        if p.is_file()
        and (p.name.lower().endswith(".sigmf-meta") or is_archive(p))
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    ]
    return sorted(found)
