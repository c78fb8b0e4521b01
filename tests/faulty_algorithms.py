"""Test-only algorithms that misbehave on purpose, used as custom ``module:factory``
algorithms (``candidates.<name>.algorithm=faulty_algorithms:<factory>``) with this folder on
PYTHONPATH. They never enter automl's own registry."""
from __future__ import annotations

import os
import signal
import time

from sklearn.dummy import DummyClassifier, DummyRegressor


class _Misbehaving(DummyClassifier):
    def __init__(self, action: str = "raise", seconds: float = 0.0, strategy: str = "prior"):
        super().__init__(strategy=strategy)
        self.action = action
        self.seconds = seconds

    def fit(self, X, y, sample_weight=None):
        if self.action == "raise":
            raise RuntimeError("faulty algorithm raised on purpose")
        if self.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.action in ("hang", "sleep"):
            time.sleep(self.seconds)
        return super().fit(X, y, sample_weight)


def boom(problem_type, params, seed):
    """Raises in fit."""
    return _Misbehaving("raise")


def die(problem_type, params, seed):
    """Kills its own worker process with SIGKILL in fit."""
    return _Misbehaving("kill")


def hang(problem_type, params, seed):
    """Sleeps far past any per-trial time limit in fit."""
    return _Misbehaving("hang", seconds=3600)


def sleepy(problem_type, params, seed):
    """A slow but valid model: sleeps ``model.seconds`` (default 1 s) per fit."""
    if problem_type == "regression":
        return DummyRegressor()
    return _Misbehaving("sleep", seconds=float(params.get("seconds", 1.0)))
