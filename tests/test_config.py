"""Config loading: TOML -> frozen dataclasses, overrides, errors naming the key, round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fedsb.config import apply_overrides, config_hash, from_dict, load_config, save_config, to_dict
from fedsb.data_config import DataConfig
from fedsb.errors import ConfigError
from fedsb.signals.config import GeneratorConfig

REPO = Path(__file__).resolve().parents[1]


def test_shipped_data_config_equals_the_defaults():
    # configs/data.toml documents every key; it must not drift from the dataclass defaults
    assert load_config(DataConfig, REPO / "configs" / "data.toml") == DataConfig()


def test_overrides_reach_nested_keys_and_parse_toml_values():
    cfg = apply_overrides(
        DataConfig(),
        [
            "generator.fading.enabled=false",
            "generator.snr_db=[0, 5]",
            "per_class=7",
            'classes="bpsk,qpsk"',
        ],
    )
    assert cfg.generator.fading.enabled is False
    assert cfg.generator.snr_db == (0.0, 5.0)
    assert cfg.per_class == 7 and cfg.classes == "bpsk,qpsk"
    assert cfg.generator.impairments == GeneratorConfig().impairments  # untouched


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DataConfig().seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("generator.fadin.enabled=false", r"generator\.fadin\.enabled: unknown key"),
        ("generator.snr_db=[20, 10]", r"snr_db: low 20.0 is above high 10.0"),
        ("generator.length=abc", r"generator\.length: expected an integer"),
        ("generator.fading.model='x'", r"generator\.fading\.model: 'x' is not one of"),
        ("generator.snr_db=[1, 2, 3]", r"generator\.snr_db: expected 2 values, got 3"),
        ("per_class=0", r"per_class must be >= 1"),
        ("classes='foo'", r"unknown class 'foo'"),
        ("noequals", r"expected key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(DataConfig(), [override])


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("seed = 1\n[generator]\nlenght = 5\n")
    with pytest.raises(ConfigError, match=r"c\.toml: generator\.lenght: unknown key"):
        load_config(DataConfig, path)


def test_invalid_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_config(DataConfig, bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(DataConfig, tmp_path / "missing.toml")


def test_save_then_load_round_trips_and_hash_is_stable(tmp_path):
    cfg = apply_overrides(DataConfig(), ["seed=5", "generator.pulse.sps=[4, 8]"])
    save_config(cfg, tmp_path / "config.toml")
    again = load_config(DataConfig, tmp_path / "config.toml")
    assert again == cfg
    assert config_hash(again) == config_hash(cfg) != config_hash(DataConfig())
    assert from_dict(DataConfig, to_dict(cfg)) == cfg


def test_bool_is_not_accepted_as_a_number():
    with pytest.raises(ConfigError, match="expected an integer"):
        apply_overrides(DataConfig(), ["seed=true"])


@pytest.mark.parametrize(
    ("name", "cls"),
    [("pretrain.toml", "PretrainConfig"), ("finetune.toml", "FinetuneConfig")],
)
def test_shipped_training_configs_equal_the_defaults(name, cls):
    import tomllib

    from fedsb.config import to_dict
    from fedsb.training import config as training_config

    config_cls = getattr(training_config, cls)
    path = REPO / "configs" / name
    assert load_config(config_cls, path) == config_cls()
    assert _keys(tomllib.loads(path.read_text())) == _keys(to_dict(config_cls()))


def test_saved_config_is_compact_toml_that_loads_back(tmp_path):
    from fedsb.training.config import FinetuneConfig

    save_config(FinetuneConfig(), tmp_path / "c.toml", header="# hi\n")
    text = (tmp_path / "c.toml").read_text()
    assert text.startswith("# hi\n") and "snr_db = [-10.0, 20.0]" in text
    assert load_config(FinetuneConfig, tmp_path / "c.toml") == FinetuneConfig()


def _keys(table: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in table.items():
        out |= _keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return out


def test_shipped_run_config_equals_the_defaults():
    import tomllib

    from fedsb.config import to_dict
    from fedsb.federated.config import RunConfig

    path = REPO / "configs" / "run.toml"
    assert load_config(RunConfig, path) == RunConfig()
    # a complete preset: every key is written out, so users see every option
    assert _keys(tomllib.loads(path.read_text())) == _keys(to_dict(RunConfig()))
