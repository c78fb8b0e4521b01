"""Checks of the ``candidates`` config that need no data: the one place for them.

``automl.config.validate_config`` runs them when a fit's config is composed, and
``candidates.from_dir`` when a candidates folder replaces the candidates, so a bad candidate stops
the fit before any data is read. ``generate.generate_candidates`` uses the same helpers.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from omegaconf import DictConfig, OmegaConf

from automl.candidates.algorithms import ALGORITHMS, get_algorithm
from automl.candidates.processing import check_processing
from automl.candidates.space import load_space, normalise_space
from automl.errors import ConfigError

PROBLEM_TYPES = ("binary", "multiclass", "regression")


def check_algorithm(name: str, algorithm: str) -> None:
    """A registry name, or ``module:factory`` (imported, as the fit would)."""
    if ":" in algorithm:
        get_algorithm(algorithm)
    elif algorithm not in ALGORITHMS:
        raise ConfigError(f"candidates.{name}.algorithm '{algorithm}' is unknown; "
                          f"valid algorithms: {', '.join(sorted(ALGORITHMS))}")


def check_problem_types(name: str, only: Optional[Any]) -> None:
    bad = sorted(set(only or []) - set(PROBLEM_TYPES))
    if bad:
        raise ConfigError(f"candidates.{name}.problem_types has unknown type(s) {', '.join(bad)}; "
                          "use binary, multiclass and/or regression")


def candidate_space(name: str, cc: Dict[str, Any], search_spaces_dir: Optional[str]) -> Dict[str, Any]:
    """The candidate's search space: its inline ``space``, else its ``search_space`` file or the algorithm's."""
    if cc.get("space"):
        return normalise_space(cc["space"], f"candidates.{name}.space")
    return load_space(cc.get("search_space") or cc["algorithm"], search_spaces_dir)


def check_candidate_processing(name: str, processing: Dict[str, Any], space: Dict[str, Any]) -> None:
    """Every processing value, and every searched ``preprocess.*`` choice, is one the pipeline knows."""
    for key, value in processing.items():
        check_processing(f"candidates.{name}.processing", key, value)
    for key, spec in space["params"].items():
        if key.startswith("preprocess."):
            for value in spec.get("choices") or []:
                check_processing(f"search space of {name}, {key}", key.partition(".")[2], value)


def check_candidates(candidates: Mapping[str, Any], search_spaces_dir: Optional[str] = None,
                     problem_type: str = "auto") -> None:
    """Check every candidate; disabled ones (and ones for another, explicit problem type) only by
    their algorithm, as the fit never builds them."""
    for name, cand in candidates.items():
        cc = OmegaConf.to_container(cand, resolve=True) if isinstance(cand, DictConfig) else dict(cand)
        check_algorithm(name, cc["algorithm"])
        if not cc.get("enabled", True):
            continue
        only = cc.get("problem_types")
        check_problem_types(name, only)
        if only and problem_type in PROBLEM_TYPES and problem_type not in only:
            continue
        space = candidate_space(name, cc, search_spaces_dir)
        check_candidate_processing(name, dict(cc.get("processing") or {}), space)
