"""Candidates from a folder of YAML files (``candidates_dir=PATH``): a run's ``candidates/``, edited.

Each ``<name>.yaml`` is one candidate in the format the runner writes (algorithm, description,
processing, inline ``space``). The folder replaces the default candidates: a removed file is a
removed candidate; edited ranges, fixed values and processing steps are used as written.
Warm-start values (``init``, ``portfolio``) that fall outside an edited range are moved into it,
so the search never evaluates a value outside the range the user asked for.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import fsspec
import yaml
from omegaconf import DictConfig, OmegaConf

from automl.candidates.check import check_candidates
from automl.errors import ConfigError

log = logging.getLogger(__name__)

ALLOWED_KEYS = {"algorithm", "description", "processing", "space", "search_space", "enabled", "max_rows"}


def read_candidate_files(folder: str, storage_options: Optional[Dict[str, Any]] = None) -> Dict[str, Dict[str, Any]]:
    """``{name: candidate dict}`` for every ``*.yaml``/``*.yml`` file in ``folder`` (sorted by name)."""
    fs, root = fsspec.core.url_to_fs(folder, **(storage_options or {}))
    if not fs.isdir(root):
        raise ConfigError(f"candidates_dir={folder} is not a folder; pass the candidates/ folder of a run "
                          "(e.g. candidates_dir=outputs/<date>/<time>/candidates)")
    files = sorted(p for p in fs.ls(root, detail=False) if str(p).endswith((".yaml", ".yml")))
    if not files:
        raise ConfigError(f"candidates_dir={folder} holds no *.yaml files; keep at least one candidate file there")
    out: Dict[str, Dict[str, Any]] = {}
    for path in files:
        name = str(path).rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        try:
            with fs.open(path, "r") as fh:
                spec = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            where = f" (line {line + 1})" if line is not None else ""
            raise ConfigError(f"candidates_dir: {path} is not valid YAML{where}; fix the file or remove it") from None
        if not isinstance(spec, dict) or "algorithm" not in spec:
            raise ConfigError(f"candidates_dir: {path} must be a mapping with at least `algorithm:`; "
                              f"got {type(spec).__name__}")
        unknown = set(spec) - ALLOWED_KEYS
        if unknown:
            raise ConfigError(f"candidates_dir: {path} has unknown key(s) {sorted(unknown)}; "
                              f"allowed: {sorted(ALLOWED_KEYS)}")
        if spec.get("space") is not None:
            spec["space"] = clip_warm_start(spec["space"], name)
        out[name] = spec
    return out


def _clip(value: Any, spec: Dict[str, Any]) -> Any:
    if spec.get("type") == "categorical":
        choices = list(spec.get("choices") or [])
        return value if value in choices or not choices else choices[0]
    try:
        low, high = spec["low"], spec["high"]
        clipped = min(max(value, low), high)
    except (KeyError, TypeError):
        return value
    return int(round(clipped)) if spec.get("type") == "int" else float(clipped)


def clip_warm_start(space: Dict[str, Any], name: str) -> Dict[str, Any]:
    """Move ``init`` and ``portfolio`` values into each parameter's (possibly edited) range."""
    if not isinstance(space, dict):
        return space
    space = dict(space)
    params = {k: dict(v) if isinstance(v, dict) else v for k, v in (space.get("params") or {}).items()}
    for key, spec in params.items():
        if isinstance(spec, dict) and "init" in spec:
            new = _clip(spec["init"], spec)
            if new != spec["init"]:
                log.info("candidate %s: init of %s moved into its range (%r -> %r)", name, key, spec["init"], new)
                spec["init"] = new
    portfolio = []
    for entry in space.get("portfolio") or []:
        entry = dict(entry or {})
        for key, value in list(entry.items()):
            if isinstance(params.get(key), dict):
                entry[key] = _clip(value, params[key])
        portfolio.append(entry)
    space["params"] = params
    if "portfolio" in space:
        space["portfolio"] = portfolio
    return space


def apply_candidates_dir(cfg: DictConfig) -> None:
    """Replace ``cfg.candidates`` with the files of ``cfg.candidates_dir`` (in place; no-op when unset)."""
    folder = cfg.get("candidates_dir")
    if not folder:
        return
    specs = read_candidate_files(str(folder), dict(cfg.data.storage_options))
    OmegaConf.set_struct(cfg, False)
    try:
        cfg.candidates = {}
        cfg.merge_with({"candidates": specs})  # each file is checked against the candidate schema
    except Exception as exc:
        raise ConfigError(f"candidates_dir={folder}: a candidate file does not fit the candidate schema "
                          f"({str(exc).strip().splitlines()[0]}); compare it with a file the runner wrote") from None
    finally:
        OmegaConf.set_struct(cfg, True)
    check_candidates(cfg.candidates, cfg.get("search_spaces_dir"), cfg.problem_type)
    log.info("candidates from %s: %s", folder, ", ".join(specs))
