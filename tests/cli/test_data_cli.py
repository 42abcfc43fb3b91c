"""`fedsb data ...` end to end: files written, tables printed, errors as one line + exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from fedsb.cli import main
from fedsb.io import load_records
from fedsb.signals import GeneratorConfig, generate


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), out.out, out.err


def run_process(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "fedsb", *args], capture_output=True, text=True, env=env, timeout=120
    )


SMALL = ["--classes", "bpsk,qpsk,am-ssb", "--per-class", "4", "--length", "128", "--seed", "3"]


def test_help_lists_every_command_on_one_line(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in ("fedsb data generate", "fedsb data inspect", "fedsb data preview"):
        assert command in out


def test_generate_npz_matches_the_library_bit_for_bit(tmp_path, capsys):
    path = tmp_path / "set.npz"
    code, out, _ = run(["data", "generate", *SMALL, "--snr", "-10:20", "--out", str(path)], capsys)
    assert code == 0 and path.exists()
    assert "12 records x 128 samples" in out and "am-ssb" in out
    loaded = load_records(path)
    direct = generate(
        GeneratorConfig(length=128, snr_db=(-10.0, 20.0)), "bpsk,qpsk,am-ssb", per_class=4, seed=3
    )
    assert np.array_equal(loaded.iq, direct.iq)
    assert np.array_equal(loaded.labels, direct.labels)
    assert loaded.class_names == ("bpsk", "qpsk", "am-ssb")
    assert np.array_equal(loaded.meta["snr_db"], direct.meta["snr_db"])


def test_generate_sigmf_then_inspect_and_preview(tmp_path, capsys):
    meta = tmp_path / "rec.sigmf-meta"
    code, _, _ = run(
        ["data", "generate", *SMALL, "--snr", "0:10:5", "--format", "sigmf", "--out", str(meta)],
        capsys,
    )
    assert code == 0 and meta.exists() and meta.with_suffix(".sigmf-data").exists()
    assert np.array_equal(
        load_records(meta, length=128).iq, load_records_generated(SMALL_CFG, seed=3).iq
    )
    code, out, _ = run(["data", "inspect", str(meta), "--length", "128"], capsys)
    assert code == 0
    # SNRs on the 5-dB grid get one column each; every class has 4 records
    assert all(col in out for col in (" 0 ", " 5 ", " 10 ")), out
    assert out.count(" 4 ") >= 3
    png = tmp_path / "grid.png"
    code, _, _ = run(
        [
            "data",
            "preview",
            str(meta),
            "--length",
            "128",
            "--out",
            str(png),
            "--channels",
            "spectrogram,constellation",
            "--size",
            "16",
        ],
        capsys,
    )
    assert code == 0
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


SMALL_CFG = GeneratorConfig(length=128, snr_db=(0.0, 10.0), snr_step=5.0)


def load_records_generated(cfg: GeneratorConfig, seed: int):
    return generate(cfg, "bpsk,qpsk,am-ssb", per_class=4, seed=seed)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "inspect", "missing.npz"], "missing.npz"),
        (["data", "generate", "--snr", "a:b", "--out", "x.npz"], "--snr 'a:b'"),
        (["data", "generate", "--classes", "nope", "--out", "x.npz"], "unknown class 'nope'"),
        (
            ["data", "generate", "--set", "generator.lenght=5", "--out", "x.npz"],
            "generator.lenght: unknown key",
        ),
        (
            ["data", "preview", "missing.npz", "--out", "g.png", "--channels", "bogus"],
            "unknown channel 'bogus'",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert message in lines[0]
    assert "Traceback" not in err


def test_real_entry_point_exit_code_and_debug_traceback(tmp_path):
    missing = tmp_path / "nothing.sigmf-meta"
    plain = run_process("data", "inspect", str(missing))
    assert plain.returncode == 2
    assert "Traceback" not in plain.stderr and str(missing) in plain.stderr
    debug = run_process("--debug", "data", "inspect", str(missing))
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_failed_generate_leaves_an_existing_file_untouched(tmp_path, capsys):
    path = tmp_path / "keep.npz"
    path.write_bytes(b"precious")
    code, _, _ = run(["data", "generate", *SMALL, "--format", "sigmf", "--out", str(path)], capsys)
    assert code == 2  # .npz path with --format sigmf is refused
    assert path.read_bytes() == b"precious"


def test_inspect_an_rml2018_file_a_chunk_at_a_time_in_either_column_order(
    tmp_path, capsys, monkeypatch
):
    """Columns 3, 3, 4 are BPSK, BPSK, QPSK (corrected) or FM, FM, GMSK (classes.txt)."""
    import h5py
    import numpy as np

    from fedsb.cli import data_inspect
    from fedsb.cli.app import console
    from fedsb.io import radioml

    path = tmp_path / "GOLD_XYZ_OSC.0001_1024.hdf5"
    y = np.zeros((3, 24), np.int64)
    y[[0, 1, 2], [3, 3, 4]] = 1
    x = np.zeros((3, 64, 2), np.float32)
    with h5py.File(path, "w") as handle:
        handle["X"] = x
        handle["Y"] = y
        handle["Z"] = np.array([[10], [12], [-4]])
    asked, read = [], radioml.read_rml2018
    monkeypatch.setattr(
        radioml, "read_rml2018", lambda p, **k: (asked.append(k["index"]), read(p, **k))[1]
    )
    monkeypatch.setattr(data_inspect, "INSPECT_ROWS", 2)
    monkeypatch.setattr(console, "width", 200)  # the 24 rows unwrapped
    code, out, _ = run(["data", "inspect", str(path)], capsys)
    assert code == 0 and "3 records x 64 samples, 24 classes" in out
    assert [list(a) for a in asked] == [[0, 1], [2]]  # every sample checked, 2 records at a time
    rows = {line.split()[1]: line.split()[-2] for line in out.splitlines() if "│" in line}
    assert rows.get("bpsk") == "2" and rows.get("qpsk") == "1" and rows.get("wbfm") == "0"
    code, out, _ = run(["data", "inspect", str(path), "--rml2018-order", "classes-txt"], capsys)
    rows = {line.split()[1]: line.split()[-2] for line in out.splitlines() if "│" in line}
    assert code == 0 and rows.get("wbfm") == "2" and rows.get("gmsk") == "1"
    assert rows.get("bpsk") == "0"
    code, _, err = run(["data", "inspect", str(path), "--length", "128"], capsys)
    assert code == 2 and "records are 64 samples long, not 128" in err
    x[2, 5, 1] = np.nan  # in the second chunk
    with h5py.File(path, "a") as handle:
        handle["X"][...] = x
    code, _, err = run(["data", "inspect", str(path)], capsys)
    assert code == 2 and "1 of 3 records contain NaN or Inf samples" in err
