"""The searcher's parts shared by the Ray search (search/tuner.py) and the in-process one
(search/local.py): the joint define-by-run space, the warm-start order and the sampler.
Nothing here imports Ray."""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional

from automl.candidates.generate import Candidate
from automl.candidates.space import portfolio_points, suggest
from automl.search.resume import unevaluated


class DefineByRun:
    """The joint space: pick a candidate, then sample only its sub-space (picklable)."""

    def __init__(self, spaces: Dict[str, Dict[str, Any]], problem_type: str):
        self.spaces = spaces
        self.problem_type = problem_type

    def __call__(self, trial):
        name = trial.suggest_categorical("candidate", list(self.spaces))
        suggest(trial, name, self.spaces[name], self.problem_type)
        return None


def warm_points(candidates: List[Candidate], problem_type: str, warm_start: bool,
                previous: Optional[List[Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    """Portfolio points in round-robin order (every candidate's first known-good point, then
    the second ...), less those an earlier attempt of this run already evaluated."""
    points: List[Dict[str, Any]] = []
    if warm_start:
        per_candidate = [portfolio_points(c.name, c.space, problem_type) for c in candidates]
        for rank in range(max((len(p) for p in per_candidate), default=0)):
            points.extend(p[rank] for p in per_candidate if rank < len(p))
    if previous:
        points = unevaluated(points, previous)
    return points


def make_sampler(searcher: str, seed: int, n_startup: int, n_previous: int = 0):
    """Optuna's TPE (or random) sampler; a resumed run draws afresh (seed moved on)."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = seed + n_previous
    if searcher == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup, multivariate=True,
                                      group=True, constant_liar=True)
