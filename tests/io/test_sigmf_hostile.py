"""Hostile SigMF: archive members, deep or huge metadata, meta dtypes, overlapping labels."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fedsb.errors import DataError
from fedsb.io import read_sigmf, write_sigmf
from fedsb.io.sigmf_archive import MAX_MEMBERS
from fedsb.io.sigmf_checks import Span, check_overlaps

L = 16


def _ann(start: int, count: int | None, label: str = "bpsk", **extra) -> dict:
    ann = {"core:sample_start": start, "core:label": label, **extra}
    return ann if count is None else {**ann, "core:sample_count": count}


def _signal(n: int) -> np.ndarray:
    return np.exp(1j * np.arange(n) / 5).astype(np.complex64)


def _members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """(header, payload) of every member of a tar written by write_sigmf."""
    with tarfile.open(archive) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


def _tar(path: Path, members, mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, payload in members:
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _good(tmp_path: Path, make_records, n: int = 4):
    """A written archive's records and its members: [folder, metadata, data]."""
    records = make_records(n=n, length=L)
    members = _members(write_sigmf(records, tmp_path / "src" / "rec.sigmf"))
    order = ("", ".sigmf-meta", ".sigmf-data")
    members.sort(key=lambda m: order.index(Path(m[0].name).suffix))
    assert [m[0].isdir() for m in members] == [True, False, False]
    return records, members


# ------------------------------------------------------------------------------ archives
@pytest.mark.parametrize("suffix", [".sigmf.gz", ".sigmf.xz", ".sigmf.zip"])
def test_compressed_archives_still_read_exactly(tmp_path, make_records, same, suffix) -> None:
    records, members = _good(tmp_path, make_records)
    path = tmp_path / f"rec{suffix}"
    if suffix == ".sigmf.zip":
        with zipfile.ZipFile(path, "w") as archive:
            for info, payload in members:
                if payload is not None:
                    archive.writestr(info.name, payload)
    else:
        _tar(path, members, "w:gz" if suffix.endswith("gz") else "w:xz")
    same(records, read_sigmf(path, L))


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (
            "../../escaped/rec.sigmf-meta",
            r"refused archive member '\.\./\.\./escaped/rec\.sigmf-"
            r"meta': it climbs out of the archive with '\.\.'",
        ),
        ("rec/../../x.sigmf-meta", "climbs out of the archive"),
        ("/etc/rec.sigmf-meta", "refused archive member '/etc/rec.sigmf-meta': it has an absolute"),
        ("C:/rec.sigmf-meta", "has an absolute name"),
    ],
)
@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_escaping_names_are_refused(tmp_path, make_records, data_error, name, problem, mode):
    _, members = _good(tmp_path, make_records)
    members[1][0].name = name  # [0] is the folder, [1] the metadata
    path = _tar(tmp_path / ("bad.sigmf" if mode == "w" else "bad.sigmf.gz"), members, mode)
    with data_error(path, problem):
        read_sigmf(path, L)
    assert not (tmp_path.parent / "escaped").exists()


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        (tarfile.SYMTYPE, r"is a symbolic link \(to '.*secret'\); fedsb never follows links"),
        (tarfile.LNKTYPE, r"is a hard link \(to '.*secret'\); fedsb never follows links"),
        (tarfile.CHRTYPE, "is not a regular file or folder"),
        (tarfile.FIFOTYPE, "is not a regular file or folder"),
    ],
)
def test_links_and_devices_are_refused(tmp_path, make_records, data_error, kind, problem) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(_signal(4 * L).tobytes())  # a link to it would read as valid samples
    _, members = _good(tmp_path, make_records)
    data = members[2][0]
    link = tarfile.TarInfo(data.name)
    link.type, link.linkname = kind, str(secret)
    path = _tar(tmp_path / "link.sigmf", [*members[:2], (link, None)])
    with data_error(path, f"refused archive member '{data.name}': it " + problem):
        read_sigmf(path, L)


def test_zip_symlinks_and_escapes_are_refused(tmp_path, make_records, data_error) -> None:
    _, members = _good(tmp_path, make_records)
    path = tmp_path / "link.sigmf.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(members[1][0].name, members[1][1])
        link = zipfile.ZipInfo(members[2][0].name)
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    with data_error(path, "is a symbolic link; fedsb never follows links"):
        read_sigmf(path, L)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../" + members[1][0].name, members[1][1])
    with data_error(path, "climbs out of the archive"):
        read_sigmf(path, L)


def test_archive_structure_problems(tmp_path, make_records, data_error) -> None:
    _, members = _good(tmp_path, make_records)
    meta = members[1]
    twice = (tarfile.TarInfo("other/other.sigmf-meta"), meta[1])
    path = _tar(tmp_path / "two.sigmf", [*members, twice])
    with data_error(path, "archive holds 2 .sigmf-meta members; fedsb reads one"):
        read_sigmf(path, L)
    path = _tar(tmp_path / "empty.sigmf", [])
    with data_error(path, r"archive holds no \.sigmf-meta member"):
        read_sigmf(path, L)
    many = [(tarfile.TarInfo(f"f{i}"), b"") for i in range(MAX_MEMBERS + 1)]
    path = _tar(tmp_path / "many.sigmf.gz", many, "w:gz")
    with data_error(path, f"archive has more than {MAX_MEMBERS} members"):
        read_sigmf(path, L)
    raw = _tar(tmp_path / "plain.sigmf", members).read_bytes()
    path = tmp_path / "zipped.sigmf"
    path.write_bytes(gzip.compress(raw))
    with data_error(path, "a .sigmf archive is an uncompressed tar, this one is gzip"):
        read_sigmf(path, L)


def test_over_budget_archives(tmp_path, make_records, data_error, budget) -> None:
    _, members = _good(tmp_path, make_records, n=256)
    meta, data = len(members[1][1]), len(members[2][1])
    path = _tar(tmp_path / "rec.sigmf.xz", members, "w:xz")  # read into memory: all counts
    budget(str(meta + data // 2))
    total = (meta + data) / 1000
    with data_error(path, rf"the archive's members unpack to {total:.1f} kB, over the"):
        read_sigmf(path, L)
    path = _tar(tmp_path / "rec.sigmf", members)  # memory-mapped: only the metadata counts
    budget(str(meta + 10))
    assert len(read_sigmf(path, L)) == 256
    budget(str(meta - 10))
    with data_error(path, rf"archive member 'rec/rec.sigmf-meta' claims {meta:,} bytes, over"):
        read_sigmf(path, L)


def _pax_claim(nbytes: int) -> bytes:
    """A pax extended header claiming ``nbytes`` of header data (tarfile reads it whole)."""
    pax = tarfile.TarInfo("rec.sigmf-meta")
    pax.type, pax.size = tarfile.XHDTYPE, nbytes
    return pax.tobuf(tarfile.GNU_FORMAT)


def test_a_lying_stream_is_capped_at_the_budget(tmp_path, data_error, budget) -> None:
    path = tmp_path / "pax.sigmf.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(_pax_claim(10**12) + bytes(3 * 2**20))
    budget("1M")
    problem = r"the archive unpacks to more than the 1\.0 MB input budget; set FEDSB_INPUT_BUDGET"
    with data_error(path, problem + " above 1M to raise it"):
        read_sigmf(path, L)


def test_uncompressed_header_claims_are_bounded(tmp_path, data_error, budget) -> None:
    path = tmp_path / "pax.sigmf"
    path.write_bytes(_pax_claim(10**12) + bytes(4096))
    with data_error(path, "cannot read SigMF recording: a header claims 10000000000.. bytes"):
        read_sigmf(path, L)
    path.write_bytes(_pax_claim(2 * 2**20) + bytes(2 * 2**20 + 1024))
    budget("1M")
    with data_error(path, r"the archive unpacks to more than the 1\.0 MB input budget"):
        read_sigmf(path, L)


# ------------------------------------------------------------------------------ metadata
def test_deep_and_huge_metadata(tmp_path, write_raw_sigmf, data_error, budget) -> None:
    deep = '{"global": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = write_raw_sigmf(_signal(L), meta_text=deep)
    with data_error(path, r"metadata nests deeper than Python's recursion limit \(\d+ levels\)"):
        read_sigmf(path, L)
    deep = '{"global": {"core:datatype": "cf32_le", "x": ' + "[" * 100_000 + "]" * 100_000
    deep += '}, "annotations": [' + json.dumps(_ann(0, L)) + "]}"
    members = [(tarfile.TarInfo("r/r.sigmf-meta"), deep.encode())]
    members.append((tarfile.TarInfo("r/r.sigmf-data"), _signal(L).tobytes()))
    path = _tar(tmp_path / "deep.sigmf", members)
    with data_error(path, r"metadata nests deeper than Python's recursion limit"):
        read_sigmf(path, L)
    path = write_raw_sigmf(_signal(L), [_ann(0, L)], **{"core:description": "x" * 3000})
    budget("2k")
    with data_error(path, r"the metadata file is 3\.\d kB, over the 2\.0 kB input budget"):
        read_sigmf(path, L)


def test_windows_are_checked_against_the_budget(write_raw_sigmf, data_error, budget) -> None:
    path = write_raw_sigmf(_signal(10_000), [_ann(0, 10_000)])
    budget("1M")
    assert len(read_sigmf(path, 1000)) == 10  # 80 kB
    problem = r"the labelled spans claim 72\.0 MB \(9,001,000 complex64 samples\), over the 1\.0 MB"
    with data_error(path.with_suffix(".sigmf-data"), problem):
        read_sigmf(path, 1000, hop=1)


@pytest.mark.parametrize(
    ("dtypes", "value", "problem"),
    [
        (
            {"snr_db": "int8"},
            1e6,
            r"fedsb:snr_db value 1000000\.0 does not fit its declared "
            r"dtype int8 \(fedsb:meta_dtypes\)",
        ),
        ({"x": "int16"}, 2.5, "fedsb:x value 2.5 does not fit its declared dtype int16"),
        ({"x": "uint8"}, -1, "fedsb:x value -1 does not fit its declared dtype uint8"),
        ({"x": "bool"}, 2, "fedsb:x value 2 does not fit its declared dtype bool"),
        ({"x": "float32"}, 1e39, "fedsb:x value 1e\\+39 does not fit its declared dtype float32"),
        ({"x": "int64"}, "nan", "fedsb:x value nan does not fit its declared dtype int64"),
        ({"x": "<U0"}, 1, r"fedsb:meta_dtypes gives 'x' the dtype '<U0'; expected a numeric"),
        ({"x": "object"}, 1, "fedsb:meta_dtypes gives 'x' the dtype 'object'"),
        ({"x": 17}, 1, "fedsb:meta_dtypes gives 'x' the dtype 17"),
        ({"x": "f8,i4"}, 1, "fedsb:meta_dtypes gives 'x' the dtype 'f8,i4'"),
        ({"x": "(2,)f4"}, 1, r"fedsb:meta_dtypes gives 'x' the dtype '\(2,\)f4'"),
        ({"x": "no-such-dtype"}, 1, "fedsb:meta_dtypes gives 'x' the dtype 'no-such-dtype'"),
        (["int8"], 1, "fedsb:meta_dtypes must be an object mapping meta keys to dtypes"),
        ({}, 10**400, "fedsb:x has a value too large for a float"),
    ],
)
def test_meta_dtype_garbage(write_raw_sigmf, data_error, dtypes, value, problem) -> None:
    key = "snr_db" if "snr_db" in dtypes else "x"
    ann = [_ann(0, L, **{f"fedsb:{key}": value})]
    text = json.dumps(
        {
            "global": {"core:datatype": "cf32_le", "fedsb:meta_dtypes": dtypes},
            "captures": [{"core:sample_start": 0}],
            "annotations": ann,
        }
    )
    path = write_raw_sigmf(_signal(L), meta_text=text.replace('"1' + "0" * 400, "1" + "0" * 400))
    with data_error(path, problem):
        read_sigmf(path, L)


def test_meta_values_that_fit_take_the_declared_dtype(write_raw_sigmf) -> None:
    ann = [
        _ann(0, L, **{"fedsb:n": 3, "fedsb:f": 0.1, "fedsb:b": True, "fedsb:big": 2**70}),
        _ann(L, L, **{"fedsb:n": -4, "fedsb:f": "inf", "fedsb:b": False, "fedsb:big": 1}),
    ]
    dtypes = {"n": "int16", "f": "float32", "b": "bool"}
    records = read_sigmf(write_raw_sigmf(_signal(2 * L), ann, **{"fedsb:meta_dtypes": dtypes}), L)
    assert records.meta["n"].dtype == np.int16 and records.meta["n"].tolist() == [3, -4]
    assert records.meta["f"].dtype == np.float32
    assert records.meta["f"].tolist() == [np.float32(0.1), np.inf]
    assert records.meta["b"].dtype == np.bool_ and records.meta["b"].tolist() == [True, False]
    assert records.meta["big"].dtype == np.float64 and records.meta["big"][0] == 2.0**70


# ------------------------------------------------------------------------------ overlaps
def test_overlapping_different_labels_are_refused(write_raw_sigmf, data_error) -> None:
    anns = [_ann(1000, 500, "bpsk"), _ann(0, 100, "qpsk"), _ann(200, 10, "qpsk")]
    path = write_raw_sigmf(_signal(2000), [*anns, _ann(1200, 300, "QPSK"), _ann(1600, 9)])
    problem = (
        r"annotations 0 \('bpsk'\) and 3 \('QPSK'\) overlap at samples 1200-1500 with "
        r"different labels; fedsb refuses contradictory windows"
    )
    with data_error(path, problem):
        read_sigmf(path, L)
    chain = [_ann(0, 100), _ann(50, 100), _ann(140, 60, "qpsk")]  # the second reaches furthest
    path = write_raw_sigmf(_signal(200), chain)
    with data_error(path, r"annotations 1 \('bpsk'\) and 2 \('qpsk'\) overlap at samples 140-150"):
        read_sigmf(path, L)
    touching = [_ann(0, 100), _ann(100, 100, "qpsk")]
    assert len(read_sigmf(write_raw_sigmf(_signal(200), touching), L)) == 12


def test_overlaps_with_one_class_are_allowed(write_raw_sigmf) -> None:
    anns = [_ann(0, 4 * L, "QAM16"), _ann(L, 2 * L, "16qam"), _ann(4 * L, L, "bpsk")]
    records = read_sigmf(write_raw_sigmf(_signal(5 * L), anns), L)
    assert records.label_names.tolist() == ["16qam"] * 6 + ["bpsk"]


def test_unknown_spans_dropped_by_skip_unknown_take_no_part(write_raw_sigmf) -> None:
    anns = [_ann(0, 4 * L, "noise-floor"), _ann(L, L, "bpsk")]
    records = read_sigmf(write_raw_sigmf(_signal(4 * L), anns), L, skip_unknown=True)
    assert records.label_names.tolist() == ["bpsk"]


def _brute_force(spans: list[Span]) -> bool:
    return any(
        a.name != b.name and max(a.start, b.start) < min(a.end, b.end)
        for a, b in itertools.combinations(spans, 2)
    )


@pytest.mark.parametrize("seed", range(40))
def test_the_sweep_agrees_with_checking_every_pair(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    starts = rng.integers(0, 100, n)
    spans = [
        Span(int(s), int(s + rng.integers(0, 25)), i, str(rng.choice(["a", "b", "c"])), "x")
        for i, s in enumerate(starts)
    ]
    if _brute_force(spans):
        with pytest.raises(DataError, match="overlap at samples"):
            check_overlaps(spans, Path("r"))
    else:
        check_overlaps(spans, Path("r"))
