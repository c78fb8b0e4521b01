"""The plan stage: the candidates to search (generated, or read from ``candidates_dir``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

from omegaconf import DictConfig

from automl.candidates.from_dir import apply_candidates_dir
from automl.candidates.generate import Candidate, generate_candidates
from automl.stages.prepare import Prepared


@dataclass
class Plan:
    candidates: List[Candidate]
    skipped: Dict[str, str]  # candidate name -> why it was left out (summary.json)

    @property
    def by_name(self) -> Dict[str, Candidate]:
        return {c.name: c for c in self.candidates}


def plan_candidates(cfg: DictConfig, prepared: Prepared) -> Plan:
    """The candidates for this data; ``candidates_dir=PATH``: that folder's YAML files replace cfg.candidates."""
    apply_candidates_dir(cfg)
    candidates, skipped = generate_candidates(cfg, prepared.info.problem_type, len(prepared.df),
                                              prepared.feature_types)
    return Plan(candidates, skipped)
