"""The federated method registry: every entry is consistent, and nothing else names a method."""

from __future__ import annotations

import ast
import dataclasses
from fnmatch import fnmatch
from pathlib import Path

import pytest

import fedsb
from fedsb.config import apply_overrides, load_config, save_config
from fedsb.errors import ConfigError
from fedsb.federated.aggregate import method_keys_ok
from fedsb.federated.config import ADAPTER_OF, FED_METHODS, ClientConfig, RunConfig
from fedsb.federated.methods import METHODS, method
from fedsb.federated.task import build_task
from fedsb.models.adapters import adapter_state
from fedsb.models.config import ADAPTED_METHODS
from fedsb.models.config import METHODS as ADAPTER_METHODS
from fedsb.reporter import SilentReporter

PACKAGE = Path(fedsb.__file__).parent
NAMES = set(METHODS)


def test_registry_names_and_derived_tables():
    assert [m.name for m in METHODS.values()] == list(METHODS)
    assert FED_METHODS == (
        "fedsb",
        "fedit",
        "ffa",
        "fedex",
        "flora",
        "fedsa",
        "fedavg",
        "head-only",
        "centralized",
    )
    assert ADAPTER_OF["fedit"] == "lora" and ADAPTER_OF["centralized"] == "lora-sb"
    assert ADAPTED_METHODS == ADAPTER_METHODS[: len(ADAPTED_METHODS)]


@pytest.mark.parametrize("name", list(METHODS))
def test_entry_is_consistent(name):
    fed = METHODS[name]
    assert fed.adapter in ADAPTER_METHODS
    assert fed.lr_key in {f.name for f in dataclasses.fields(ClientConfig)}
    assert fed.lr_key.endswith("lr")
    assert fed.needs_basis == (fed.adapter == "lora-sb")
    assert not (fed.pooled and fed.dp)
    assert len(fed.style) == 2 and fed.style[0].startswith("#")
    assert RunConfig(method=name).adapter.method == fed.adapter


def test_styles_differ():
    assert len({m.style for m in METHODS.values()}) == len(METHODS)


@pytest.mark.parametrize("name", list(METHODS))
def test_sent_keys_are_what_the_adapter_trains(workspace, name):
    """On the tiny backbone: every trained tensor is sent or kept (fedsa's B, never both), and
    every pattern sends (or keeps) something."""
    cfg = workspace.config(f"method='{name}'")
    model = build_task(cfg, workspace.cache, SilentReporter()).model
    state = adapter_state(model)
    assert state and set(state) <= set(model.state_dict())
    kept = [k for k in state if any(fnmatch(k, p) for p in METHODS[name].personal)]
    sent = [k for k in state if k not in kept]
    assert method_keys_ok(name, sent) == []
    assert kept == [] or method_keys_ok(name, kept) == kept  # a kept key is never allowed up
    for pattern in (*METHODS[name].sent, *METHODS[name].personal):
        assert any(fnmatch(k, pattern) for k in state), pattern
    assert any(k.startswith("head.") for k in sent)


def test_unknown_method_names_the_key():
    with pytest.raises(ConfigError, match=r"^method 'bogus' is not one of fedsb, fedit, "):
        method("bogus")
    with pytest.raises(ConfigError, match=r"^method 'bogus' is not one of"):
        apply_overrides(RunConfig(), ["method='bogus'"])


def test_conflicting_adapter_method_is_refused():
    msg = (
        r"^adapter\.method: 'lora' conflicts with method 'fedsb' \(which trains 'lora-sb'\); "
        r"leave adapter\.method out$"
    )
    with pytest.raises(ConfigError, match=msg):
        apply_overrides(RunConfig(), ["adapter.method='lora'"])
    with pytest.raises(ConfigError, match=r"'lora-sb' conflicts with method 'fedavg'"):
        apply_overrides(RunConfig(), ["method='fedavg'", "adapter.method='lora-sb'"])


def test_adapter_method_follows_unless_given(tmp_path):
    assert RunConfig().adapter.method == "lora-sb"
    assert apply_overrides(RunConfig(), ["method='ffa'"]).adapter.method == "ffa-lora"
    agreed = apply_overrides(RunConfig(), ["method='fedit'", "adapter.method='lora'"])
    assert agreed.adapter.method == "lora"
    # a table without the key follows too (the class default of AdapterConfig is lora-sb)
    path = tmp_path / "run.toml"
    path.write_text('method = "fedavg"\n[adapter]\nrank = 4\n')
    loaded = load_config(RunConfig, path)
    assert (loaded.adapter.method, loaded.adapter.rank) == ("full", 4)
    path.write_text('method = "fedit"\n[adapter]\nmethod = "full"\n')
    with pytest.raises(ConfigError, match=r"run\.toml: adapter\.method: 'full' conflicts"):
        load_config(RunConfig, path)


def test_saved_config_keeps_the_resolved_adapter_and_loads_back(tmp_path):
    """A run directory's config.toml (old ones too) holds the resolved adapter.method."""
    cfg = apply_overrides(RunConfig(), ["method='fedit'"])
    save_config(cfg, tmp_path / "config.toml")
    assert 'method = "lora"' in (tmp_path / "config.toml").read_text()
    assert load_config(RunConfig, tmp_path / "config.toml") == cfg
    old = tmp_path / "old.toml"
    old.write_text('method = "fedsb"\n[adapter]\nmethod = "lora-sb"\n')
    assert load_config(RunConfig, old).adapter.method == "lora-sb"


def _method_literals(node: ast.AST, allowed: set[str]) -> list[str]:
    """Federated method names a comparison in ``node`` tests against (``==``, ``in (...)``)."""
    found = []
    for cmp in (n for n in ast.walk(node) if isinstance(n, ast.Compare)):
        for side in (cmp.left, *cmp.comparators):
            items = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
            for item in items:
                if isinstance(item, ast.Constant) and item.value in NAMES - allowed:
                    found.append(item.value)
    return found


def test_the_scan_finds_a_method_check():
    tree = ast.parse('if cfg.method == "fedsb" or m in ("ffa", "x"): pass')
    assert _method_literals(tree, set()) == ["fedsb", "ffa"]
    assert _method_literals(ast.parse('x = {"fedsb": 1}'), set()) == []


def test_no_module_but_the_registry_compares_to_a_method_name():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "federated/methods.py":
            continue
        allowed = set(ADAPTER_METHODS) if rel.startswith("models/") else set()
        names = _method_literals(ast.parse(path.read_text()), allowed)
        offenders += [f"{rel}: {n}" for n in names]
    assert offenders == []
