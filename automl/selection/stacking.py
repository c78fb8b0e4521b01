"""Stacking: a second level on the level-1 members' out-of-fold predictions.

The level-2 model (logistic regression for classes, ridge for values) sees only out-of-fold
predictions of the members, never predictions on rows a member was fitted on. Its own quality is
measured by cross-fitting: each row's stack prediction comes from a level-2 model fitted on the
other rows' OOF predictions. The stack replaces the level-1 ensemble only when that cross-fitted
prediction passes the gate against the ensemble's OOF blend (selection/gates.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold

from automl.ensemble import StackedModel, stack_features
from automl.selection.gates import GateResult

log = logging.getLogger(__name__)
STACK_FOLDS = 5


def level2(problem_type: str, seed: int) -> Any:
    if problem_type == "regression":
        return Ridge(alpha=1.0)
    return LogisticRegression(C=1.0, max_iter=1000, random_state=seed)


def _predict(model: Any, Z: np.ndarray, problem_type: str, n_classes: int) -> np.ndarray:
    if problem_type == "regression":
        return np.asarray(model.predict(Z), dtype=float)
    full = np.zeros((len(Z), n_classes))
    full[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(Z)
    return full


def fit_stack(member_oofs: Sequence[np.ndarray], y: np.ndarray, problem_type: str, n_classes: int,
              seed: int, sample_weight: Optional[np.ndarray] = None
              ) -> Tuple[Any, np.ndarray, List[Tuple[np.ndarray, np.ndarray]]]:
    """Fit the second level on the members' OOF predictions only.

    Returns (level-2 model fitted on all rows' OOF predictions, its cross-fitted predictions,
    the cross-fitting folds). Row i's cross-fitted prediction comes from a level-2 model that
    never saw row i."""
    Z = stack_features(member_oofs, problem_type)
    template = level2(problem_type, seed)
    n = len(y)
    stratify = problem_type != "regression" and int(np.bincount(y)[np.bincount(y) > 0].min()) >= STACK_FOLDS
    splitter = (StratifiedKFold(STACK_FOLDS, shuffle=True, random_state=seed + 7) if stratify
                else KFold(min(STACK_FOLDS, n), shuffle=True, random_state=seed + 7))
    folds = list(splitter.split(np.zeros(n), y if stratify else None))
    shape = (n,) if problem_type == "regression" else (n, n_classes)
    crossfit = np.full(shape, np.nan)
    sw = (lambda rows: {}) if sample_weight is None else (lambda rows: {"sample_weight": sample_weight[rows]})
    for tr, va in folds:
        crossfit[va] = _predict(clone(template).fit(Z[tr], y[tr], **sw(tr)), Z[va], problem_type, n_classes)
    return clone(template).fit(Z, y, **sw(slice(None))), crossfit, folds


@dataclass
class Stack:
    model: StackedModel
    oof: np.ndarray  # cross-fitted stack predictions (nan where a member has no OOF prediction)
    score: float  # on the covered rows


def try_stack(members: list, member_oofs: Sequence[np.ndarray], blend_oof: np.ndarray, y_all: np.ndarray,
              problem_type: str, n_classes: int, seed: int, gate_fn: Callable[..., GateResult],
              score_fn: Callable[[np.ndarray, np.ndarray], float],
              sample_weight: Optional[np.ndarray] = None) -> Tuple[Optional[Stack], GateResult]:
    """Stack ``members`` (fitted level-1 models) on their OOF predictions; the stack is returned
    only when its cross-fitted prediction passes ``gate_fn(y, stack, blend)`` against the level-1
    ensemble's OOF blend. Returns (stack or None, the gate's result)."""
    covered = np.ones(len(y_all), dtype=bool)
    for o in member_oofs:
        covered &= ~np.isnan(o if o.ndim == 1 else o[:, 0])
    y = y_all[covered]
    w = None if sample_weight is None else sample_weight[covered]  # the rows' sample weights
    model2, crossfit, _ = fit_stack([o[covered] for o in member_oofs], y, problem_type, n_classes, seed, w)
    result = gate_fn(y, crossfit, blend_oof[covered])
    if not result.passed:
        log.info("stack not kept: %s", result.reason.replace("the best single model", "the level-1 ensemble"))
        return None, result
    log.info("stack kept: a %s on %d member(s)' OOF predictions gains %.5f over the level-1 ensemble",
             type(model2).__name__, len(members), result.gain)
    oof = np.full(blend_oof.shape, np.nan)
    oof[covered] = crossfit
    return Stack(StackedModel(list(members), model2, problem_type, n_classes), oof, score_fn(y, crossfit)), result
