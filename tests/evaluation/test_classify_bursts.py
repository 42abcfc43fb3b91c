"""``fedsb classify``: overlapping windows, confident calibration windows, the burst front-end.

Uses the tiny backbone of ``test_classify`` (bpsk, gfsk, am-dsb). References: window starts
written out by hand, quantiles of hand-picked windows, and the training-time image path
(:func:`fedsb.data.imageset.quantised_images`, whose front-end estimates each record itself).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fedsb.data.imageset import quantised_images
from fedsb.errors import ConfigError
from fedsb.evaluation import classify as classify_module
from fedsb.evaluation.classify import ClassifyConfig, Segment, classify_segments, window_starts
from fedsb.evaluation.classify_model import (
    MIN_CALIBRATION,
    Thresholds,
    choose_thresholds,
    thresholds_from_logits,
    window_scores,
)
from fedsb.evaluation.evaluate_run import load_classifier
from fedsb.io.sigmf_stream import open_recording
from fedsb.signals import generate
from fedsb.signals.frontend import FrontendConfig

from ..signals.bursts_data import noise, write_pair
from .test_classify import CLEAN, easy  # noqa: F401  (the tiny backbone, built once here)


def test_overlapping_windows_step_by_the_hop_and_end_flush():
    # 1400 samples, windows of 256 every 128: starts 0..1024, then 120 left over (>= 32)
    want = [1000 + 128 * k for k in range(9)] + [2400 - 256]
    assert window_starts(1000, 1400, 256, 4000, 128).tolist() == want
    assert window_starts(1000, 1400 - 100, 256, 4000, 128).tolist() == want[:-1]  # 20 left
    assert window_starts(1000, 1400, 256, 4000).tolist() == [1000, 1256, 1512, 1768, 2024, 2144]
    assert window_starts(3000, 100, 256, 4000, 128).tolist() == [3050 - 128]
    assert ClassifyConfig().hop(1024) == 512 and ClassifyConfig(overlap=0.0).hop(1024) == 1024
    with pytest.raises(ConfigError, match=r"^overlap: must be in \[0, 1\), got 1\.0$"):
        ClassifyConfig(overlap=1.0)


def test_thresholds_keep_the_confident_windows_only():
    """Reference: numpy quantiles over the rows picked by hand (right and >= 10 dB)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (400, 4))
    labels = rng.integers(0, 4, 400)
    snr = rng.uniform(-10, 20, 400)
    snr[:20] = np.nan  # no SNR: counts
    got = thresholds_from_logits(logits, 2.0, 0.9, "test", labels, snr)
    pick = [i for i in range(400) if logits[i].argmax() == labels[i] and not snr[i] < 10]
    z = logits[pick] / 2.0
    energy = 2.0 * np.log(np.exp(z).sum(1))
    confidence = np.exp(z.max(1)) / np.exp(z).sum(1)
    assert got.energy == pytest.approx(np.quantile(energy, 0.1), rel=1e-9)
    assert got.confidence == pytest.approx(np.quantile(confidence, 0.1), rel=1e-9)
    assert got.source == f"test, {len(pick)} windows right at >= 10 dB"
    few = thresholds_from_logits(logits[:40], 2.0, 0.9, "test", labels[:40], snr[:40] - 50)
    assert few.source == "test, all 40 windows (too few right at >= 10 dB)"
    _, energy_all = window_scores(logits[:40], 2.0)
    assert few.energy == pytest.approx(np.quantile(energy_all, 0.1)) and MIN_CALIBRATION > 0


def test_a_runs_own_test_data_calibrates_the_default_thresholds(easy, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(easy / "run", run)
    loaded, _ = load_classifier(run)
    assert choose_thresholds(loaded, run).source == "defaults"  # a pretrain run: no test data
    config = (run / "config.toml").read_text()
    data = easy / "calibration.npz"
    assert "test_paths = []" in config
    (run / "config.toml").write_text(config.replace("test_paths = []", f"test_paths = ['{data}']"))
    got = choose_thresholds(loaded, run)
    want = choose_thresholds(loaded, run, calibrate=data)
    assert got.source.startswith(f"the run's test data ({data}), ")
    assert (got.confidence, got.energy) == (want.confidence, want.energy)
    assert got.energy is not None
    (run / "config.toml").write_text(config.replace("test_paths = []", "test_paths = ['gone']"))
    assert choose_thresholds(loaded, run).source == "defaults"  # the files are not there


def _frontend_model(run: Path):
    loaded, _ = load_classifier(run)
    front = FrontendConfig(recentre=True, resample=True)
    return replace(loaded, images=replace(loaded.images, frontend=front))


def test_a_one_window_burst_through_the_front_end_is_the_training_image(easy, tmp_path):  # noqa: F811
    """Its band estimated over the burst is the one the record's own front-end estimates."""
    loaded = _frontend_model(easy / "run")
    length = loaded.length
    rng = np.random.default_rng(1)
    clean = generate(replace(CLEAN, length=length), ["gfsk"], 1, 2).iq[0]
    iq = noise(4 * length, 1e-3, rng)
    tone = np.exp(2j * np.pi * 0.12 * np.arange(length)).astype(np.complex64)  # off centre
    iq[length : 2 * length] += clean * tone * np.sqrt(1e-3 * 100)
    rec = open_recording(write_pair(tmp_path / "rec", iq))
    seg = Segment(length, length, "annotation 0")
    [got] = classify_segments(rec, [seg], loaded, Thresholds(0.0), config=ClassifyConfig())
    images = quantised_images(iq[None, length : 2 * length], loaded.images).float() / 255
    with torch.inference_mode():
        logits = loaded.model.eval()(images).double().numpy()
    logp, energy = window_scores(logits, loaded.temperature)
    assert got.windows == 1
    assert got.probability == pytest.approx(float(np.exp(logp.max())), rel=1e-6)
    assert got.energy == pytest.approx(float(energy[0]), rel=1e-6)
    plain, _ = load_classifier(easy / "run")
    [off] = classify_segments(rec, [seg], plain, Thresholds(0.0), config=ClassifyConfig())
    assert off.energy != pytest.approx(got.energy, rel=1e-6)  # the front-end changed the image


def test_a_long_bursts_band_is_estimated_once(easy, tmp_path, monkeypatch):  # noqa: F811
    loaded = _frontend_model(easy / "run")
    calls = []

    def counting(x):
        calls.append(x.size)
        return (0.1, 0.3, True)

    monkeypatch.setattr(classify_module, "burst_band", counting)
    iq = noise(20 * loaded.length, 1.0, np.random.default_rng(2))
    rec = open_recording(write_pair(tmp_path / "rec", iq))
    segs = [Segment(0, 9 * loaded.length, "a"), Segment(10 * loaded.length, 100, "b")]
    config = ClassifyConfig(batch=4)  # a burst's windows span several batches
    out = classify_segments(rec, segs, loaded, Thresholds(0.0), config=config)
    assert [o.windows for o in out] == [17, 1] and calls == [9 * loaded.length, 100]
