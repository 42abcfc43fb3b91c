"""``fedsb export``: the exported model gives the run's logits (TorchScript and safetensors)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from fedsb.errors import ConfigError, DataError
from fedsb.evaluation.classify_run import export_run
from fedsb.evaluation.evaluate_run import load_run_model
from fedsb.models.adapters import adapted_layers, apply_adapters
from fedsb.models.checkpoint import load_checkpoint, save_checkpoint
from fedsb.models.config import AdapterConfig
from fedsb.models.export import FILES, load_exported, merged_model
from fedsb.runs import CONFIG_FILE, MODEL_FILE

from ..federated.conftest import workspace  # noqa: F401  (the tiny pretrained backbone)


@pytest.fixture(scope="module")
def trained(workspace, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("export")
    workspace.run(root / "run")
    return root, workspace


def _inputs(model_dir: Path, n: int = 7) -> torch.Tensor:
    meta = json.loads((model_dir / FILES["json"]).read_text())
    shape = (n, meta["in_channels"], meta["image_size"], meta["image_size"])
    return torch.rand(shape, generator=torch.Generator().manual_seed(3))


def test_exported_model_gives_the_runs_logits(trained):
    root, _ = trained
    paths = export_run(root / "run", root / "exported")
    assert {p.name for p in paths.values()} == set(FILES.values())
    scripted, rebuilt, info = load_exported(root / "exported")
    run = load_run_model(root / "run")
    x = _inputs(root / "exported")
    with torch.inference_mode():
        want = run.model.eval()(x)
        torch.testing.assert_close(scripted(x), want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(rebuilt(x), want, rtol=0, atol=0)
    assert tuple(info["class_names"]) == run.class_names
    assert info["length"] == run.length and info["temperature"] == pytest.approx(run.temperature)
    assert info["temperature_fitted"] and "onnx" in info and info["images"]["size"] == 16
    # fedsb reads the exported safetensors as a merged model, like any run's
    state, meta = load_checkpoint(paths["safetensors"])
    assert meta["kind"] == "merged" and meta["temperature"] == pytest.approx(run.temperature)


def test_an_adapted_checkpoint_is_merged_with_the_same_logits(trained, tmp_path):
    """A finetune run's model: frozen layers plus LoRA factors, folded into plain weights."""
    _, ws = trained
    state, meta = load_checkpoint(ws.pre / MODEL_FILE)
    model = merged_model(state, meta, ws.pre / MODEL_FILE)
    adapter = AdapterConfig(method="lora", rank=2, init_seed=1)
    apply_adapters(model, adapter)
    torch.manual_seed(0)
    with torch.no_grad():
        for layer in adapted_layers(model).values():
            layer.lora_B.weight.normal_(0, 0.05)  # a non-zero update, else merging is trivial
    adapted = {**meta, "kind": "adapted", "adapter": {"method": "lora", "rank": 2, "init_seed": 1}}
    del adapted["temperature"]  # the backbone's; an adapted model without its own fit has none
    run = tmp_path / "ft"
    run.mkdir()
    save_checkpoint(run / MODEL_FILE, model.state_dict(), adapted)
    shutil.copy(ws.pre / CONFIG_FILE, run / CONFIG_FILE)
    merged = merged_model(*load_checkpoint(run / MODEL_FILE), run / MODEL_FILE)
    assert not adapted_layers(merged)
    x = torch.rand(5, meta["in_channels"], meta["image_size"], meta["image_size"])
    with torch.inference_mode():
        torch.testing.assert_close(merged(x), model.eval()(x), rtol=1e-4, atol=1e-5)
    export_run(run, tmp_path / "out")
    scripted, _, info = load_exported(tmp_path / "out")
    assert info["temperature"] == 1.0 and not info["temperature_fitted"]
    with torch.inference_mode():
        torch.testing.assert_close(scripted(x), model(x), rtol=1e-4, atol=1e-5)


def test_export_refuses_to_write_into_a_run_and_bad_runs(trained, tmp_path):
    root, _ = trained
    before = (root / "run" / MODEL_FILE).read_bytes()
    with pytest.raises(ConfigError, match=r"^out: .* holds a run; its model\.safetensors would"):
        export_run(root / "run", root / "run")
    assert (root / "run" / MODEL_FILE).read_bytes() == before
    with pytest.raises(DataError, match=r"no such run directory"):
        export_run(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"model\.safetensors: no such checkpoint"):
        export_run(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()
