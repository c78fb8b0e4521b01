"""A Tune stopper that ends the whole experiment at a wall-clock deadline.

Tune's own ``time_budget_s`` only stops new trials; running ones finish first, so a run overshot
its budget by a whole trial. ``stop_all`` makes Tune stop the running trials too.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional

from ray.tune.stopper import Stopper


class DeadlineStopper(Stopper):
    """``moved``: the current deadline (the search loop moves it earlier when the trials predict a
    long refit, selection/timeplan.py); dropped when Tune pickles its config, ``deadline`` stays."""

    def __init__(self, deadline: float, moved: Optional[Callable[[], float]] = None):
        self.deadline = deadline
        self.moved = moved

    def __getstate__(self) -> Dict[str, Any]:
        return {**self.__dict__, "moved": None}

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return time.time() >= (self.moved() if self.moved is not None else self.deadline)
