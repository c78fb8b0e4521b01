"""One compose-and-validate path for the four commands.

Order, always the same: defaults (the dataclass schemas) -> for `automl fit`, the YAML under
``conf/`` -> the user's ``key=value`` arguments -> validation and cross-field checks, all before
any data is read. `automl fit` composes with Hydra (overrides, ``+key``, ``~key``, sweeps); the
other commands parse their arguments with ``keys.parse_args``. Both report an unknown key with
the closest valid one, and a value of the wrong type with the key, the value and the type.
"""
from __future__ import annotations

import itertools
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from automl.config.commands import SCHEMAS, compose_command
from automl.config.fit import CandidateConfig, Config
from automl.config.continued import continued_config
from automl.config.keys import closest, convert, schema_keys, type_error, unknown_key, yaml_value
from automl.config.validate import validate_config
from automl.errors import ConfigError
from automl.resources import project_dir

COMMANDS = ("fit", *SCHEMAS)
_GROUPS = ("data", "candidates", "tracking")  # Hydra config groups under conf/ (data=digits, candidates=default)
_FREE = ("data.storage_options.", "data.types.", "hydra.")  # free-form keys below these


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


def _fit_key_error(key: str, added: bool = False) -> ConfigError:
    if added:  # `+key=value` on a key outside the schema: the same error, with the same hint
        error = _fit_key_error(key)
        return ConfigError(f"{error}. '+' adds only free-form keys: a storage option "
                           "(+data.storage_options.KEY=...) or a candidate (+candidates.NAME.algorithm=...)")
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


def _candidate_filter_keys(overrides: List[str], values: Dict[str, Any] | None):
    """``candidates.include=[...]``/``candidates.exclude=[...]`` (and ``candidates={"include": ...}``
    from Python) to their schema keys ``candidates_include``/``candidates_exclude``: ``candidates``
    itself is a dict of candidates, which a list cannot be part of. ``data.types={col: kind}``
    (or ``data.types.col=kind``) adds the user's column names to that dict."""
    from automl.candidates.generate import FILTER_KEYS

    out = []
    for ov in overrides:
        head, sep, rest = ov.lstrip("+").partition("=")
        word = head[len("candidates."):] if head.startswith("candidates.") else ""
        if head == "data.types" or head.startswith("data.types."):  # a dict keyed by the user's columns
            ov = f"++{head}{sep}{rest}"  # Hydra cannot merge new keys into a dict of the schema otherwise
        out.append(f"{FILTER_KEYS[word]}={rest}" if sep and word in FILTER_KEYS else ov)
    if values and isinstance(values.get("candidates"), dict):
        values = {**values, "candidates": dict(values["candidates"])}
        for word, key in FILTER_KEYS.items():
            if word in values["candidates"]:
                values[key] = values["candidates"].pop(word)
    return out, values


def _added_key_error(overrides: Sequence[str]) -> Optional[ConfigError]:
    """``+key=value`` (and ``++``) adds a key: only where the schema takes free-form keys (a storage
    option, a new candidate, a candidate's inline space) or a key of a candidate's schema."""
    for ov in overrides:
        if not ov.startswith("+") or "=" not in ov:
            continue
        key = ov.lstrip("+").split("=", 1)[0].split("@", 1)[0]
        if _fit_key_kind(key) is None:
            return _fit_key_error(key, added=True)
    return None


_APPEND = re.compile(r"Could not append to config\. An item is already at '([^']+)'")
_ABSENT_CANDIDATE = re.compile(r"Could not override 'candidates\.([^.']+)\.")


def _split_new_candidates(overrides: List[str]) -> Tuple[List[str], List[Any]]:
    """(overrides for Hydra, parsed overrides of each candidate that a ``+`` override adds, in
    order). Hydra cannot create an entry of the typed ``candidates`` dict (it assigns a plain dict
    where a CandidateConfig is due: "Error merging override"), so those are applied after it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides=overrides)
    except Exception:  # a syntax error: Hydra reports it
        return overrides, []
    for ov in parsed:
        if ov.is_sweep_override():
            raise ConfigError(f"{ov.input_line} is a sweep (several values); sweeps run with -m: "
                              f"automl fit -m {ov.input_line}")

    def name(ov: Any) -> Optional[str]:
        parts = ov.key_or_group.split(".")
        return parts[1] if parts[0] == "candidates" and len(parts) > 1 and ov.package is None else None

    added = {name(ov) for ov in parsed if (ov.is_add() or ov.is_force_add()) and name(ov)}
    keep = [text for text, ov in zip(overrides, parsed) if name(ov) not in added]
    return keep, [ov for ov in parsed if name(ov) in added]


def _apply_new_candidates(cfg: DictConfig, late: Sequence[Any]) -> None:
    """Apply the overrides of added candidates as Hydra would: a new candidate starts from the
    schema's defaults (``algorithm`` required), and ``+`` may set any of its keys."""
    created = set()
    for ov in late:
        key, line = ov.key_or_group, ov.input_line
        name = key.split(".")[1]
        if ov.is_sweep_override():
            raise ConfigError(f"{line} is a sweep; sweeps need -m (automl fit -m {line})")
        if ov.is_delete():
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg, parent)
            if node is None or leaf not in node or parent != "candidates":
                raise ConfigError(f"{line}: only a whole candidate can be dropped (~candidates.{name}); "
                                  f"set one of its keys instead, e.g. candidates.{name}.max_rows=null")
            with open_dict(cfg):
                del node[leaf]
            continue
        value = ov.value()
        if name not in cfg.candidates:
            if not (ov.is_add() or ov.is_force_add()):
                raise ConfigError(f"{line}: candidate '{name}' is not in the config yet; add it first with "
                                  f"+candidates.{name}.algorithm=ALGORITHM")
            with open_dict(cfg.candidates):
                cfg.candidates.merge_with({name: {}})
            created.add(name)
        elif (ov.is_add() and name not in created and OmegaConf.select(cfg, key) is not None
              and not isinstance(value, (dict, list))):
            raise ConfigError(f"+{key}=... adds a key, but {key} is already in the config; set it with "
                              f"{key}=VALUE (no '+')")
        try:
            if key.count(".") == 1:
                cfg.candidates[name].merge_with(value if isinstance(value, dict) else {})
            else:
                OmegaConf.update(cfg, key, value, merge=True)
        except Exception:  # an unknown key or a value of the wrong type: the schema's one-line errors
            raise (_override_error([f"{key}={ov.get_value_element_as_str()}"]) or
                   ConfigError(f"invalid candidate override {line}; a candidate's keys: "
                               f"{', '.join(schema_keys(CandidateConfig))}")) from None
    for name in created:
        if name in cfg.candidates and OmegaConf.is_missing(cfg.candidates[name], "algorithm"):
            raise ConfigError(f"candidate '{name}' added with '+' needs an algorithm: "
                              f"+candidates.{name}.algorithm=ALGORITHM (e.g. xgboost, linear)")


def compose_overrides(overrides: List[str] | None = None, config_name: str = "config") -> DictConfig:
    """``conf/<config_name>.yaml`` composed with Hydra override strings; unknown keys and values of
    the wrong type are one-line errors. Not validated: see ``compose_config``."""
    overrides, _ = _candidate_filter_keys(list(overrides or []), None)
    added = _added_key_error(overrides)
    if added is not None:
        raise added
    overrides, late = _split_new_candidates(overrides)
    conf_dir = str(project_dir("conf"))
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf_dir, version_base=None):
            cfg = compose(config_name=config_name, overrides=overrides)
    except Exception as exc:  # hydra raises several types; turn all into one line
        exists = _APPEND.search(str(exc))
        if exists:
            key = exists.group(1)
            raise ConfigError(f"+{key}=... adds a key, but {key} is already in the config; set it with "
                              f"{key}=VALUE (no '+')") from None
        known = _override_error(overrides)
        if known is not None:
            raise known from None
        absent = _ABSENT_CANDIDATE.search(str(exc))
        if absent:
            name = absent.group(1)
            raise ConfigError(f"candidate '{name}' is not in the config; add it with a '+': "
                              f"+candidates.{name}.algorithm=ALGORITHM (then +candidates.{name}.KEY=VALUE)") from None
        raise ConfigError(
            f"invalid config override: {_clean_hydra_message(exc)}. Valid top-level keys: "
            f"{_top_level()}; see docs/configuration.md"
        ) from None
    finally:
        GlobalHydra.instance().clear()
    _apply_new_candidates(cfg, late)
    return cfg


def _value_key_error(values: Dict[str, Any], prefix: str = "") -> Optional[ConfigError]:
    """The closest-key error for the first key of ``values`` (a nested dict from Python, e.g.
    ``budget={"time_limt_s": 60}``) that the schema does not take; None when all are known."""
    for name, value in values.items():
        key = f"{prefix}{name}"
        kind = _fit_key_kind(key)
        leaf = kind is not None and kind is not True
        if isinstance(value, dict) and value and not leaf:
            found = _value_key_error(value, f"{key}.")
            if found is not None:
                return found
        elif kind is None:
            return _fit_key_error(key)
    return None


def compose_config(overrides: List[str] | None = None, config_name: str = "config",
                   values: Dict[str, Any] | None = None) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra override strings, merge ``values`` (a nested
    dict, as the Python API passes them), then validate."""
    overrides, values = _candidate_filter_keys(list(overrides or []), values)
    cfg = compose_overrides(overrides, config_name)
    if values:
        try:
            # Free-form dict keys (storage options, new candidates) may be added from Python,
            # as `+key=value` does from the shell; the typed schema still rejects unknown keys.
            with open_dict(cfg.data.storage_options), open_dict(cfg.candidates), open_dict(cfg.data.types):
                cfg = OmegaConf.merge(cfg, OmegaConf.create(values))
        except Exception as exc:
            known = _value_key_error(values)
            if known is not None:
                raise known from None
            raise ConfigError(
                f"invalid config value: {_clean_hydra_message(exc)}. Valid top-level keys: "
                f"{_top_level()}; see docs/configuration.md"
            ) from None
    # resume=true on a finished run: its config.yaml, changed only by the keys given (config/continued.py)
    cfg = continued_config(cfg, overrides, values)
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


def config_yaml(command: str, args: Sequence[str]) -> str:
    """`automl <command> --cfg job`: the composed and checked config as YAML, secrets masked
    (what a run folder's config.yaml would hold); nothing is read or run."""
    from automl.redact import redacted_yaml

    cfg = compose_for(command, args)
    return redacted_yaml(cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg))
