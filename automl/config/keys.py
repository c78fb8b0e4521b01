"""``key=value`` arguments against a dataclass schema: one parser, one set of error messages.

Each argument is typed as OmegaConf types a dotlist entry (YAML: ``true``, ``8080``, ``[a,b]``),
except the keys a schema marks ``raw`` (ids, keys, paths), which keep the exact text given. The
value is then converted to the field's type; a value that does not convert is a one-line error
naming the key, the value and the type. An unknown key names the closest valid one.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from automl.errors import ConfigError

RAW = {"raw": True}  # field metadata: the value stays the exact text given (ids, keys, paths)
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "", "none", "null")


@dataclass(frozen=True)
class Key:
    """One dotted key of a schema: its type (``int``, ``float``, ``bool``, ``str``, ``list``),
    whether ``null`` is allowed, its default and whether its value stays raw text."""

    name: str
    kind: type
    optional: bool
    default: Any
    raw: bool = False


def _kind(annotation: Any) -> tuple[Any, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return _kind(inner[0])[0], True
    if typing.get_origin(annotation) in (list, List):
        return list, False
    return annotation, False


def schema_keys(schema: type, prefix: str = "") -> Dict[str, Key]:
    """Every dotted key of a (nested) dataclass schema, in declaration order."""
    hints = typing.get_type_hints(schema)
    out: Dict[str, Key] = {}
    for f in dataclasses.fields(schema):
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(schema_keys(hints[f.name], f"{name}."))
            continue
        kind, optional = _kind(hints[f.name])
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out[name] = Key(name, kind, optional, default, bool(f.metadata.get("raw")))
    return out


def flat_defaults(schema: type) -> Dict[str, Any]:
    """``{dotted key: default}`` of a schema (what PREDICT_KEYS and its kin spelled by hand)."""
    return {k.name: k.default for k in schema_keys(schema).values()}


def closest(key: str, valid: Sequence[str]) -> Optional[str]:
    """The valid key nearest to ``key`` (difflib), if any is close."""
    found = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    if not found:  # a misspelt last part of a dotted key: compare the last parts
        tail = key.rsplit(".", 1)[-1]
        tails = {v.rsplit(".", 1)[-1]: v for v in valid}
        near = difflib.get_close_matches(tail, list(tails), n=1, cutoff=0.75)
        found = [tails[near[0]]] if near else []
    return found[0] if found else None


def unknown_key(key: str, valid: Sequence[str], command: str, what: str = "valid keys") -> ConfigError:
    near = closest(key, valid)
    hint = f" (did you mean '{near}'?)" if near else ""
    return ConfigError(f"unknown key '{key}' for `automl {command}`{hint}; {what}: {', '.join(valid)}")


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "a list such as [a,b]"}


def type_error(key: str, value: Any, kind: Any) -> ConfigError:
    return ConfigError(f"{key} must be {_TYPE_NAMES.get(kind, getattr(kind, '__name__', kind))}; got {value!r}")


def yaml_value(key: str, text: str) -> Any:
    """``text`` typed as OmegaConf types a dotlist value (YAML)."""
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist([f"value={text}"]))["value"]
    except Exception as exc:  # the grammar's own error types; one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{key}: cannot parse {text!r} ({first}); quote it or fix the brackets") from None


def convert(key: Key, value: Any) -> Any:
    """``value`` as the key's type, or a one-line error."""
    if value is None and key.optional:
        return None
    if key.kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
    elif key.kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
    elif key.kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif key.kind is str:
        if isinstance(value, (str, int, float, bool)):
            return str(value)
    elif key.kind is list:
        if value is None or value == "":
            return []
        if isinstance(value, str):
            return [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
    raise type_error(key.name, value, key.kind)


def parse_args(schema: type, args: Sequence[str], command: str) -> DictConfig:
    """``key=value`` arguments over the schema's defaults: a typed, struct-mode DictConfig."""
    keys = schema_keys(schema)
    cfg = OmegaConf.structured(schema)
    for arg in args:
        if "=" not in arg:
            raise ConfigError(f"`automl {command}` takes key=value arguments; got '{arg}'")
        name, text = arg.split("=", 1)
        key = keys.get(name)
        if key is None:
            raise unknown_key(name, list(keys), command)
        value = convert(key, text if key.raw else yaml_value(name, text))
        OmegaConf.update(cfg, name, value, merge=False)
    return cfg


def flat_values(obj: Any) -> Dict[str, Any]:
    """A parsed schema (dataclass) as ``{dotted key: value}``."""
    out: Dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update({f"{f.name}.{k}": v for k, v in flat_values(value).items()})
        else:
            out[f.name] = list(value) if isinstance(value, list) else value
    return out
