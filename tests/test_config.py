"""Config loading: TOML -> frozen dataclasses, overrides, errors naming the key, round trip."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import ClassVar

import pytest

from fedsb.config import apply_overrides, config_hash, from_dict, load_config, save_config, to_dict
from fedsb.data.config import DataConfig
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
    assert_equals_the_defaults(load_config(config_cls, path), config_cls())
    assert _keys(tomllib.loads(path.read_text())) == _keys(to_dict(config_cls()))


def test_saved_config_is_compact_toml_that_loads_back(tmp_path):
    from fedsb.training.config import FinetuneConfig

    save_config(FinetuneConfig(), tmp_path / "c.toml", header="# hi\n")
    text = (tmp_path / "c.toml").read_text()
    assert text.startswith("# hi\n") and "snr_db = [-10.0, 20.0]" in text
    assert load_config(FinetuneConfig, tmp_path / "c.toml") == FinetuneConfig()


def assert_equals_the_defaults(loaded, default) -> None:
    """Equal to the defaults; ``pretrained`` is written relative to the config file (configs/),
    so it loads as the absolute path of configs/pretrain-broad.toml, a copy of the preset the
    default names."""
    if not hasattr(default, "pretrained"):
        assert loaded == default
        return
    assert default.pretrained == "pretrain-broad"  # the packaged preset, as configs/'s
    assert loaded.pretrained == str((REPO / "configs" / "pretrain-broad.toml").resolve())
    assert dataclasses.replace(loaded, pretrained=default.pretrained) == default


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
    assert_equals_the_defaults(load_config(RunConfig, path), RunConfig())
    # a complete preset: every key is written out, so users see every option
    assert _keys(tomllib.loads(path.read_text())) == _keys(to_dict(RunConfig()))


# ------------------------------------------------------------- numbers: NaN, inf, ranges


def _float_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key whose annotation is float (tuples of floats as key[0])."""
    import typing

    keys = []
    for name, tp in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(tp):
            keys += _float_keys(tp, f"{prefix}{name}.")
        elif tp is float:
            keys.append(prefix + name)
        elif typing.get_origin(tp) is tuple and typing.get_args(tp)[0] is float:
            keys.append(f"{prefix}{name}[0]")
    return keys


def _run_config():
    from fedsb.federated.config import RunConfig

    return RunConfig()


def _finetune_config():
    from fedsb.training.config import FinetuneConfig

    return FinetuneConfig()


def _pretrain_config():
    from fedsb.training.config import PretrainConfig

    return PretrainConfig()


CONFIGS = {"run": _run_config, "finetune": _finetune_config, "pretrain": _pretrain_config}


def _set(key: str, value: str) -> str:
    """An override for ``key`` (``a.b[0]`` sets the first element of the list ``a.b``)."""
    if not key.endswith("[0]"):
        return f"{key}={value}"
    return f"{key[:-3]}=[{value}, {value}]"


@pytest.mark.parametrize("which", sorted(CONFIGS))
def test_nan_is_refused_for_every_float_key_naming_it(which):
    config = CONFIGS[which]()
    keys = _float_keys(type(config))
    named = {"client.lr", "partition.dirichlet_alpha", "partition.snr_window_db", "dp.epsilon"}
    assert named <= set(keys) if which == "run" else len(keys) >= 10
    for key in keys:
        with pytest.raises(ConfigError, match=rf"\A{re.escape(key)}: expected a number, got nan\Z"):
            apply_overrides(config, [_set(key, "nan")])


#: Keys where inf means something (no bound, wait for ever, one window over the whole range).
INF_ALLOWED = {
    "partition.snr_window_db",
    "server.norm_bound",
    "server.timeout",
    "attack.factor",
}


@pytest.mark.parametrize("which", sorted(CONFIGS))
def test_inf_is_refused_unless_the_key_gives_it_a_meaning(which):
    config = CONFIGS[which]()
    for key in _float_keys(type(config)):
        if key in INF_ALLOWED:
            cfg = apply_overrides(config, [_set(key, "inf")])
            assert math.isinf(eval_key(cfg, key))
            continue
        pattern = rf"\A{re.escape(key.removesuffix('[0]'))}(\[\d\])?:? "
        with pytest.raises(ConfigError, match=pattern):
            apply_overrides(config, [_set(key, "inf")])


def eval_key(config, key: str):
    for part in key.split("."):
        config = getattr(config, part)
    return config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("partition.dirichlet_alpha=-1", r"partition\.dirichlet_alpha: must be >= 0, got -1\.0"),
        ("partition.dirichlet_alpha=inf", r"partition\.dirichlet_alpha: must be finite, got inf"),
        ("partition.quantity_sigma=-0.5", r"partition\.quantity_sigma: must be >= 0, got -0\.5"),
        ("partition.snr_window_db=0", r"partition\.snr_window_db: must be > 0, got 0\.0"),
        ("partition.clients=0", r"partition\.clients: must be >= 1, got 0"),
        ("partition.records_per_client=-3", r"partition\.records_per_client: must be >= 1"),
        ("partition.val_per_class=0", r"partition\.val_per_class: must be >= 1, got 0"),
        ("partition.min_records=0", r"partition\.min_records: must be >= 1, got 0"),
        ("partition.seed=-1", r"partition\.seed: must be >= 0, got -1"),
        ("seed=-1", r"seed: must be >= 0, got -1"),
        ("data.seed=-1", r"data\.seed must be >= 0, got -1"),
        ("adapter.init_seed=-1", r"adapter\.init_seed: must be >= 0, got -1"),
        ("adapter.rank=0", r"adapter\.rank: must be >= 1, got 0"),
        ("adapter.alpha=0", r"adapter\.alpha: must be > 0, got 0\.0"),
        ("rounds=0", r"rounds: must be >= 1, got 0"),
        ("workers=0", r"workers: must be >= 1, got 0"),
        ("threads=-1", r"threads: must be >= 0, got -1"),
        ("client.lr=0", r"client\.lr: must be > 0, got 0\.0"),
        ("client.lr=inf", r"client\.lr: must be finite, got inf"),
        ("client.lora_lr=-1", r"client\.lora_lr: must be > 0, got -1\.0"),
        ("client.batch_size=0", r"client\.batch_size: must be >= 1, got 0"),
        ("client.local_epochs=0", r"client\.local_epochs: must be >= 1, got 0"),
        ("client.weight_decay=-1", r"client\.weight_decay: must be >= 0, got -1\.0"),
        ("client.label_smoothing=1", r"client\.label_smoothing: must be in \[0, 1\), got 1\.0"),
        ("client.prox_mu=-1", r"client\.prox_mu: must be >= 0, got -1\.0"),
        ("server.fraction=0", r"server\.fraction: must be in \(0, 1\], got 0\.0"),
        ("server.trim=0.5", r"server\.trim: must be in \[0, 0\.5\), got 0\.5"),
        ("server.min_clients=0", r"server\.min_clients: must be >= 1, got 0"),
        ("server.lr=0", r"server\.lr: must be > 0, got 0\.0"),
        ("server.beta1=1", r"server\.beta1: must be in \[0, 1\), got 1\.0"),
        ("server.tau=0", r"server\.tau: must be > 0, got 0\.0"),
        ("server.timeout=-1", r"server\.timeout: must be >= 0, got -1\.0"),
        ("dp.epsilon=inf", r"dp\.epsilon: must be finite, got inf"),
        ("dp.delta=1", r"dp\.delta: must be in \(0, 1\), got 1\.0"),
        ("dp.clip=0", r"dp\.clip: must be > 0, got 0\.0"),
        ("dp.accountant='x'", r"dp\.accountant: 'x' is not one of 'rdp', 'prv', 'gdp'"),
        ("attack.kind='x'", r"attack\.kind: 'x' is not one of 'none', 'scale'"),
        ("attack.sleep=-1", r"attack\.sleep: must be >= 0, got -1\.0"),
        ("data.classes='foo'", r"data\.classes: unknown class 'foo'"),
        ("data.generator.snr_step=-1", r"data\.generator\.snr_step: must be >= 0, got -1\.0"),
        ("data.generator.snr_step=1e-9", r"data\.generator\.snr_step: 1e-09 dB makes more than"),
        ("data.generator.fading.taps=[0, 3]", r"data\.generator\.fading\.taps: 0 is below"),
        ("data.generator.fading.probability=2", r"data\.generator\.fading\.probability: must be"),
        ("data.images.size=4", r"data\.images\.size must be in \[8, 256\], got 4"),
    ],
)
def test_bad_run_values_name_the_dotted_key(override, message):
    with pytest.raises(ConfigError, match=rf"\A{message}"):
        apply_overrides(_run_config(), [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=0", r"train\.epochs: must be >= 1, got 0"),
        ("train.lr=-1", r"train\.lr: must be > 0, got -1\.0"),
        ("train.warmup=1", r"train\.warmup: must be in \[0, 1\), got 1\.0"),
        ("train.label_smoothing=-0.1", r"train\.label_smoothing: must be in \[0, 1\)"),
        ("train.weight_decay=-1", r"train\.weight_decay: must be >= 0, got -1\.0"),
        ("train.seed=-1", r"train\.seed: must be >= 0, got -1"),
        ("train.threads=-2", r"train\.threads: must be >= 0, got -2"),
        ("val_per_class=0", r"val_per_class: must be >= 1, got 0"),
        ("test_per_class=0", r"test_per_class: must be >= 1, got 0"),
        ("full_lr=0", r"full_lr: must be > 0, got 0\.0"),
        ("adapter.init_lr=0", r"adapter\.init_lr: must be > 0, got 0\.0"),
        ("adapter.init_samples=0", r"adapter\.init_samples: must be >= 1, got 0"),
    ],
)
def test_bad_finetune_values_name_the_dotted_key(override, message):
    with pytest.raises(ConfigError, match=rf"\A{message}"):
        apply_overrides(_finetune_config(), [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.groups=0", r"model\.groups: must be >= 1, got 0"),
        ("model.heads=0", r"model\.heads: must be >= 1, got 0"),
        ("model.dim=0", r"model\.dim: must be >= 1, got 0"),
        ("model.widths=[0, 8, 16, 32]", r"model\.widths\[0\]: must be >= 1, got 0"),
        ("model.blocks=[1, 0, 1, 1]", r"model\.blocks\[1\]: must be >= 1, got 0"),
        ("model.mlp_ratio=0", r"model\.mlp_ratio: must be > 0, got 0\.0"),
        ("model.mlp_ratio=0.001", r"model\.mlp_ratio: dim \* mlp_ratio must be >= 1"),
        ("model.dropout=1", r"model\.dropout: must be in \[0, 1\), got 1\.0"),
        ("model.patch=0", r"model\.patch: must be >= 1, got 0"),
        ("val_per_class=-1", r"val_per_class: must be >= 1, got -1"),
    ],
)
def test_bad_pretrain_values_name_the_dotted_key(override, message):
    with pytest.raises(ConfigError, match=rf"\A{message}"):
        apply_overrides(_pretrain_config(), [override])


def test_a_bad_value_in_a_file_names_the_file_and_the_dotted_key(tmp_path):
    from fedsb.federated.config import RunConfig

    path = tmp_path / "run.toml"
    path.write_text("[partition]\nseed = -1\n")
    with pytest.raises(ConfigError, match=r"run\.toml: partition\.seed: must be >= 0, got -1\Z"):
        load_config(RunConfig, path)
    path.write_text("[client]\nlr = nan\n")
    with pytest.raises(ConfigError, match=r"run\.toml: client\.lr: expected a number, got nan\Z"):
        load_config(RunConfig, path)


def test_messages_about_several_keys_keep_the_table_name():
    # a message that starts with a key of the table gets the dotted prefix; any other message
    # gets "table: message"
    from fedsb.config import _scoped

    assert _scoped("rank: must be >= 1, got 0", "adapter.", {"rank"}) == (
        "adapter.rank: must be >= 1, got 0"
    )
    assert _scoped("something is wrong", "adapter.", {"rank"}) == "adapter: something is wrong"
    assert _scoped("ranked: x", "adapter.", {"rank"}) == "adapter: ranked: x"
    assert _scoped("rank: x", "", {"rank"}) == "rank: x"


def test_unreadable_config_files_are_one_line_errors_naming_the_file(tmp_path):
    from fedsb.config import MAX_CONFIG_BYTES

    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"dir\.toml: is a directory, not a config file\Z"):
        load_config(DataConfig, folder)
    deep = tmp_path / "deep.toml"
    deep.write_text("v = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.toml: invalid TOML \(nests too deep to read\)"):
        load_config(DataConfig, deep)
    big = tmp_path / "big.toml"
    big.write_text("#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match=r"big\.toml: 1,048,577 bytes is too large"):
        load_config(DataConfig, big)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00seed = 1")
    with pytest.raises(ConfigError, match=r"binary\.toml: invalid TOML"):
        load_config(DataConfig, binary)


# ------------------------------------------------------------- presets shipped in the package
@pytest.mark.parametrize("name", ["data", "pretrain", "finetune", "run"])
def test_configs_dir_holds_exact_copies_of_the_packaged_presets(name):
    from fedsb.config import preset_path

    assert (REPO / "configs" / f"{name}.toml").read_bytes() == preset_path(name).read_bytes()


@pytest.mark.parametrize(
    ("name", "module", "cls"),
    [
        ("data", "fedsb.data.config", "DataConfig"),
        ("pretrain", "fedsb.training.config", "PretrainConfig"),
        ("finetune", "fedsb.training.config", "FinetuneConfig"),
        ("run", "fedsb.federated.config", "RunConfig"),
    ],
)
def test_a_preset_loads_by_name_from_any_directory(name, module, cls, tmp_path, monkeypatch):
    import importlib

    from fedsb.config import preset_path

    config_cls = getattr(importlib.import_module(module), cls)
    monkeypatch.chdir(tmp_path)
    loaded = load_config(config_cls, name)
    if hasattr(loaded, "pretrained"):  # resolved beside the preset, inside the package
        assert loaded.pretrained == str(preset_path("pretrain-broad").resolve())
        loaded = dataclasses.replace(loaded, pretrained=config_cls().pretrained)
    assert loaded == config_cls()


def test_an_unknown_preset_name_is_a_missing_file(tmp_path, monkeypatch):
    from fedsb.config import preset_path

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="nosuch: no such config file"):
        load_config(DataConfig, "nosuch")
    with pytest.raises(ConfigError, match="config: no preset 'nosuch' .presets: data, pretrain"):
        preset_path("nosuch")


def test_finetuning_refuses_an_empty_adapter_method():
    from fedsb.training.config import FinetuneConfig

    with pytest.raises(ConfigError, match=r"adapter.method: name the adapter to fine-tune"):
        apply_overrides(FinetuneConfig(), ["adapter.method=''"])


def test_data_paths_in_a_config_file_resolve_beside_it(tmp_path, monkeypatch):
    """``[data] paths`` (files, directories, globs) are relative to the config file."""
    from fedsb.federated.config import RunConfig

    (tmp_path / "sites" / "a").mkdir(parents=True)
    (tmp_path / "sites" / "a" / "x.npz").write_bytes(b"")
    config = tmp_path / "run.toml"
    config.write_text(
        '[data]\nsource = "files"\nclasses = "found"\n'
        'paths = ["sites/a", "sites/*/*.npz", "not-there/*.npz"]\n'
    )
    monkeypatch.chdir("/")
    cfg = load_config(RunConfig, config)
    assert cfg.data.paths == (
        str(tmp_path / "sites" / "a"),
        str(tmp_path / "sites/*/*.npz"),
        "not-there/*.npz",  # nothing beside the file: relative to where fedsb runs
    )


def test_a_hash_neutral_field_at_its_default_keeps_the_cache_key():
    """A field added later (``HASH_NEUTRAL``) leaves old keys alone until it is set."""

    @dataclasses.dataclass(frozen=True)
    class Before:
        x: int = 1

    @dataclasses.dataclass(frozen=True)
    class After:
        x: int = 1
        y: tuple[str, ...] = ()
        HASH_NEUTRAL: ClassVar[frozenset[str]] = frozenset({"y"})

    assert config_hash(After()) == config_hash(Before())
    assert config_hash(After(y=("a",))) != config_hash(Before())
    assert config_hash(After(x=2)) == config_hash(Before(x=2)) != config_hash(Before())
    files = DataConfig(source="files", paths=("a.npz",), classes="found")
    assert config_hash(files) != config_hash(DataConfig())
