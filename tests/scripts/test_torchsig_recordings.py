"""scripts/torchsig_recordings.py: TorchSig names onto ours, refusals, and (with TorchSig) a set."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fedsb.signals.classes import RML2016_CLASSES

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ts", ROOT / "scripts" / "torchsig_recordings.py")
ts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ts)


def test_torchsig_names_cover_exactly_the_rml2016_classes():
    ours = [ts.our_name(name) for name in ts.RML2016]
    assert set(ours) == set(RML2016_CLASSES)
    assert ts.our_name("4ask") == "pam4"  # bipolar in TorchSig: our pam4, not our unipolar 4ask
    assert ts.our_name("am-usb") == ts.our_name("am-lsb") == "am-ssb"
    assert ts.our_name("2gfsk") == "gfsk" and ts.our_name("fm") == "wbfm"


def test_bad_options_and_an_existing_file_are_refused_before_generating(tmp_path, capsys):
    (tmp_path / "torchsig.npz").write_bytes(b"kept")
    assert ts.main(["--out", str(tmp_path)]) == 2
    assert "exists (use --force" in capsys.readouterr().err
    assert (tmp_path / "torchsig.npz").read_bytes() == b"kept"
    assert ts.main(["--out", str(tmp_path / "new"), "--per-class", "0"]) == 2
    assert "--per-class must be in 1..100000" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_a_generated_set_is_balanced_and_labelled(tmp_path):
    pytest.importorskip("torchsig")  # only in .venv-torchsig (make bench-torchsig)
    records = ts.generate(2, 256, 2, seed=3)
    assert len(records) == 22 and records.length == 256
    assert np.bincount(records.labels).tolist() == [2] * 11
    assert np.isfinite(records.snr_db).all()


def test_only_refuses_what_is_not_a_transform_name_before_generating(tmp_path, capsys):
    assert ts.main(["--out", str(tmp_path / "x"), "--only", "Fading; rm"]) == 2
    assert "--only 'Fading; rm': not a TorchSig transform name" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_only_one_transform_spares_every_other_impairment():
    pytest.importorskip("torchsig")
    signal, record = ts._transforms(2, "Fading")
    assert [type(t).__name__ for t in signal] == ["Fading"] and record == []
    assert ts._transforms(2, "none") == ([], [])
