"""The searcher's parts shared by the Ray search (search/tuner.py) and the search loop's
ask/tell (search/loop.py): the joint define-by-run space, the warm-start order, the sampler
and ``SearchSpec``, which holds them for one search. Nothing here imports Ray."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from automl.candidates.generate import Candidate
from automl.candidates.space import portfolio_points, suggest
from automl.search.resume import feed_study, unevaluated

log = logging.getLogger(__name__)


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


@dataclass
class SearchSpec:
    """What the searcher of one search is made of; earlier attempts' rows (``previous``) inform
    it and their warm-start points are not run again."""

    candidates: List[Candidate]
    problem_type: str
    greater_is_better: bool
    searcher: str = "optuna"
    seed: int = 0
    n_startup_trials: int = 8
    warm_start: bool = True
    previous: Optional[List[Dict[str, Any]]] = None

    def space(self) -> DefineByRun:
        return DefineByRun({c.name: c.space for c in self.candidates}, self.problem_type)

    def sampler(self):
        return make_sampler(self.searcher, self.seed, self.n_startup_trials, len(self.previous or []))

    def points(self) -> List[Dict[str, Any]]:
        return warm_points(self.candidates, self.problem_type, self.warm_start, self.previous)

    def feed(self, study) -> None:
        """Add the earlier attempts' trials to ``study``."""
        if self.previous:
            log.info("searcher continues from %d earlier trial(s)",
                     feed_study(study, self.previous, self.candidates, self.problem_type))

    def study(self) -> Tuple[Any, DefineByRun]:
        """An Optuna study to ask and tell (earlier trials fed, warm-start points queued) and the
        space each asked trial is sampled from."""
        import optuna

        study = optuna.create_study(direction="maximize" if self.greater_is_better else "minimize",
                                    sampler=self.sampler())
        self.feed(study)
        for point in self.points():
            study.enqueue_trial(point)
        return study, self.space()
