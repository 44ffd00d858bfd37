"""Config files: YAML (safe loader) plus `--set section.key=value` overrides, read into the typed
dataclasses of schema.py. An unknown key, a wrong type or an impossible value is a ConfigError naming the key.
"""
import dataclasses
import types
import typing
from pathlib import Path

import yaml

from ..common.errors import ConfigError


def _type_name(tp) -> str:
    if typing.get_origin(tp) is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if typing.get_origin(tp) is dict:
        return f"a mapping of names to {_type_name(typing.get_args(tp)[1])}"
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    name = " or ".join(a.__name__ for a in args) if args else tp.__name__
    return name + (" or null" if type(None) in typing.get_args(tp) else "")


def _coerce(value, tp, key):
    """Check `value` against the field type; ints are accepted for floats, '1e-3' too (YAML 1.1 reads it as a string)."""
    allowed = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{key}: must be {_type_name(tp)}, got null")
    for t in allowed:
        if typing.get_origin(t) is dict and isinstance(value, dict):
            key_type, value_type = typing.get_args(t)
            return {_coerce(k, key_type, key): _coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}
        if typing.get_origin(t) is list and isinstance(value, list):
            return [_coerce(v, typing.get_args(t)[0], f"{key}[{i}]") for i, v in enumerate(value)]
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is float and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if t is str and isinstance(value, str):
            return value
    raise ConfigError(f"{key}: must be {_type_name(tp)}, got {value!r}")


def from_dict(cls, data, at: str = ""):
    """Build dataclass `cls` from a nested dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{at or 'config'}: must be a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"{at}.{key}" if at else str(key)
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(names))})")
    values = {}
    defaults = {f.name: f.default_factory() for f in dataclasses.fields(cls) if f.default_factory is not dataclasses.MISSING}
    for name in names & data.keys():
        tp, where = hints[name], f"{at}.{name}" if at else name
        values[name] = from_dict(tp, data[name], where) if dataclasses.is_dataclass(tp) else _coerce(data[name], tp, where)
        if typing.get_origin(tp) is dict:  # a mapping given in part keeps the defaults' other entries
            values[name] = {**defaults[name], **values[name]}
    obj = cls(**values)
    for f in dataclasses.fields(obj):
        sub = getattr(obj, f.name)
        if dataclasses.is_dataclass(sub) and hasattr(sub, "validate"):
            sub.validate(f"{at}.{f.name}" if at else f.name)
    if hasattr(obj, "validate"):
        obj.validate(at)
    return obj


def apply_override(data: dict, override: str) -> None:
    """Apply one `section.key=value` to the raw dict; the value is parsed as YAML (so 3, true, null are typed)."""
    path, sep, raw = override.partition("=")
    if not sep or not path:
        raise ConfigError(f"--set {override!r}: expected SECTION.KEY=VALUE")
    *sections, key = path.strip().split(".")
    node = data
    for s in sections:
        node = node.setdefault(s, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {override!r}: {s} is not a section")
    try:
        node[key] = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {override!r}: value is not valid YAML") from None


def read_yaml(path: str | Path, what: str = "config file") -> dict:
    """A YAML file holding a mapping; anything else is a ConfigError naming the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as e:
        raise ConfigError(f"{path}: cannot read it as a YAML file ({type(e).__name__})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        raise ConfigError(f"{path}: the {what} is empty (truncated?); give the sections to use")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of sections, got {type(data).__name__}")
    return data


def load(cls, path: str | Path | None, overrides: list[str] = ()):
    """Load a config file (or only defaults when path is None) and apply overrides."""
    data = read_yaml(path) if path is not None else {}
    for o in overrides:
        apply_override(data, o)
    return from_dict(cls, data)


def to_dict(config) -> dict:
    return dataclasses.asdict(config)
