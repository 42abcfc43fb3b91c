"""``device = "auto" | "cpu" | "cuda"``: resolved per machine, refused when it cannot be met."""

from __future__ import annotations

import pytest
import torch

from fedsb.devices import model_device, resolve_device
from fedsb.errors import ConfigError
from fedsb.training.loop import predict

from .federated.conftest import read_rows, workspace  # noqa: F401  (the tiny backbone)

NO_CUDA = not torch.cuda.is_available()


def test_auto_and_cpu_resolve_on_this_machine():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cpu" if NO_CUDA else "cuda")
    with pytest.raises(ConfigError, match=r"^device: 'tpu' is not one of auto, cpu, cuda$"):
        resolve_device("tpu")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"^train\.device: 'cuda' but torch .* sees no CUDA"):
        resolve_device("cuda", "train.device")


def test_wire_states_and_predictions_leave_on_the_cpu(workspace, tmp_path):  # noqa: F811
    """An explicit cpu run equals the default one, row for row (auto is the CPU here)."""
    auto = workspace.run(tmp_path / "auto")
    cpu = workspace.run(tmp_path / "cpu", "device='cpu'")
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in read_rows(auto.run)]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in read_rows(cpu.run)]
    model = torch.nn.Linear(3, 2)
    assert model_device(model).type == "cpu" and model_device(torch.nn.ReLU()).type == "cpu"


@pytest.mark.skipif(NO_CUDA, reason="needs a GPU")
def test_predict_on_a_gpu_model_returns_cpu_logits():
    from fedsb.data.imageset import ImageSet

    data = ImageSet(
        torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
        torch.zeros(4, dtype=torch.long),
        torch.zeros(4),
        ("a", "b"),
    )
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).cuda()
    assert predict(model, data).device.type == "cpu"
