"""The plan stage: the candidates to search, for this data (``candidates_dir`` files were applied to the
config at the start of the fit, before any data was read: runner.fit)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List

from omegaconf import DictConfig

from automl.candidates.generate import Candidate, generate_candidates
from automl.errors import ConfigError
from automl.search.trial import weight_support
from automl.stages.prepare import Prepared

log = logging.getLogger(__name__)


@dataclass
class Plan:
    candidates: List[Candidate]
    skipped: Dict[str, str]  # candidate name -> why it was left out (summary.json)

    @property
    def by_name(self) -> Dict[str, Candidate]:
        return {c.name: c for c in self.candidates}


def plan_candidates(cfg: DictConfig, prepared: Prepared) -> Plan:
    """The candidates for this data, with the reason for each one left out."""
    candidates, skipped = generate_candidates(cfg, prepared.info.problem_type, len(prepared.df),
                                              prepared.feature_types)
    if prepared.weights is not None:
        candidates = weighted_only(candidates, skipped, prepared.info.problem_type)
    return Plan(candidates, skipped)


def weighted_only(candidates: List[Candidate], skipped: Dict[str, str], problem_type: str) -> List[Candidate]:
    """The candidates whose algorithm fits with sample weights; the others go to ``skipped``, logged."""
    kept = []
    for cand in candidates:
        why = weight_support(cand.algorithm, problem_type)
        if why:
            skipped[cand.name] = why
            log.info("candidate %s skipped: %s", cand.name, why)
        else:
            kept.append(cand)
    if not kept:
        raise ConfigError("no candidate can fit with sample weights (" + "; ".join(
            f"{c.name}: {skipped[c.name]}" for c in candidates) + "); enable one that can, e.g. xgboost or linear")
    return kept
