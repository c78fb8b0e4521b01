"""``key=value`` helpers kept for callers of the earlier API (``automl.serving.options`` re-exports them).

The commands themselves parse their arguments against their schemas (automl/config/commands.py)
with ``automl.config.keys``; these functions use the same value typing and unknown-key message.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List

from automl.config.keys import unknown_key, yaml_value
from automl.errors import ConfigError


def _split(arg: str, allowed: Dict[str, object], command: str) -> tuple[str, str]:
    if "=" not in arg:
        raise ConfigError(f"`automl {command}` takes key=value arguments; got '{arg}'")
    key, text = arg.split("=", 1)
    if key not in allowed:
        raise unknown_key(key, list(allowed), command)
    return key, text


def parse_key_values(args: List[str], allowed: Dict[str, object], command: str) -> Dict[str, object]:
    """``key=value`` arguments against the ``allowed`` keys and their defaults; values YAML-typed
    and dotted keys nested (``a.b=1`` -> ``{"a": {"b": 1}}``)."""
    out = dict(allowed)
    for arg in args:
        key, text = _split(arg, allowed, command)
        top, *rest = key.split(".")
        value = yaml_value(key, text)
        for part in reversed(rest):
            value = {part: value}
        out[top] = value
    return out


def flat_options(args: List[str], defaults: Dict[str, Any], command: str,
                 raw_keys: Iterable[str] = ()) -> Dict[str, Any]:
    """Parse ``key=value`` arguments against ``defaults`` (dotted keys such as ``capture.enabled``).

    Values are YAML-typed (``true``, ``8080``, ``[a,b]``), except ``raw_keys`` (ids, keys, paths),
    which stay the exact text given.
    """
    raw = set(raw_keys)
    out = dict(defaults)
    for arg in args:
        key, text = _split(arg, defaults, command)
        out[key] = text if key in raw else yaml_value(key, text)
    return out


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", "", "none", "null"):
        return False
    raise ConfigError(f"{key} must be true or false; got {value!r}")


def as_int(value: Any, key: str, low: int = 0) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be an integer >= {low}; got {value!r}") from None
    if n < low:
        raise ConfigError(f"{key} must be an integer >= {low}; got {n}")
    return n


def as_list(value: Any, key: str) -> List[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.strip("[]").split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise ConfigError(f"{key} must be a list such as [a,b]; got {value!r}")
