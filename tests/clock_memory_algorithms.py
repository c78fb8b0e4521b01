"""Test-only custom algorithms (``candidates.<name>.algorithm=clock_memory_algorithms:<factory>``,
this folder on PYTHONPATH) for tests/test_clock_plan.py and tests/test_memory_plan.py."""
from __future__ import annotations

import time

import numpy as np
from sklearn.dummy import DummyClassifier


class PerRowSleeper(DummyClassifier):
    """Slow by construction: its fit sleeps ``seconds_per_row`` for every training row, so a fold
    on a few rows is quick and a refit on all rows is long."""

    def __init__(self, seconds_per_row: float = 0.004, strategy: str = "prior"):
        super().__init__(strategy=strategy)
        self.seconds_per_row = seconds_per_row

    def fit(self, X, y, sample_weight=None):
        time.sleep(self.seconds_per_row * len(y))
        return super().fit(X, y, sample_weight)


class Oversized(DummyClassifier):
    """Its fit asks for an 8 PB float64 matrix, more than any address space: numpy raises
    MemoryError at once (nothing is touched)."""

    def fit(self, X, y, sample_weight=None):
        np.empty((10**8, 10**7))
        return super().fit(X, y, sample_weight)


def slow_per_row(problem_type, params, seed):
    return PerRowSleeper(float(params.get("seconds_per_row", 0.004)))


def oversized(problem_type, params, seed):
    return Oversized()


class BlasThreadsRecorder(DummyClassifier):
    """Appends ``<pid> <rows> <BLAS threads>`` to the file ``$AUTOML_TEST_BLAS_LOG`` at every fit,
    so a test sees how many BLAS threads each fit (a trial's fold, the final refit) ran with."""

    def fit(self, X, y, sample_weight=None):
        import os

        from threadpoolctl import threadpool_info

        import numpy  # noqa: F401 (loads numpy's BLAS)

        threads = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        with open(os.environ["AUTOML_TEST_BLAS_LOG"], "a") as f:
            f.write(f"{os.getpid()} {len(y)} {threads}\n")
        return super().fit(X, y, sample_weight)


def blas_recorder(problem_type, params, seed):
    return BlasThreadsRecorder()
