"""The chosen model on validation data: its out-of-fold predictions and permutation importance.

Plots of the chosen model use the out-of-fold predictions the search saved
(``trials/<id>/oof.npy``; for an ensemble, the weighted sum of its members'), so every row is
predicted by a model that did not see it. Permutation importance needs a fitted model and rows
it did not train on: the chosen model (an ensemble's largest member) is refit on 80% of the
training rows (at most ``MAX_FIT_ROWS``) and features are shuffled on the rest (at most
``MAX_EVAL_ROWS``).
"""
from __future__ import annotations

import time
from typing import Any, Dict, Optional

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import train_test_split


MAX_FIT_ROWS = 20_000
MAX_EVAL_ROWS = 1_000
MAX_FEATURES = 60
PREDICT_BUDGET_S = 1.5


def load_oof(out: str, so: Dict[str, Any], best: Dict[str, Any]) -> Optional[np.ndarray]:
    """Out-of-fold predictions of the chosen model (``None`` when the run kept none)."""
    from automl.finalize import load_oof as load_trial_oof

    def one(trial_id: str) -> Optional[np.ndarray]:
        return load_trial_oof(out, str(trial_id), so)

    members = best.get("members")
    if members:
        parts = [(one(m["trial_id"]), float(m["weight"])) for m in members]
        if any(p is None for p, _ in parts):
            return None
        return sum(w * p for p, w in parts)
    return one(best.get("trial_id", ""))


def explained_model(model: Any) -> tuple[Any, str]:
    """The estimator permutation importance refits: the model, or an ensemble's largest member
    (refitting every member would cost as much as the ensemble's refit)."""
    from automl.ensemble import WeightedEnsemble

    if isinstance(model, WeightedEnsemble):
        i = int(np.argmax(model.weights))
        return model.estimators[i], f"the ensemble's largest member (weight {float(model.weights[i]):.2f})"
    return model, "the chosen model"


def permutation(bundle: Any, df: pd.DataFrame, y: np.ndarray, metric: str, pos_index: int,
                seed: int = 0, n_repeats: int = 3) -> tuple[pd.DataFrame, Dict[str, Any]]:
    """Permutation importance of the chosen model on held-out rows.

    Returns (table indexed by feature with ``mean``/``std`` drop of the metric, facts about
    how it was computed).
    """
    from sklearn.inspection import permutation_importance

    from automl.metrics import get_metric
    from automl.search.trial import predict_matrix

    problem_type = bundle.problem_type
    n_classes = len(bundle.classes)
    features = list(bundle.feature_columns)
    X = df[features]
    strat = y if problem_type != "regression" and np.bincount(y).min() >= 2 else None
    idx_fit, idx_eval = train_test_split(np.arange(len(X)), test_size=0.2, random_state=seed, stratify=strat)
    rng = np.random.default_rng(seed)
    if len(idx_fit) > MAX_FIT_ROWS:
        idx_fit = rng.choice(idx_fit, MAX_FIT_ROWS, replace=False)
    if len(idx_eval) > MAX_EVAL_ROWS:
        idx_eval = rng.choice(idx_eval, MAX_EVAL_ROWS, replace=False)
    template, what = explained_model(bundle.pipeline)
    model = clone(template).fit(X.iloc[idx_fit], y[idx_fit])
    m = get_metric(metric, problem_type)
    sign = 1.0 if m.greater_is_better else -1.0

    def scorer(est, X_, y_):
        return sign * m.fn(y_, predict_matrix(est, X_, problem_type, n_classes), pos_index)

    if len(features) > MAX_FEATURES:
        n_repeats = 2
    # Keep the shuffling within about PREDICT_BUDGET_S: time one scoring pass, then use fewer
    # repeats and rows for slow models (never fewer than 2 repeats and 200 rows).
    t = time.perf_counter()
    baseline = float(scorer(model, X.iloc[idx_eval], y[idx_eval]) * sign)
    per_pass = time.perf_counter() - t
    if per_pass * n_repeats * len(features) > PREDICT_BUDGET_S:
        n_repeats = 2
        share = PREDICT_BUDGET_S / max(1e-9, per_pass * n_repeats * len(features))
        if share < 1:
            keep = max(min(200, len(idx_eval)), int(len(idx_eval) * share))
            idx_eval = rng.choice(idx_eval, keep, replace=False)
    res = permutation_importance(model, X.iloc[idx_eval], y[idx_eval], scoring=scorer, n_repeats=n_repeats,
                                 random_state=seed, n_jobs=1)
    table = pd.DataFrame({"mean": res.importances_mean, "std": res.importances_std}, index=features)
    table = table.sort_values("mean", ascending=False)
    facts = {"model": what, "fit_rows": int(len(idx_fit)), "eval_rows": int(len(idx_eval)), "repeats": int(n_repeats),
             "baseline": baseline}
    return table, facts
