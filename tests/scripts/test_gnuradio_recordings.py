"""scripts/gnuradio_recordings.py: GNU Radio recordings that fedsb must read as foreign data.

The script runs under the system Python that has GNU Radio; without it these tests skip.
Signal checks use an independent reference: the noise floor measured in the gaps between
bursts, against the site's noise voltage and the annotated SNRs.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fedsb.io.labels import RML2016_NAMES, canonical_label
from fedsb.io.load import load_records
from fedsb.signals.classes import RML2016_CLASSES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gnuradio_recordings.py"
PYTHON = "/usr/bin/python3"
LENGTH = 256
SNR = (-5.0, 15.0)
SITE_ARGS = ("--sites", 2, "--bursts-per-class", 2, "--length", LENGTH, "--snr", "-5:15")


def _has_gnuradio() -> bool:
    try:
        probe = subprocess.run([PYTHON, "-c", "import gnuradio"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _has_gnuradio(), reason="no GNU Radio for /usr/bin/python3")


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300
    )


def generate(*args: object) -> str:
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Three site runs (seed 7 with 2 jobs and with 1 job, seed 8), a test and a bursts run."""
    root = tmp_path_factory.mktemp("gnuradio")
    runs = {
        "a": ("sites", *SITE_ARGS, "--seed", 7, "--jobs", 2),
        "b": ("sites", *SITE_ARGS, "--seed", 7, "--jobs", 1),
        "c": ("sites", *SITE_ARGS, "--seed", 8),
        "test": ("test", "--bursts-per-class", 2, "--length", LENGTH, "--snr", "-5:15"),
        "bursts": ("bursts", "--bursts", 12, "--length", LENGTH, "--snr", "0:20", "--seed", 3),
    }
    return {k: (root / k, generate(a[0], "--out", root / k, *a[1:])) for k, a in runs.items()}


def read(meta_path: Path) -> tuple[dict, np.ndarray]:
    meta = json.loads(meta_path.read_text())
    return meta, np.fromfile(meta_path.with_suffix(".sigmf-data"), dtype="<c8")


def noise_floor(iq: np.ndarray, spans: list[tuple[int, int]]) -> float:
    """Mean power outside the bursts: the gaps hold noise only."""
    gap = np.ones(len(iq), bool)
    for start, count in spans:
        gap[start : start + count] = False
    return float(np.mean(np.abs(iq[gap]) ** 2))


def spans_of(meta: dict) -> list[tuple[int, int]]:
    return [(a["core:sample_start"], a["core:sample_count"]) for a in meta["annotations"]]


def test_one_directory_per_site_with_its_own_hardware(out) -> None:
    root, stdout = out["a"]
    metas = sorted(root.rglob("*.sigmf-meta"))
    assert [m.relative_to(root).as_posix() for m in metas] == [
        "site0/site0_00.sigmf-meta",
        "site1/site1_00.sigmf-meta",
    ]
    hws = []
    for i, path in enumerate(metas):
        meta, iq = read(path)
        glob = meta["global"]
        assert glob["core:datatype"] == "cf32_le"
        assert glob["core:version"] == "1.0.0"
        assert glob["core:recorder"] == "gnuradio"
        assert glob["core:sample_rate"] == 200e3
        assert re.fullmatch(rf"site{i}-[a-z0-9-]+", glob["core:hw"])
        data = path.with_suffix(".sigmf-data").read_bytes()
        assert glob["core:sha512"] == hashlib.sha512(data).hexdigest()
        assert meta["captures"][0]["core:sample_start"] == 0
        assert re.search(rf"{re.escape(str(path))}: 22 bursts, {len(iq)} samples, ", stdout)
        hws.append(glob["core:hw"])
    assert len(set(hws)) == 2


def test_bursts_and_gaps_tile_the_data_file(out) -> None:
    for path in sorted(out["a"][0].rglob("*.sigmf-meta")):
        meta, iq = read(path)
        pos, gaps = 0, []
        for i, ann in enumerate(meta["annotations"]):
            gaps.append(ann["core:sample_start"] - pos)
            pos = ann["core:sample_start"] + ann["core:sample_count"]
            assert ann["core:sample_count"] in (2 * LENGTH, 3 * LENGTH, 4 * LENGTH)
            assert ann["core:label"] in RML2016_NAMES
            assert canonical_label(ann["core:label"]) in RML2016_CLASSES
            assert SNR[0] <= ann["capture_details:SNRdB"] <= SNR[1]
            assert ann["capture_details:signal_reference_number"] == i
        gaps.append(len(iq) - pos)
        assert min(gaps) >= LENGTH // 8
        counts = sum(a["core:sample_count"] for a in meta["annotations"])
        assert len(iq) == counts + sum(gaps)


def test_sites_differ_in_noise_floor_and_class_mix(out) -> None:
    floors, mixes = [], []
    for path in sorted(out["a"][0].rglob("*.sigmf-meta")):
        meta, iq = read(path)
        floors.append(noise_floor(iq, spans_of(meta)))
        mixes.append(Counter(a["core:label"] for a in meta["annotations"]))
    # site0 (usrp-b210) has noise voltage 0.01, site1 (rtl-sdr-v3) 0.05: power 1e-4 vs 25e-4
    assert floors[0] == pytest.approx(1e-4, rel=0.1)
    assert floors[1] == pytest.approx(25e-4, rel=0.1)
    assert mixes[0] != mixes[1]
    assert sum(mixes[0].values()) == sum(mixes[1].values()) == 22


def test_annotated_snr_matches_the_samples_on_the_line_of_sight_site(out) -> None:
    meta, iq = read(out["a"][0] / "site0" / "site0_00.sigmf-meta")
    floor = noise_floor(iq, spans_of(meta))
    errors = []
    for ann in meta["annotations"]:
        start, count = ann["core:sample_start"], ann["core:sample_count"]
        ratio = np.mean(np.abs(iq[start : start + count]) ** 2) / floor - 1
        errors.append(10 * np.log10(max(ratio, 1e-3)) - ann["capture_details:SNRdB"])
    assert abs(np.mean(errors)) < 0.5
    assert np.max(np.abs(errors)) < 2.5


def test_bursts_start_and_end_where_annotated(out) -> None:
    meta, iq = read(out["a"][0] / "site0" / "site0_00.sigmf-meta")
    floor = noise_floor(iq, spans_of(meta))
    edge = LENGTH // 8  # the shortest gap
    loud = [a for a in meta["annotations"] if a["capture_details:SNRdB"] >= 5]
    assert loud
    for ann in loud:
        start, end = ann["core:sample_start"], ann["core:sample_start"] + ann["core:sample_count"]
        windows = (
            (start - edge, start),
            (start, start + edge),
            (end - edge, end),
            (end, end + edge),
        )
        power = [np.mean(np.abs(iq[a:b]) ** 2) / floor for a, b in windows]
        assert power[0] < 2 and power[3] < 2, (ann, power)
        assert power[1] > 3 and power[2] > 3, (ann, power)


def test_a_seed_gives_the_same_bytes_whatever_the_jobs(out) -> None:
    def files(key: str) -> dict[str, bytes]:
        root = out[key][0]
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.sigmf-*")}

    a, b, c = files("a"), files("b"), files("c")
    assert len(a) == 4
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)


def test_fedsb_reads_every_site_window(out) -> None:
    for path in sorted(out["a"][0].glob("site*")):
        meta, _ = read(next(path.glob("*.sigmf-meta")))
        expected = Counter()
        for ann in meta["annotations"]:
            expected[canonical_label(ann["core:label"])] += ann["core:sample_count"] // LENGTH
        records = load_records(path, length=LENGTH)
        assert set(records.class_names) <= set(RML2016_CLASSES)
        found = Counter(records.class_names[i] for i in records.labels)
        assert found == expected


def test_test_mode_is_one_balanced_recording_of_its_own(out) -> None:
    root, stdout = out["test"]
    assert sorted(p.name for p in root.iterdir()) == ["test.sigmf-data", "test.sigmf-meta"]
    meta, iq = read(root / "test.sigmf-meta")
    assert meta["global"]["core:hw"] not in {"site0-usrp-b210", "site1-rtl-sdr-v3"}
    labels = Counter(a["core:label"] for a in meta["annotations"])
    assert labels == dict.fromkeys(RML2016_NAMES, 2)
    ends = [s + c for s, c in spans_of(meta)]
    assert max(ends) < len(iq)
    assert all(SNR[0] <= a["capture_details:SNRdB"] <= SNR[1] for a in meta["annotations"])
    assert f": 22 bursts, {len(iq)} samples, " in stdout


def test_bursts_mode_keeps_the_truth_out_of_the_metadata(out) -> None:
    root, _ = out["bursts"]
    meta, iq = read(root / "bursts.sigmf-meta")
    assert meta["annotations"] == []
    truth = json.loads((root / "truth.json").read_text())
    assert truth["recording"] == "bursts.sigmf-meta"
    assert truth["samples"] == len(iq)
    bursts = truth["bursts"]
    assert len(bursts) == 12
    pos = 0
    for burst in bursts:
        assert burst["start"] - pos >= LENGTH // 2  # a noise gap before every burst
        assert LENGTH <= burst["count"] <= 4 * LENGTH
        assert burst["label"] in RML2016_NAMES
        assert 0 <= burst["snr_db"] <= 20
        pos = burst["start"] + burst["count"]
    assert len(iq) - pos >= LENGTH // 2
    floor = noise_floor(iq, [(b["start"], b["count"]) for b in bursts])
    assert floor == pytest.approx(0.02**2, rel=0.1)  # bursts-bladerf-2: noise voltage 0.02
    for burst in bursts:
        inside = np.mean(np.abs(iq[burst["start"] : burst["start"] + burst["count"]]) ** 2)
        assert inside / floor > 1 + 10 ** (burst["snr_db"] / 10) / 4, burst


def test_bad_snr_range_is_one_error_line(tmp_path: Path) -> None:
    proc = run("sites", "--out", tmp_path, "--snr", "5:-5")
    assert proc.returncode == 2
    assert proc.stderr == "error: argument --snr: need -40 <= LO <= HI <= 60 dB, got '5:-5'\n"
    assert not any(tmp_path.iterdir())


def test_oversize_plan_is_refused_before_generating(tmp_path: Path) -> None:
    proc = run("sites", "--out", tmp_path, "--sites", 64, "--bursts-per-class", 100000)
    # 64 sites x 100000 bursts x 11 classes x at least one 1024-sample record each
    assert proc.returncode == 2
    assert re.fullmatch(
        r"error: plan: at least 72089600000 samples, over the limit of 100000000 "
        r"\(800 MB of cf32\); ask for fewer bursts or shorter records\n",
        proc.stderr,
    )
    assert not any(tmp_path.iterdir())


def test_existing_recordings_are_kept(tmp_path: Path) -> None:
    args = ("sites", "--out", tmp_path, "--sites", 1, "--bursts-per-class", 1, "--length", 64)
    generate(*args)
    meta = tmp_path / "site0" / "site0_00.sigmf-meta"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    proc = run(*args)
    assert proc.returncode == 2
    assert proc.stderr == f"error: {meta}: already exists; pass --force to replace it\n"
    slow = run(*args, "--force", "--bursts-per-class", 40, "--time-limit", 1)
    assert slow.returncode == 2
    assert re.fullmatch(
        r"error: time limit reached after \d+ of 441 chunks of site0_00\.sigmf-data; ask for "
        r"fewer bursts or raise --time-limit \(this recording was not written\)\n",
        slow.stderr,
    )
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_the_extra_classes_are_bursts_of_their_own_at_their_snr(tmp_path: Path) -> None:
    """The classes RadioML 2016 lacks (``--classes extra``): each one, at its annotated power."""
    generate("bursts", "--out", tmp_path, "--bursts", 40, "--classes", "extra", "--length",
             LENGTH, "--snr", "10:20", "--seed", 4)  # fmt: skip
    meta, iq = read(tmp_path / "bursts.sigmf-meta")
    bursts = json.loads((tmp_path / "truth.json").read_text())["bursts"]
    extra = {"OOK", "16PSK", "32QAM", "256QAM", "16APSK", "4FSK", "OFDM", "LFM", "NBFM",
             "AM-DSB-SC"}  # fmt: skip
    assert {b["label"] for b in bursts} == extra
    assert canonical_label("AM-DSB-SC") not in RML2016_CLASSES
    floor = noise_floor(iq, [(b["start"], b["count"]) for b in bursts])
    assert floor == pytest.approx(0.02**2, rel=0.1)
    for burst in bursts:
        inside = np.mean(np.abs(iq[burst["start"] : burst["start"] + burst["count"]]) ** 2)
        assert inside / floor > 1 + 10 ** (burst["snr_db"] / 10) / 4, burst
    proc = run("bursts", "--out", tmp_path / "x", "--classes", "extra,OOK")
    assert proc.returncode == 2 and "empty or repeated class list" in proc.stderr
    assert not (tmp_path / "x").exists()
