"""A Tune stopper that ends the whole experiment at a wall-clock deadline.

Tune's own ``time_budget_s`` only stops new trials; running ones finish first, so a run overshot
its budget by a whole trial. ``stop_all`` makes Tune stop the running trials too.
"""
from __future__ import annotations

import time

from ray.tune.stopper import Stopper


class DeadlineStopper(Stopper):
    def __init__(self, deadline: float):
        self.deadline = deadline

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return time.time() >= self.deadline
