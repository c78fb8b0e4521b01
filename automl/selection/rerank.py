"""Re-rank the search's best configurations on more cross-validation splits.

The search scores each configuration on one k-fold split. Near the top of the leaderboard the
differences are often smaller than that split's noise (digits: the best SVM configurations lie
within a row or two of each other out of 1,347, and which of them a single split puts first is
close to chance), and the search's maximum is biased upwards by the choice itself. When the
final model is a single configuration (the ensemble was not kept, or is off), the top
``top`` configurations are therefore cross-validated again on ``repeats`` more shuffles of
the same number of folds, the same shuffles for all of them, and ranked by their mean score
over all ``1 + repeats`` splits.

It runs only what fits in its time: configurations in leaderboard order, each with all its
repeats, in threads of this process (scikit-learn's and XGBoost's fits release the GIL), and one
whose fits run slower than its trial's ``fit_s`` promised is given up at the time limit, after
at most one more fold; the
longest fully re-scored prefix of the leaderboard (at least two) is re-ordered, the rest keep
the search's order below it. The leaderboard shows both scores (``objective`` from the search,
``rerank_objective`` and ``rerank_splits`` from here).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from automl.metrics import objective_score
from automl.search.sampling import sample_index
from automl.search.scheduling import refit_within
from automl.candidates.pipeline import build_pipeline, predict_matrix
from automl.search.trial import TrialContext, fit_fold, make_folds

log = logging.getLogger(__name__)


@dataclass
class RerankSpec:
    top: int = 10  # how many of the best configurations to re-score (0: off)
    repeats: int = 3  # more k-fold splits for each, with seeds seed + 1 ... seed + repeats
    seconds: float = 0.0  # at most this long


def repeat_folds(ctx: TrialContext, repeats: int) -> List[List[Tuple[np.ndarray, np.ndarray]]]:
    """``repeats`` new k-fold splits (k as in the search), shuffled with seeds ``seed + 1`` on;
    group-disjoint when the search's folds were (validation.group_column)."""
    k = len(ctx.folds)
    return [make_folds(ctx.y, ctx.problem_type, k, len(ctx.y) + 1, 0.2, ctx.seed + r, groups=ctx.groups)
            for r in range(1, repeats + 1)]


def split_scores(ctx: TrialContext, candidate: str, params: Dict[str, Any],
                 splits: List[List[Tuple[np.ndarray, np.ndarray]]], until: Optional[float] = None) -> List[float]:
    """The configuration's objective on each split (each split's out-of-fold predictions scored
    as a trial's are: boosting stops early on each fold, binary f1 / balanced accuracy at the
    tuned threshold). Raises ``TimeoutError`` after the first fold that ends past ``until``."""
    cand = ctx.candidates[candidate]
    template = build_pipeline(cand, params, ctx.column_types, ctx.problem_type, ctx.seed)
    shape = (len(ctx.y),) if ctx.problem_type == "regression" else (len(ctx.y), ctx.n_classes)
    scores = []
    for folds in splits:
        oof = np.full(shape, np.nan)
        for tr, va in folds:
            if cand.memory_train_rows and len(tr) > cand.memory_train_rows:  # the memory plan's sample
                tr = tr[sample_index(ctx.y[tr], cand.memory_train_rows, ctx.problem_type, ctx.seed)]
            pipe, _ = fit_fold(template, cand.algorithm, ctx.X.iloc[tr], ctx.y[tr], ctx.X.iloc[va], ctx.y[va],
                               ctx.weights_of(tr), ctx.weights_of(va))
            oof[va] = predict_matrix(pipe, ctx.X.iloc[va], ctx.problem_type, ctx.n_classes)
            if until is not None and time.time() > until:
                raise TimeoutError(f"past the re-rank's time limit after {len(scores)} of {len(splits)} split(s)")
        scores.append(objective_score(ctx.problem_type, ctx.metric, ctx.pos_index, ctx.y, oof, ctx.weights))
    return scores


def score_spread(ctx: TrialContext, oof: np.ndarray, n_boot: int = 30) -> float:
    """The standard error of a score on these out-of-fold predictions: the standard deviation of
    the metric over bootstrap resamples of the rows (any metric, no formula per metric)."""
    rng = np.random.default_rng(ctx.seed)
    covered = np.flatnonzero(~np.isnan(oof if oof.ndim == 1 else oof[:, 0]))
    values = []
    for _ in range(n_boot):
        idx = rng.choice(covered, size=len(covered), replace=True)
        try:
            values.append(objective_score(ctx.problem_type, ctx.metric, ctx.pos_index, ctx.y[idx], oof[idx],
                                          ctx.weights_of(idx)))
        except ValueError:  # e.g. one class only in the resample
            continue
    return float(np.std(values)) if len(values) >= 2 else float("inf")


def rerank(ctx: TrialContext, lb: pd.DataFrame, rows: List[Dict[str, Any]], greater_is_better: bool,
           spec: RerankSpec, until: float, band: Optional[float] = None,
           best_oof: Optional[np.ndarray] = None) -> Tuple[pd.DataFrame, Optional[Dict[str, Any]]]:
    """Return the leaderboard re-ordered (and what was done, for the summary; None if nothing).

    Only configurations whose search score is within ``band`` of the best are re-scored: the
    others are not plausibly the best. Without ``band``, it is the best score's standard error
    on ``best_oof`` (see ``score_spread``), or no limit without that either.
    """
    done = lb[lb["status"] == "completed"]
    if spec.top < 2 or spec.repeats < 1 or len(ctx.folds) < 2 or len(done) < 2 or ctx.time_ordered:
        # a holdout split (large data) is not re-ranked: one more would cost a trial each; forward
        # chaining in time (validation.time_column) has one order only, so no other split to try
        return lb, None
    t0 = time.time()
    if band is None:
        band = score_spread(ctx, best_oof) if best_oof is not None else float("inf")
    first = done["objective"].to_numpy(dtype=float)
    top = done[np.abs(first - first[0]) <= band].head(spec.top)
    if len(top) < 2:
        log.debug("re-rank skipped: no other configuration scored within one standard error (%.5f) of the best",
                 band)
        return lb, None
    by_id = {str(r["trial_id"]): r for r in rows}
    ids = [str(t) for t in top["trial_id"]]
    # A trial's fit_s covers its k folds: one more split costs about as much. 10% margin;
    # refit_within corrects the estimates by what the first ones took.
    estimates = [float(f) * spec.repeats * 1.1 for f in top["fit_s"].fillna(0.0)]
    splits = repeat_folds(ctx, spec.repeats)

    def score_one(i: int) -> Optional[List[float]]:
        row = by_id[ids[i]]
        try:
            return split_scores(ctx, row["candidate"], json.loads(row.get("params_json") or "{}"), splits, until)
        except Exception as exc:  # it completed in the search; if it fails now, it is left out
            log.debug("re-rank of %s failed: %s", ids[i], exc)
            return None

    workers = max(1, min(os.cpu_count() or 1, len(ids)))
    got = refit_within(score_one, estimates, until, workers, first_always=False)
    n = 0
    while n in got and got[n] is not None:
        n += 1
    if n < 2:
        log.debug("re-rank skipped: re-scoring even the best two configurations on %d more split(s) would not "
                 "finish in the %.1f s it may take", spec.repeats, max(0.0, until - t0))
        return lb, None
    searched = top["objective"].to_numpy(dtype=float)[:n]
    means = np.array([(searched[i] + sum(got[i])) / (1 + spec.repeats) for i in range(n)])
    order = np.argsort(-means if greater_is_better else means, kind="stable")
    lb = lb.copy()
    lb["rerank_objective"] = np.nan
    lb["rerank_splits"] = np.nan
    pos = {t: j for j, t in enumerate(lb["trial_id"].astype(str))}
    for i in range(n):
        lb.loc[pos[ids[i]], ["rerank_objective", "rerank_splits"]] = [means[i], 1 + spec.repeats]
    lb["rerank_splits"] = lb["rerank_splits"].astype("Int64")  # 4, not 4.0, in leaderboard.csv
    head = [pos[ids[i]] for i in order]
    taken = set(head)
    rest = [j for j in range(len(lb)) if j not in taken]
    lb = lb.iloc[head + rest].reset_index(drop=True)
    new_best, old_best = ids[order[0]], ids[0]
    log.info("re-ranked the best %d configurations (search scores within %.5f of the best) on %d more %d-fold "
             "split(s) in %.1f s: best is %s (%s, mean %s %.5f over %d splits; the search's first was %s)",
             n, band, spec.repeats, len(ctx.folds), time.time() - t0, new_best, by_id[new_best]["candidate"],
             ctx.metric, means[order[0]], 1 + spec.repeats,
             "the same" if new_best == old_best else f"{old_best}, mean {means[0]:.5f}")
    return lb, {"n_configurations": n, "repeats": spec.repeats, "band": band, "seconds": round(time.time() - t0, 2),
                "best_before": old_best, "best_after": new_best}
