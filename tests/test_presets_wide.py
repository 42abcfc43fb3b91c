"""The wide-backbone presets: pretrain-wide (a ViT of dim 384, 6 blocks) and run-wide.

They ship in the package with byte-equal copies in configs/, write out every key, share the
default presets' data (so the cached source-domain splits are reused), and make Fed-SB's
advantage larger than on the default ResNet: what a LoRA client sends over what a Fed-SB one
does.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from fedsb.config import config_hash, load_config, preset_path
from fedsb.federated.config import RunConfig
from fedsb.images.config import FrontendConfig
from fedsb.models.adapters import apply_adapters, count_trainable
from fedsb.models.backbones import build_backbone, count_parameters
from fedsb.models.config import AdapterConfig
from fedsb.training.config import PretrainConfig

from .cli.test_data_cli import run as cli

REPO = Path(__file__).resolve().parents[1]
SHAPE = (8, 11, 32)  # channels, classes, image size of the presets


def _keys(table: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in table.items():
        out |= _keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return out


@pytest.mark.parametrize("name", ["pretrain-wide", "run-wide"])
def test_configs_dir_holds_exact_copies(name):
    assert (REPO / "configs" / f"{name}.toml").read_bytes() == preset_path(name).read_bytes()


def test_pretrain_wide_is_a_wide_vit_on_the_default_data_with_every_key_written():
    wide, default = load_config(PretrainConfig, "pretrain-wide"), PretrainConfig()
    model = wide.model
    assert model.arch == "vit" and model.dim >= 384 and model.depth >= 6
    assert config_hash(wide.data) == config_hash(default.data)  # the same cached splits
    assert (wide.val_per_class, wide.test_per_class) == (100, 200)
    assert wide.train.epochs * wide.data.per_class * 11 <= 150_000  # samples: a CPU budget
    # every key written out, as in pretrain.toml (whose keys test_config ties to the dataclass)
    keys = _keys(tomllib.loads(preset_path("pretrain").read_text()))
    assert _keys(tomllib.loads(preset_path("pretrain-wide").read_text())) == keys
    assert config_hash(wide) != config_hash(default)  # its own cached backbone


def test_run_wide_is_run_on_the_wide_backbone():
    wide, base = load_config(RunConfig, "run-wide"), load_config(RunConfig, "run")
    assert wide.pretrained == str(preset_path("pretrain-wide").resolve())
    # its backbone sees the records as they are, so its images skip the front-end too
    assert wide.data.images == dataclasses.replace(base.data.images, frontend=FrontendConfig())
    same = dataclasses.replace(wide.data, images=base.data.images)
    # Fed-SB's round 0, chosen on validation for the ViT: a smaller first step, three clients
    # and an int8 basis (the ResNet's init_lr = 1e-3 leaves the ViT at 13 % after round 0)
    assert (wide.adapter.init_lr, wide.init_clients, wide.client.basis_payload) == (3e-5, 3, "int8")
    tuned = {
        "adapter": dataclasses.replace(wide.adapter, init_lr=base.adapter.init_lr),
        "init_clients": base.init_clients,
        "client": dataclasses.replace(wide.client, basis_payload=base.client.basis_payload),
    }
    assert dataclasses.replace(wide, pretrained=base.pretrained, data=same, **tuned) == base
    run_keys = _keys(tomllib.loads(preset_path("run").read_text()))
    assert _keys(tomllib.loads(preset_path("run-wide").read_text())) == run_keys


def _sent_ratio(preset: str) -> tuple[int, float]:
    """(backbone parameters, LoRA's trained parameters / LoRA-SB's at r = 16)."""
    cfg = load_config(PretrainConfig, preset).model
    trained = {}
    for method in ("lora", "lora-sb"):
        model = build_backbone(cfg, *SHAPE)
        apply_adapters(model, AdapterConfig(method=method, rank=16))
        trained[method] = count_trainable(model)
    return count_parameters(build_backbone(cfg, *SHAPE)), trained["lora"] / trained["lora-sb"]


def test_the_wide_backbone_widens_fed_sbs_advantage():
    """docs/models.md quotes these counts; LoRA sends 39x LoRA-SB here, 23x on the ResNet."""
    wide_params, wide = _sent_ratio("pretrain-wide")
    default_params, default = _sent_ratio("pretrain")
    assert (wide_params, default_params) == (7_311_371, 1_230_667)
    assert wide == pytest.approx(534_667 / 13_707) and default == pytest.approx(136_587 / 5_899)
    assert wide > 1.5 * default


def test_run_wide_loads_in_a_dry_run(capsys):
    code, out, err = cli(["run", "--config", "run-wide", "--dry-run"], capsys)
    assert code == 0, err
    assert "partition: 10 clients" in out
