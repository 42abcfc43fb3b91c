"""`fedsb evaluate`: a run's merged model on npz / SigMF data, windowing, refusals (exit 2)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from fedsb.data.imageset import images_from_records
from fedsb.data.sources import windows
from fedsb.errors import DataError
from fedsb.evaluation.evaluate_run import evaluate_run
from fedsb.federated.task import build_task, load_basis
from fedsb.io import write_sigmf
from fedsb.io.load import save_records
from fedsb.models.adapters import adapted_layers, apply_adapters, load_adapter_state
from fedsb.models.checkpoint import load_checkpoint, save_checkpoint
from fedsb.models.config import AdapterConfig
from fedsb.models.export import merged_model
from fedsb.reporter import SilentReporter
from fedsb.runs import CONFIG_FILE, MODEL_FILE
from fedsb.signals import generate
from fedsb.signals.config import GeneratorConfig
from fedsb.signals.recordset import RecordSet
from fedsb.training.loop import predict

from ..cli.test_data_cli import run as cli
from ..federated.conftest import workspace  # noqa: F401  (the tiny pretrained backbone)

CLASSES = ("bpsk", "qpsk", "gfsk")


def _records(length: int, classes=CLASSES, seed: int = 11) -> RecordSet:
    cfg = replace(GeneratorConfig(), length=length)
    return generate(cfg, list(classes), per_class=12, seed=seed)


@pytest.fixture(scope="module")
def trained(workspace, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("evaluate")
    workspace.run(root / "run")
    return root, workspace


def test_logits_equal_the_unmerged_adapted_model_on_the_same_records(trained):
    """Reference: the run's task model (adapters not merged) with the saved adapter state."""
    root, ws = trained
    records = _records(256)
    save_records(records, root / "data.npz")
    result, pred = evaluate_run(root / "run", root / "data.npz")
    cfg = ws.config()
    task = build_task(cfg, ws.cache, SilentReporter())
    load_basis(task.model, root / "run")
    state, _ = load_checkpoint(root / "run" / "adapter.safetensors")
    load_adapter_state(task.model, state)
    want = predict(task.model, images_from_records(records, cfg.data)).double().numpy()
    np.testing.assert_allclose(pred.logits, want, rtol=1e-4, atol=1e-4)
    assert result["records"] == len(records) and not result["windowed"]
    assert result["accuracy"] == pytest.approx(float((want.argmax(1) == records.labels).mean()))
    evaluation = json.loads((root / "run" / "evaluation.json").read_text())
    assert result["temperature"] == pytest.approx(evaluation["calibration"]["temperature"])


def test_longer_records_are_windowed_and_sigmf_gives_the_same_numbers(trained):
    root, _ = trained
    long = _records(512, seed=12)
    halves = [
        RecordSet(long.iq[:, s : s + 256].copy(), long.labels, long.class_names, long.meta)
        for s in (0, 256)
    ]
    cut = windows(long, 256, root)
    assert len(cut) == 2 * len(long)
    np.testing.assert_array_equal(cut.iq[0::2], halves[0].iq)
    np.testing.assert_array_equal(cut.iq[1::2], halves[1].iq)
    np.testing.assert_array_equal(cut.snr_db[0::2], long.snr_db)
    save_records(long, root / "long.npz")
    from_npz, _ = evaluate_run(root / "run", root / "long.npz")
    assert from_npz["windowed"] and from_npz["records"] == 2 * len(long)
    write_sigmf(long, root / "long.sigmf-meta")
    from_sigmf, _ = evaluate_run(root / "run", root / "long.sigmf-meta")
    assert from_sigmf["records"] == from_npz["records"]
    assert from_sigmf["accuracy"] == pytest.approx(from_npz["accuracy"])


def test_cli_writes_eval_json_and_prints_the_table(trained, capsys):
    root, _ = trained
    save_records(_records(256, seed=13), root / "cli.npz")
    out = root / "e.json"
    argv = [
        "evaluate",
        "--run",
        str(root / "run"),
        "--data",
        str(root / "cli.npz"),
        "--out",
        str(out),
    ]
    code, stdout, _ = cli(argv, capsys)
    assert code == 0, stdout
    result = json.loads(out.read_text())
    assert {"accuracy", "per_snr", "per_class", "confusion", "calibration_after"} <= set(result)
    assert "ECE" in stdout and "wrote" in stdout


@pytest.mark.parametrize(
    "case, message",
    [
        ("short", "records are 128 samples long, shorter than the model's 256"),
        ("unknown", "classes the model was not trained on: 8psk"),
        ("missing", "file not found"),
        ("not-a-run", "no such checkpoint"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(trained, tmp_path, capsys, case, message):
    root, _ = trained
    run_dir, data = root / "run", tmp_path / "d.npz"
    if case == "short":
        save_records(_records(128), data)
    elif case == "unknown":
        save_records(_records(256, classes=("bpsk", "8psk")), data)
    elif case == "not-a-run":
        save_records(_records(256), data)
        run_dir = tmp_path
    before = sorted(p.name for p in (root / "run").iterdir())
    code, _, err = cli(["evaluate", "--run", str(run_dir), "--data", str(data)], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (root / "run").iterdir()) == before


def test_unknown_classes_can_be_dropped(trained):
    root, _ = trained
    mixed = _records(256, classes=("bpsk", "8psk", "gfsk"), seed=14)
    save_records(mixed, root / "mixed.npz")
    with pytest.raises(DataError, match="--drop-unknown"):
        evaluate_run(root / "run", root / "mixed.npz")
    result, pred = evaluate_run(root / "run", root / "mixed.npz", drop_unknown=True)
    assert result["records"] == 24 and set(np.unique(pred.labels)) == {0, 2}
    assert torch.is_tensor(torch.as_tensor(pred.logits))


def test_classes_restrict_the_label_set_to_those_logits(trained, capsys):
    """Reference: the full model's logits at the kept classes' columns, in the asked order."""
    root, _ = trained
    save_records(_records(256, classes=("gfsk", "bpsk"), seed=15), root / "two.npz")
    _, full = evaluate_run(root / "run", root / "two.npz")
    result, only = evaluate_run(root / "run", root / "two.npz", classes=("gfsk", "bpsk"))
    np.testing.assert_allclose(only.logits, full.logits[:, [2, 0]], rtol=1e-6, atol=1e-6)
    names = np.array(full.class_names)[full.labels]
    assert [only.class_names[i] for i in only.labels] == list(names)
    assert result["accuracy"] == pytest.approx(float((only.logits.argmax(1) == only.labels).mean()))
    argv = ["evaluate", "--run", str(root / "run"), "--data", str(root / "two.npz")]
    code, _, err = cli([*argv, "--classes", "bpsk,8psk", "--out", str(root / "x.json")], capsys)
    assert code == 2 and "--classes: 8psk not among the model's classes" in err
    assert not (root / "x.json").exists()
    code, _, err = cli([*argv, "--classes", "bpsk,nosuch", "--out", str(root / "x.json")], capsys)
    assert code == 2 and "--classes: unknown class 'nosuch'" in err


def test_an_rml2018_file_of_only_known_classes_needs_no_drop_unknown(trained, tmp_path):
    """The file declares all 24 classes; what counts is the classes its records hold."""
    root, _ = trained
    source = _records(256, classes=("bpsk", "qpsk"), seed=15)
    n = len(source)
    y = np.zeros((n, 24), dtype=np.int64)
    y[np.arange(n), np.where(source.label_names == "bpsk", 3, 4)] = 1  # corrected order
    path = tmp_path / "GOLD_XYZ_OSC.0001_1024.hdf5"
    with h5py.File(path, "w") as handle:
        handle["X"] = np.stack([source.iq.real, source.iq.imag], axis=-1)
        handle["Y"] = y
        handle["Z"] = np.nan_to_num(source.snr_db).reshape(n, 1)
    result, pred = evaluate_run(root / "run", path)
    assert result["records"] == n
    names = np.asarray(CLASSES)[pred.labels]
    assert names.tolist() == source.label_names.tolist()


def test_the_device_option_gives_the_same_cpu_predictions(trained, capsys):
    """auto is the CPU on a machine without a GPU: bit-equal logits, the same eval.json."""
    root, _ = trained
    save_records(_records(256, seed=16), root / "dev.npz")
    default, pred = evaluate_run(root / "run", root / "dev.npz")
    chosen, pred_cpu = evaluate_run(root / "run", root / "dev.npz", device="cpu")
    assert pred_cpu.logits.dtype == np.float64
    np.testing.assert_array_equal(pred_cpu.logits, pred.logits)
    assert chosen == default
    outs = []
    for device in ("cpu", "auto"):
        out = root / f"e-{device}.json"
        argv = ["evaluate", "--run", str(root / "run"), "--data", str(root / "dev.npz")]
        code, stdout, _ = cli([*argv, "--out", str(out), "--device", device], capsys)
        assert code == 0, stdout
        outs.append(json.loads(out.read_text()))
    assert outs[0] == outs[1] == json.loads(json.dumps(default))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_evaluation_on_the_gpu_matches_the_cpu(trained):
    root, _ = trained
    save_records(_records(256, seed=17), root / "gpu.npz")
    _, cpu = evaluate_run(root / "run", root / "gpu.npz", device="cpu")
    result, gpu = evaluate_run(root / "run", root / "gpu.npz", device="cuda")
    assert isinstance(gpu.logits, np.ndarray) and gpu.logits.dtype == np.float64
    np.testing.assert_allclose(gpu.logits, cpu.logits, rtol=1e-3, atol=1e-3)
    assert result["records"] == len(cpu.labels)


def test_a_finetune_or_pretrain_run_is_evaluated_with_its_adapted_model(trained, tmp_path):
    """Reference: the adapted model itself (LoRA factors not folded), at temperature 1."""
    _, ws = trained
    state, meta = load_checkpoint(ws.pre / MODEL_FILE)
    model = merged_model(state, meta, ws.pre / MODEL_FILE)
    apply_adapters(model, AdapterConfig(method="lora", rank=2, init_seed=1))
    torch.manual_seed(0)
    with torch.no_grad():
        for layer in adapted_layers(model).values():
            layer.lora_B.weight.normal_(0, 0.05)  # a non-zero update
    run = tmp_path / "ft"
    run.mkdir()
    adapted = {**meta, "kind": "adapted", "adapter": {"method": "lora", "rank": 2, "init_seed": 1}}
    del adapted["temperature"]  # the backbone's; an adapted model without its own fit has none
    save_checkpoint(run / MODEL_FILE, model.state_dict(), adapted)
    shutil.copy(ws.pre / CONFIG_FILE, run / CONFIG_FILE)
    records = _records(256, seed=14)
    save_records(records, tmp_path / "data.npz")
    result, pred = evaluate_run(run, tmp_path / "data.npz")
    want = predict(model, images_from_records(records, ws.config().data)).double().numpy()
    np.testing.assert_allclose(pred.logits, want, rtol=1e-4, atol=1e-4)
    assert result["temperature"] == 1.0 and result["records"] == len(records)
    backbone, _ = evaluate_run(ws.pre, tmp_path / "data.npz")  # the pretrain run itself
    assert backbone["records"] == len(records) and 0 <= backbone["accuracy"] <= 1
    assert backbone["temperature"] == meta["temperature"] != 1.0  # pretrain fits its own
