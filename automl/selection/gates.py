"""Gates: an ensemble or a stack is kept only when it beats the best single model by more than noise.

Caruana's selection and a stacker both maximise the score on the very out-of-fold rows they are
judged on, so a small gain there is mostly fitted noise (a 9-member ensemble 0.001 AUC better on
1,000 rows lost 0.013 on test). The gate, for every metric: a paired bootstrap over the OOF rows
(each resample scores both predictions on the same rows) and the ``confidence`` lower bound of
the gain must be above zero. Accuracy keeps its exact McNemar test as well (ensemble.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from automl.ensemble import significant_count_gain

log = logging.getLogger(__name__)

ScoreFn = Callable[..., float]  # score(y, pred), or score(y, pred, sample_weight) for a weighted run


@dataclass
class GateResult:
    passed: bool
    gain: float  # the candidate's score minus the baseline's on all rows, positive = better
    lower: float  # the paired gain's lower bound (nan when the bootstrap did not run)
    reason: str  # why it failed; "" when it passed

    def record(self) -> dict:
        """For summary.json."""
        return {"passed": self.passed, "gain": round(float(self.gain), 6),
                "lower_bound": None if np.isnan(self.lower) else round(float(self.lower), 6),
                **({"reason": self.reason} if self.reason else {})}


def paired_bootstrap_lower(y: np.ndarray, cand: np.ndarray, base: np.ndarray, score: ScoreFn,
                           greater_is_better: bool, n_resamples: int = 200, confidence: float = 0.95,
                           seed: int = 0, sample_weight: Optional[np.ndarray] = None) -> float:
    """The ``confidence`` lower bound of ``score(cand) - score(base)`` (sign so that positive is
    better) over bootstrap resamples of the rows, the same rows for both (each row keeps its
    ``sample_weight``). A resample on which the metric is undefined (one class only) is skipped;
    ``-inf`` when fewer than 10 remain."""
    sign = 1.0 if greater_is_better else -1.0
    rng = np.random.default_rng(seed)
    n = len(y)
    gains = []
    for _ in range(max(1, int(n_resamples))):
        idx = rng.integers(0, n, size=n)
        w = () if sample_weight is None else (sample_weight[idx],)
        try:
            gains.append(sign * (score(y[idx], cand[idx], *w) - score(y[idx], base[idx], *w)))
        except ValueError:
            continue
    gains_arr = np.asarray(gains, dtype=float)
    gains_arr = gains_arr[np.isfinite(gains_arr)]
    if len(gains_arr) < 10:
        return float("-inf")
    return float(np.quantile(gains_arr, 1.0 - confidence))


def gate(y: np.ndarray, cand: np.ndarray, base: np.ndarray, score: ScoreFn, greater_is_better: bool,
         metric: str, method: str = "bootstrap", confidence: float = 0.95, n_resamples: int = 200,
         seed: int = 0, what: str = "the ensemble", sample_weight: Optional[np.ndarray] = None) -> GateResult:
    """Whether ``cand`` (OOF predictions of an ensemble or stack) clearly beats ``base`` (the best
    single model's). ``method``: ``bootstrap`` (a better score, McNemar for accuracy, and a paired
    bootstrap lower bound above 0) or ``score`` (a better score, McNemar for accuracy).
    With ``sample_weight``, ``score`` takes it as a third argument, the gain is weighted and
    McNemar's count test (which counts rows, not weights) is left out."""
    sign = 1.0 if greater_is_better else -1.0
    w = () if sample_weight is None else (sample_weight,)
    gain = sign * (score(y, cand, *w) - score(y, base, *w))
    if not gain > 1e-9:
        return GateResult(False, gain, float("nan"), f"{what} does not beat the best single model on validation")
    if metric == "accuracy" and cand.ndim == 2 and sample_weight is None:
        ok, b, c = significant_count_gain(y, cand, base)
        if not ok:
            return GateResult(False, gain, float("nan"),
                              f"on validation {what} labels {b} row(s) right that the best single model gets "
                              f"wrong and {c} the other way round, within noise")
    if method != "bootstrap":
        return GateResult(True, gain, float("nan"), "")
    lower = paired_bootstrap_lower(y, cand, base, score, greater_is_better, n_resamples, confidence, seed,
                                   sample_weight)
    if not lower > 0:
        return GateResult(False, gain, lower,
                          f"{what} gains {gain:.5f} {metric} on validation, but the {confidence:.0%} lower bound "
                          f"of the paired bootstrap gain is {lower:.5f}: within noise")
    return GateResult(True, gain, lower, "")
