"""Frozen-dataclass configuration: load from TOML, override with ``key.sub=value``, save back.

Every config class is a ``@dataclass(frozen=True)`` whose fields are scalars, tuples or nested
config classes. Unknown keys and wrong types are errors naming the dotted key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from .errors import ConfigError
from .paths import resolve_config_paths

T = TypeVar("T")


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a TOML value to the annotated type, or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(map(repr, typing.get_args(tp)))
            raise ConfigError(f"{key}: {value!r} is not one of {choices}")
        return value
    if _is_config(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise ConfigError(f"{key}: expected a number, got {value!r}")  # NaN included
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp!r}")


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build config ``cls`` from a (nested) mapping; missing keys keep their defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(names))})")
    data = dict(data)
    for key in getattr(cls, "FOLLOWERS", {}):  # a follower left out follows its leader
        _set_key(data, key, "", missing_only=True)
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, ConfigError) as exc:  # a check in cls.__post_init__
        raise ConfigError(_scoped(str(exc), prefix, names)) from exc


def _set_key(data: dict[str, Any], key: str, value: Any, missing_only: bool = False) -> None:
    """Set dotted ``key`` in nested ``data``, copying the tables on the way.

    The caller's tables stay as they were; a table that is no table is left for ``_coerce`` to
    report.
    """
    *tables, last = key.split(".")
    node = data
    for table in tables:
        sub = node.get(table, {})
        if not isinstance(sub, Mapping):
            return
        node[table] = dict(sub)
        node = node[table]
    if not (missing_only and last in node):
        node[last] = value


def _scoped(message: str, prefix: str, names: set[str]) -> str:
    """Put the table path before a dataclass's message: ``rank: ...`` -> ``adapter.rank: ...``.

    A message that starts with one of the class's own keys gets the dotted prefix; any other
    (one about several keys) gets ``table: message``.
    """
    if not prefix:
        return message
    head = re.match(r"[A-Za-z_]\w*(?=[ :.\[=]|$)", message)
    if head and head.group() in names:
        return prefix + message
    return f"{prefix.rstrip('.')}: {message}"


def check_number(
    key: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
    allow_inf: bool = False,
) -> None:
    """Raise ValueError ``key: must be ..., got value`` unless low <= value <= high.

    NaN never passes; inf only with ``allow_inf``. ``open_low``/``open_high`` make a bound
    strict.
    """
    ok = value == value
    if low is not None:
        ok = ok and (value > low if open_low else value >= low)
    if high is not None:
        ok = ok and (value < high if open_high else value <= high)
    if not ok:
        raise ValueError(f"{key}: must be {_rule(low, high, open_low, open_high)}, got {value!r}")
    if not allow_inf and math.isinf(value):
        raise ValueError(f"{key}: must be finite, got {value!r}")


def _rule(low: float | None, high: float | None, open_low: bool, open_high: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    if low is not None:
        return f"{'>' if open_low else '>='} {low:g}"
    return "a number" if high is None else f"{'<' if open_high else '<='} {high:g}"


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain dict of a config (tuples become lists), suitable for TOML and JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        return v

    return plain(config)


def _parse_value(text: str) -> Any:
    """Parse an override's right-hand side as a TOML value, falling back to a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(config: T, overrides: Iterable[str]) -> T:
    """Apply ``a.b=value`` overrides (value in TOML syntax: ``3``, ``[-10, 20]``, ``"x"``).

    A class's ``FOLLOWERS`` (dotted key -> the key it follows, "" meaning "follow") follow
    again when their leader is overridden and they are not: ``method=fedit`` retrains with
    fedit's adapter instead of conflicting with the one the old method implied.
    """
    data = to_dict(config)
    given = set()
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{key}: unknown key")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"{key}: unknown key")
        node[parts[-1]] = _parse_value(text.strip())
        given.add(key)
    for follower, leader in getattr(type(config), "FOLLOWERS", {}).items():
        if leader in given and follower not in given:
            _set_key(data, follower, "")
    return from_dict(type(config), data)


MAX_CONFIG_BYTES = 1 << 20  # a config is a few kB; anything this large is not one


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML table of a config file, or a one-line ConfigError naming the file."""
    try:
        if path.is_dir():
            raise ConfigError(f"{path}: is a directory, not a config file")
        if path.exists() and not path.is_file():
            raise ConfigError(f"{path}: not a regular file")
        if path.exists() and path.stat().st_size > MAX_CONFIG_BYTES:
            size = path.stat().st_size
            raise ConfigError(f"{path}: {size:,} bytes is too large for a config file")
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    except RecursionError:  # tomllib recurses once per nesting level
        raise ConfigError(f"{path}: invalid TOML (nests too deep to read)") from None


#: The presets shipped inside the package: ``--config run`` loads ``presets/run.toml``.
PRESETS = ("data", "pretrain", "finetune", "run", "pretrain-wide", "run-wide", "pretrain-broad")


def preset_path(name: str) -> Path:
    """The shipped preset ``name``; it lives in the package, so it works after a pip install."""
    if name not in PRESETS:
        raise ConfigError(f"config: no preset {name!r} (presets: {', '.join(PRESETS)})")
    return Path(__file__).with_name("presets") / f"{name}.toml"


def config_file(spec: str | Path) -> Path:
    """A config named by a preset (``run``: a bare name) or by a TOML file's path."""
    return preset_path(str(spec)) if str(spec) in PRESETS else Path(spec)


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Load ``cls`` from a preset name or a TOML file, then apply overrides.

    When ``path`` is None, start from the defaults.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = config_file(path)
        data = resolve_config_paths(cls, read_toml(path), path)  # paths: relative to the file
        try:
            config = from_dict(cls, data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    else:
        config = cls()
    return apply_overrides(config, overrides)


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[4:].strip()  # tomli_w's exact scalar formatting


def dumps_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Compact TOML of a nested dict: scalars and short lists on one line, one table per level."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, sub in ((k, v) for k, v in data.items() if isinstance(v, dict)):
        name = f"{prefix}{key}"
        lines += ["", f"[{name}]", dumps_toml(sub, name + ".").strip("\n")]
    return "\n".join(lines).strip("\n") + "\n"


def save_config(config: Any, path: str | Path, header: str = "") -> None:
    """Write the resolved config as TOML (what a run directory keeps)."""
    Path(path).write_text(header + dumps_toml(to_dict(config)))


def _hashed(v: Any) -> Any:
    """``to_dict`` without the fields a config class lists in ``HASH_NEUTRAL`` at their default."""
    if dataclasses.is_dataclass(v):
        neutral = getattr(type(v), "HASH_NEUTRAL", frozenset())
        out = {}
        for f in dataclasses.fields(v):
            value = getattr(v, f.name)
            if f.name in neutral and value == _default(f):
                continue
            out[f.name] = _hashed(value)
        return out
    if isinstance(v, tuple | list):
        return [_hashed(x) for x in v]
    return v


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def config_hash(config: Any) -> str:
    """Short stable hash of a config: caches are keyed by it.

    A field added later whose default keeps the old behaviour (``HASH_NEUTRAL`` of its class:
    where to run, or file-source settings of a generated set) is left out while at its default,
    so adding it invalidates no cached data or backbone.
    """
    blob = json.dumps(_hashed(config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
