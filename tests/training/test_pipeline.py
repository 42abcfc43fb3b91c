"""pretrain -> finetune end to end on a tiny config: files, metrics, reload, caching, errors."""

from __future__ import annotations

import json
import re

import pytest
import torch.nn.functional as F
from scipy.optimize import minimize_scalar

from fedsb.config import apply_overrides, save_config
from fedsb.data.imageset import load_or_build, split_config
from fedsb.errors import ConfigError, DataError
from fedsb.evaluation.evaluate_run import load_classifier
from fedsb.models.checkpoint import load_backbone, load_checkpoint, save_checkpoint
from fedsb.report.curves import training_curve
from fedsb.reporter import SilentReporter
from fedsb.runs import ADAPTER_FILE, MODEL_FILE
from fedsb.training.config import FinetuneConfig, PretrainConfig
from fedsb.training.finetune import finetune, target_splits
from fedsb.training.loop import predict
from fedsb.training.pretrain import pretrain, resolve_pretrained

from ..overrides import FRONTEND_OFF

TINY_DATA = [
    "data.classes='bpsk,qpsk,gfsk'",
    "data.per_class=24",
    "data.generator.length=256",
    "data.images.size=16",
    "data.images.channels='spectrogram,constellation_comp'",
    *FRONTEND_OFF,  # off in the tiny backbone and its fine-tuning
    "val_per_class=8",
    "test_per_class=8",
    "train.epochs=1",
    "train.batch_size=16",
    "train.threads=1",
]
TINY_PRE = apply_overrides(
    PretrainConfig(), [*TINY_DATA, "model.widths=[8, 16]", "model.blocks=[1, 1]"]
)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    result = pretrain(TINY_PRE, root / "pre", cache_dir=root / "cache", on_history=training_curve)
    return root, result


def test_pretrain_writes_config_metrics_checkpoint_and_figure(pretrained):
    root, result = pretrained
    run = root / "pre"
    assert (run / "config.toml").exists() and (run / "figures" / "training_curve.png").exists()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows] == ["pretrain", "test", "calibration"]
    assert 0.0 <= rows[1]["test_acc"] <= 1.0
    state, meta = load_checkpoint(result.checkpoint)
    assert meta["kind"] == "backbone" and meta["class_names"] == ["bpsk", "qpsk", "gfsk"]
    assert sum(t.numel() for t in state.values()) == result.parameters


def test_finetune_lora_sb_trains_only_r_and_head_and_reloads(pretrained, tmp_path):
    root, result = pretrained
    cfg = apply_overrides(
        FinetuneConfig(),
        [*TINY_DATA, f"pretrained='{root / 'pre'}'", "adapter.rank=4", "adapter.init_samples=16"],
    )
    drawn = []
    out = finetune(cfg, tmp_path / "ft", cache_dir=root / "cache", on_history=_record(drawn))
    assert out.method == "lora-sb" and 0 < out.trainable < out.parameters
    # the caller draws: the rows it gets are the run's, the figure goes into its figures/
    ((rows, path, title),) = drawn
    assert path == tmp_path / "ft" / "figures" / "training_curve.png"
    assert title == "fine-tuning (lora-sb, r=4, target)"
    assert [r["stage"] for r in rows] == ["frozen", "finetune", "test", "calibration"]
    adapters, _ = load_checkpoint(tmp_path / "ft" / ADAPTER_FILE)
    assert all(k.endswith("lora_R.weight") or k.startswith("head.") for k in adapters)
    # the frozen baseline is the pretrained model on the same target test split
    rows = [json.loads(x) for x in (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["stage"] == "frozen" and rows[-2]["stage"] == "test"
    assert rows[-2]["trainable"] == out.trainable


def test_finetune_saves_the_temperature_that_minimises_the_validation_nll(pretrained, tmp_path):
    root, _ = pretrained
    cfg = apply_overrides(
        FinetuneConfig(), [*TINY_DATA, f"pretrained='{root / 'pre'}'", "adapter.method=full"]
    )
    out = finetune(cfg, tmp_path / "ft", cache_dir=root / "cache")
    loaded, meta = load_classifier(tmp_path / "ft")
    assert meta["temperature"] == out.calibration.temperature == loaded.temperature
    val = target_splits(cfg, loaded.class_names, root / "cache", SilentReporter())["val"]
    _assert_the_nll_minimiser(loaded.model, val, loaded.temperature, tmp_path / "ft")


def test_pretrain_saves_the_temperature_that_minimises_the_validation_nll(pretrained):
    root, result = pretrained
    _, meta = load_checkpoint(result.checkpoint)
    model, built_on = load_backbone(result.checkpoint, TINY_PRE)
    assert "temperature" not in built_on  # a model built on the backbone fits its own
    val_cfg = split_config(TINY_PRE.data, "val", TINY_PRE.val_per_class)
    val = load_or_build(val_cfg, root / "cache")
    _assert_the_nll_minimiser(model, val, meta["temperature"], root / "pre")


def _assert_the_nll_minimiser(model, val, temperature: float, run) -> None:
    """The oracle: scipy's bounded minimiser of the NLL over T, on the validation split's logits
    from the saved model (the test split is never used to fit it); and the run's last row."""
    logits = predict(model, val).double()

    def nll(t: float) -> float:
        return F.cross_entropy(logits / t, val.labels).item()

    ref = minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded", options={"xatol": 1e-8})
    assert temperature == pytest.approx(ref.x, rel=1e-4)
    row = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert row["stage"] == "calibration" and row["temperature"] == temperature
    assert row["nll_before"] == pytest.approx(nll(1.0), rel=1e-6)
    assert row["nll_after"] == pytest.approx(ref.fun, rel=1e-6) and ref.fun <= nll(1.0)


def _record(drawn: list):
    """An ``on_history`` that records its arguments instead of drawing."""
    return lambda rows, path, title: drawn.append((rows, path, title))


def test_pretrain_config_spec_is_cached_by_hash(pretrained, tmp_path):
    root, result = pretrained
    spec = tmp_path / "pre.toml"
    save_config(TINY_PRE, spec)
    cache = tmp_path / "cache"
    drawn = []
    first = resolve_pretrained(str(spec), cache, SilentReporter(), _record(drawn))
    stamp = first.stat().st_mtime_ns
    again = resolve_pretrained(str(spec), cache, SilentReporter(), _record(drawn))
    assert again == first and again.stat().st_mtime_ns == stamp  # reused, not retrained
    # the curve of the backbone trained for the spec is drawn into its cached run, once
    assert [(p, t) for _, p, t in drawn] == [
        (first.parent / "figures" / "training_curve.png", "pretraining (resnet, source domain)")
    ]
    assert not drawn[0][1].exists()  # the recorder drew nothing itself


def test_backbone_with_other_images_is_refused(pretrained):
    root, _ = pretrained
    cfg = apply_overrides(FinetuneConfig(), [*TINY_DATA, "data.images.size=24"])
    with pytest.raises(ConfigError, match="trained on other images"):
        load_backbone(root / "pre" / MODEL_FILE, cfg)


def test_bad_pretrained_spec(tmp_path):
    with pytest.raises(ConfigError, match="expected a run directory"):
        resolve_pretrained(str(tmp_path / "x.bin"), tmp_path, SilentReporter())


def test_pretraining_and_finetuning_give_back_the_callers_thread_count(pretrained, tmp_path):
    """A backbone pretrained on first use inside a threads = 1 run must leave it at 1."""
    import torch

    root, _ = pretrained
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    seen = []
    try:
        two = apply_overrides(TINY_PRE, ["train.threads=2"])
        result = pretrain(two, tmp_path / "pre", on_history=lambda *a: seen.append(1))
        assert result.checkpoint.exists() and torch.get_num_threads() == 1
        bad = apply_overrides(
            FinetuneConfig(),
            [*TINY_DATA, "train.threads=2", f"pretrained='{tmp_path / 'none'}'"],
        )
        with pytest.raises(ConfigError):
            finetune(bad, tmp_path / "ft", cache_dir=root / "cache")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("temperature", "problem"),
    [("hot", "is not a number: 'hot'"), (-1.0, "must be > 0, got -1.0"), (True, "is not a")],
)
def test_a_finetune_run_with_a_hostile_temperature_is_refused_in_one_line(
    pretrained, tmp_path, temperature, problem
):
    root, _ = pretrained
    cfg = apply_overrides(FinetuneConfig(), [*TINY_DATA, f"pretrained='{root / 'pre'}'"])
    finetune(cfg, tmp_path / "ft", cache_dir=root / "cache")
    path = tmp_path / "ft" / MODEL_FILE
    state, meta = load_checkpoint(path)
    save_checkpoint(path, state, {**meta, "temperature": temperature})
    want = f"^{re.escape(str(path))}: metadata 'temperature' {re.escape(problem)}"
    with pytest.raises(DataError, match=want):
        load_classifier(tmp_path / "ft")
