"""Search spaces as data: loading ``search_spaces/*.yaml`` and sampling them with Optuna.

A parameter spec is ``{type: int|float|categorical, low, high, log, choices, init, only}``.
Inside one Tune experiment each parameter is named ``<candidate>:<param>`` so candidates
keep separate, conditional sub-spaces.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from automl.errors import ConfigError
from automl.resources import project_dir

SEP = ":"
_KEYS = {"type", "low", "high", "log", "choices", "init", "only"}


def load_space(ref: str, search_spaces_dir: Optional[str] = None) -> Dict[str, Any]:
    """Load a search space by name (``xgboost``) or by path to a YAML file."""
    path = Path(ref)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        base = Path(search_spaces_dir) if search_spaces_dir else project_dir("search_spaces")
        path = base / f"{ref}.yaml"
    if not path.exists():
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(
            f"search space '{ref}' not found in {path.parent}; available: {', '.join(available)}"
        )
    with open(path) as fh:
        space = yaml.safe_load(fh) or {}
    return normalise_space(space, str(path))


def normalise_space(space: Dict[str, Any], where: str) -> Dict[str, Any]:
    space = dict(space)
    params = dict(space.get("params") or {})
    for name, spec in params.items():
        if not isinstance(spec, dict) or spec.get("type") not in ("int", "float", "categorical"):
            raise ConfigError(
                f"{where}: parameter '{name}' needs type int, float or categorical; got {spec!r}"
            )
        unknown = set(spec) - _KEYS
        if unknown:
            raise ConfigError(f"{where}: parameter '{name}' has unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
        if spec["type"] == "categorical" and not spec.get("choices"):
            raise ConfigError(f"{where}: categorical parameter '{name}' needs a list of choices")
        if spec["type"] != "categorical" and (spec.get("low") is None or spec.get("high") is None):
            raise ConfigError(f"{where}: parameter '{name}' needs low and high")
        if spec["type"] != "categorical" and spec["low"] > spec["high"]:
            raise ConfigError(f"{where}: parameter '{name}' has low > high ({spec['low']} > {spec['high']})")
    return {"params": params, "fixed": dict(space.get("fixed") or {}),
            "portfolio": list(space.get("portfolio") or [{}])}


def applicable(spec: Dict[str, Any], problem_type: str) -> bool:
    only = spec.get("only")
    if only is None:
        return True
    kind = "regression" if problem_type == "regression" else "classification"
    return only in (kind, problem_type)


def _default(spec: Dict[str, Any]):
    if "init" in spec:
        return spec["init"]
    if spec["type"] == "categorical":
        return spec["choices"][0]
    mid = (spec["low"] + spec["high"]) / 2
    return int(round(mid)) if spec["type"] == "int" else mid


def init_point(space: Dict[str, Any], problem_type: str) -> Dict[str, Any]:
    return {k: _default(s) for k, s in space["params"].items() if applicable(s, problem_type)}


def suggest(trial, candidate: str, space: Dict[str, Any], problem_type: str) -> Dict[str, Any]:
    """Define-by-run sampling of one candidate's sub-space with an Optuna trial."""
    out = {}
    for name, spec in space["params"].items():
        if not applicable(spec, problem_type):
            continue
        key = f"{candidate}{SEP}{name}"
        if spec["type"] == "int":
            out[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        elif spec["type"] == "float":
            out[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
        else:
            out[key] = trial.suggest_categorical(key, list(spec["choices"]))
    return out


def portfolio_points(candidate: str, space: Dict[str, Any], problem_type: str) -> List[Dict[str, Any]]:
    """The candidate's warm-start configurations as Tune/Optuna points."""
    base = init_point(space, problem_type)
    points = []
    for entry in space["portfolio"]:
        merged = {**base, **{k: v for k, v in (entry or {}).items() if k in base}}
        point = {"candidate": candidate}
        point.update({f"{candidate}{SEP}{k}": v for k, v in merged.items()})
        if point not in points:  # an entry of only regression keys equals the init point elsewhere
            points.append(point)
    return points


def params_of(config: Dict[str, Any], candidate: str) -> Dict[str, Any]:
    """The candidate's own parameters from a flat Tune config (prefix removed)."""
    prefix = f"{candidate}{SEP}"
    return {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}


def split_params(params: Dict[str, Any]) -> tuple[Dict[str, Any], Dict[str, Any]]:
    """``model.*`` parameters go to the estimator, ``preprocess.*`` to the processing recipe."""
    model, pre = {}, {}
    for k, v in params.items():
        step, _, name = k.partition(".")
        if step == "model":
            model[name] = v
        elif step == "preprocess":
            pre[name] = v
        else:
            raise ConfigError(f"search-space parameter '{k}' must start with 'model.' or 'preprocess.'")
    return model, pre
