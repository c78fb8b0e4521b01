"""One compose-and-validate path for the four commands.

Order, always the same: defaults (the dataclass schemas) -> for `automl fit`, the YAML under
``conf/`` -> the user's ``key=value`` arguments -> validation and cross-field checks, all before
any data is read. `automl fit` composes with Hydra (overrides, ``+key``, ``~key``, sweeps); the
other commands parse their arguments with ``keys.parse_args``. Both report an unknown key with
the closest valid one, and a value of the wrong type with the key, the value and the type.
"""
from __future__ import annotations

import itertools
from typing import Any, Dict, List, Optional, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from automl.config.commands import SCHEMAS, compose_command
from automl.config.fit import CandidateConfig, Config
from automl.config.keys import closest, convert, schema_keys, type_error, unknown_key, yaml_value
from automl.config.validate import validate_config
from automl.errors import ConfigError
from automl.resources import project_dir

COMMANDS = ("fit", *SCHEMAS)
_GROUPS = ("data", "candidates")  # Hydra config groups under conf/ (data=digits, candidates=default)
_FREE = ("data.storage_options.", "hydra.")  # free-form keys below these


def compose_for(command: str, args: Sequence[str]) -> Any:
    """The checked config of `automl <command> args`: a DictConfig for fit, a dataclass otherwise."""
    if command == "fit":
        return compose_config(list(args))
    if command not in SCHEMAS:
        raise ConfigError(f"unknown command '{command}'; valid commands: {', '.join(COMMANDS)}")
    return compose_command(command, args)


def _clean_hydra_message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    detail = ""
    for line in text[1:]:
        line = line.strip()
        if line.startswith("Key '") or line.startswith("Could not") or "not in struct" in line:
            detail = line
            break
    return f"{first} ({detail})" if detail and detail not in first else first


def _top_level() -> str:
    return ", ".join(sorted(Config.__dataclass_fields__))


def _fit_key_kind(key: str) -> Optional[Any]:
    """The schema entry of a fit key: a ``keys.Key``, True for a key the schema takes freely
    (a storage option, a candidate's name or inline space, a config group), None when unknown."""
    if key in _GROUPS or key.startswith(_FREE):
        return True
    if key.startswith("candidates."):
        parts = key.split(".", 2)
        if len(parts) == 2:
            return True
        tail = parts[2]
        if tail == "space" or tail.startswith("space."):
            return True
        return schema_keys(CandidateConfig).get(tail)
    return schema_keys(Config).get(key)


def _fit_key_error(key: str) -> ConfigError:
    if key.startswith("candidates.") and key.count(".") >= 2:
        tail = key.split(".", 2)[2]
        valid = list(schema_keys(CandidateConfig))
        near = closest(tail, valid)
        hint = f" (did you mean '{near}'?)" if near else ""
        return ConfigError(f"unknown key '{key}' for `automl fit`{hint}; a candidate's keys: {', '.join(valid)}")
    section = key.split(".", 1)[0]
    under = [k for k in schema_keys(Config) if k.startswith(f"{section}.")]
    if under and key == section:
        return ConfigError(f"{key} is a group of keys, not a value; give {under[0]}=... and its kin "
                           f"(valid keys under {section}: {', '.join(under)})")
    if under:
        return unknown_key(key, under, "fit", f"valid keys under {section}")
    near = closest(key, list(schema_keys(Config)))
    hint = f" (did you mean '{near}'?)" if near else ""
    return ConfigError(f"unknown key '{key}' for `automl fit`{hint}; valid top-level keys: {_top_level()}; "
                       "see docs/configuration.md")


def _override_error(overrides: Sequence[str]) -> Optional[ConfigError]:
    """A one-line error for the first override that names an unknown key or a value of the
    wrong type; None when neither explains Hydra's failure."""
    for ov in overrides:
        if ov.startswith("~") or "=" not in ov:
            continue
        key, text = ov.lstrip("+").split("=", 1)
        kind = _fit_key_kind(key)
        if kind is None and not ov.startswith("+"):
            return _fit_key_error(key)
        if kind is None or kind is True or kind.kind not in (bool, int, float, str, list):
            continue  # free-form
        try:
            convert(kind, yaml_value(key, text))
        except ConfigError:
            return type_error(key, text, kind.kind)
    return None


def compose_config(overrides: List[str] | None = None, config_name: str = "config",
                   values: Dict[str, Any] | None = None) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra override strings, merge ``values`` (a nested
    dict, as the Python API passes them), then validate."""
    overrides = list(overrides or [])
    conf_dir = str(project_dir("conf"))
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf_dir, version_base=None):
            cfg = compose(config_name=config_name, overrides=overrides)
    except Exception as exc:  # hydra raises several types; turn all into one line
        known = _override_error(overrides)
        if known is not None:
            raise known from None
        raise ConfigError(
            f"invalid config override: {_clean_hydra_message(exc)}. Valid top-level keys: "
            f"{_top_level()}; see docs/configuration.md"
        ) from None
    finally:
        GlobalHydra.instance().clear()
    if values:
        try:
            # Free-form dict keys (storage options, new candidates) may be added from Python,
            # as `+key=value` does from the shell; the typed schema still rejects unknown keys.
            with open_dict(cfg.data.storage_options), open_dict(cfg.candidates):
                cfg = OmegaConf.merge(cfg, OmegaConf.create(values))
        except Exception as exc:
            raise ConfigError(
                f"invalid config value: {_clean_hydra_message(exc)}. Valid top-level keys: "
                f"{_top_level()}; see docs/configuration.md"
            ) from None
    validate_config(cfg)
    return cfg


def expand_sweep(overrides: List[str]) -> List[List[str]]:
    """Expand Hydra sweep syntax (``metric=accuracy,f1_macro``, ``range(…)``) into runs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides=overrides)
    except Exception as exc:
        raise ConfigError(f"cannot parse overrides: {_clean_hydra_message(exc)}") from None
    axes = []
    for ov in parsed:
        key = ov.get_key_element()
        if ov.is_sweep_override():
            axes.append([f"{key}={v}" for v in ov.sweep_string_iterator()])
        else:
            axes.append([f"{key}={ov.get_value_element_as_str()}"])
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
