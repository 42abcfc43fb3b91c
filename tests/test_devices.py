"""``device = "auto" | "cpu" | "cuda"``: resolved per machine, refused when it cannot be met."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fedsb.config import apply_overrides, config_hash
from fedsb.devices import autocast, model_device, resolve_device
from fedsb.errors import ConfigError
from fedsb.training.config import PretrainConfig, TrainConfig
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


# ------------------------------------------------------------- mixed precision (train.amp)


def _without_amp(cfg: PretrainConfig):
    """``cfg`` as the code before ``train.amp`` saw it: TrainConfig without the field."""
    fields = [
        (f.name, f.type, dataclasses.field(default=getattr(cfg.train, f.name)))
        for f in dataclasses.fields(TrainConfig)
        if f.name != "amp"
    ]
    old_train = dataclasses.make_dataclass(
        "TrainConfig", fields, namespace={"HASH_NEUTRAL": frozenset({"device"})}
    )
    outer = [(f.name, f.type) for f in dataclasses.fields(PretrainConfig)]
    values = {f: getattr(cfg, f) for f, _ in outer}
    return dataclasses.make_dataclass("PretrainConfig", outer)(**{**values, "train": old_train()})


def test_amp_is_off_by_default_and_leaves_the_hash_alone():
    """The cached backbones stay valid: the hash is that of the config without the field."""
    cfg = PretrainConfig()
    assert cfg.train.amp is False
    old = config_hash(_without_amp(cfg))
    assert config_hash(cfg) == old
    amp = apply_overrides(cfg, ["train.device='cuda'", "train.amp=true"])
    assert amp.train.amp and config_hash(amp) != old


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_amp_without_device_cuda_is_a_one_line_config_error(device):
    with pytest.raises(ConfigError) as info:
        apply_overrides(PretrainConfig(), [f"train.device='{device}'", "train.amp=true"])
    assert str(info.value) == (
        f"train.amp: mixed precision runs on CUDA only; set device = 'cuda' (it is '{device}') "
        "or amp = false"
    )


def test_autocast_off_changes_nothing_and_on_is_refused_off_cuda():
    x = torch.randn(4, 3)
    layer = torch.nn.Linear(3, 2)
    with autocast(torch.device("cpu"), False):
        assert layer(x).dtype == torch.float32
    with pytest.raises(
        ConfigError,
        match=r"^train\.amp: mixed precision runs on CUDA only; the "
        r"model is on cpu$",
    ):
        autocast(torch.device("cpu"), True)


def test_run_epoch_with_amp_on_a_cpu_model_trains_nothing():
    """The refusal comes before the first step: the weights stay as they were."""
    from fedsb.data.imageset import ImageSet
    from fedsb.training.loop import run_epoch

    data = ImageSet(
        torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
        torch.zeros(4, dtype=torch.long),
        torch.zeros(4),
        ("a", "b"),
    )
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    loss = torch.nn.functional.cross_entropy
    with pytest.raises(ConfigError, match=r"^train\.amp: "):
        run_epoch(model, data, opt, [torch.arange(4)], loss, amp=True)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.skipif(NO_CUDA, reason="needs a GPU")
def test_amp_on_cuda_trains_in_bfloat16_and_keeps_float32_weights():
    from fedsb.data.imageset import ImageSet
    from fedsb.training.loop import run_epoch

    g = torch.Generator().manual_seed(0)
    data = ImageSet(
        torch.randint(0, 256, (64, 1, 4, 4), dtype=torch.uint8, generator=g),
        torch.randint(0, 2, (64,), generator=g),
        torch.zeros(64),
        ("a", "b"),
    )
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).cuda()
    seen = []
    model[1].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    tally = run_epoch(
        model, data, opt, [torch.arange(64)], torch.nn.functional.cross_entropy, amp=True
    )
    assert seen == [torch.bfloat16] and model[1].weight.dtype == torch.float32
    assert tally.seen == 64 and torch.isfinite(torch.tensor(tally.loss_sum))
