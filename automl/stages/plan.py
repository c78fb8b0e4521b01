"""The plan stage: the candidates to search, for this data (``candidates_dir`` files were applied to the
config at the start of the fit, before any data was read: runner.fit)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig

from automl.candidates.generate import Candidate, generate_candidates
from automl.errors import ConfigError
from automl.search.memory import DataShape, memory_limit_mb, plan_memory
from automl.search.trial import weight_support
from automl.stages.prepare import Prepared

log = logging.getLogger(__name__)


@dataclass
class Plan:
    candidates: List[Candidate]
    skipped: Dict[str, str]  # candidate name -> why it was left out (summary.json)
    memory: Optional[Dict[str, Any]] = None  # the memory plan (search/memory.py): summary.json's memory_plan

    @property
    def by_name(self) -> Dict[str, Candidate]:
        return {c.name: c for c in self.candidates}


def plan_candidates(cfg: DictConfig, prepared: Prepared) -> Plan:
    """The candidates for this data, with the reason for each one left out."""
    candidates, skipped = generate_candidates(cfg, prepared.info.problem_type, len(prepared.df),
                                              prepared.feature_types)
    if prepared.weights is not None:
        candidates = weighted_only(candidates, skipped, prepared.info.problem_type)
    if prepared.folds is None:  # mode=candidates_only: no trial runs
        return Plan(candidates, skipped)
    candidates, memory = memory_fit(cfg, prepared, candidates, skipped)
    return Plan(candidates, skipped, memory)


def memory_fit(cfg: DictConfig, prepared: Prepared, candidates: List[Candidate],
               skipped: Dict[str, str]) -> tuple:
    """The candidates predicted to fit the memory one trial may use (search/memory.py); the others
    go to ``skipped``, logged. Returns (kept, the plan's record)."""
    override = cfg.scale.get("memory_per_trial_mb")
    limit = None if cfg.ray.address and not override else memory_limit_mb(override, cfg.ray.num_cpus,
                                                                          cfg.ray.cpus_per_trial)
    shape = DataShape.of(prepared.X[prepared.features], prepared.feature_types, prepared.folds,
                         len(prepared.info.classes))
    plan = plan_memory(candidates, shape, limit, int(cfg.scale.get("memory_sample_min_rows") or 0))
    kept = [c for c in candidates if c.name not in plan.skipped]
    if not kept:
        lightest = min(candidates, key=lambda c: plan.peak_mb[c.name])
        if override:
            raise ConfigError(f"no candidate fits in scale.memory_per_trial_mb={override:g} MB: the lightest, "
                              f"{lightest.name}, is predicted at {plan.peak_mb[lightest.name]:.0f} MB per trial; "
                              "raise scale.memory_per_trial_mb or lower validation.max_train_rows")
        log.warning("every candidate is predicted over the %.0f MB a trial may use (%s): keeping the lightest, %s "
                    "(%.0f MB)", plan.limit_mb, plan.source, lightest.name, plan.peak_mb[lightest.name])
        plan.skipped.pop(lightest.name)
        kept = [lightest]
    for name, why in plan.skipped.items():
        skipped[name] = why
        log.info("candidate %s skipped: %s", name, why)
    for cand in kept:
        sample = plan.sampled.get(cand.name)
        if sample is not None:
            cand.memory_train_rows, cand.memory_refit_rows = sample["train_rows"], sample["refit_rows"]
            log.info("candidate %s down-sampled: %s", cand.name, sample["reason"])
    log.debug("memory plan: %s", plan.record())
    return kept, plan.record()


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
