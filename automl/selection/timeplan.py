"""The clock after the search: the final refit, the ensemble and the report, planned from the
trials' measured fit times, so the whole run ends within the budget at any size.

- **The refit's time** is predicted from the chosen trial's ``fit_s``, which covers its folds:
  one fold's time (``fit_s / k``) on the fold's training rows (``(k-1)/k`` of the rows, a
  holdout's ``1 - holdout_fraction``, or ``validation.max_train_rows`` when the folds were
  sampled), scaled to all rows as ``n log n`` (tree learners sort their features; linear
  models are close to linear, which ``n log n`` over-states a little, on the safe side).
- **During the search** the loop keeps back what the best trial so far predicts for the time
  after the search (refit, ensemble selection over the out-of-fold rows, report and writes);
  when that is more than the fixed reserve (``stages/search.search_reserve_s``) the search ends
  earlier (search/loop.py). With time ample nothing changes.
- **In the select stage**, a refit predicted not to finish before the deadline falls back, in one
  logged line recorded in summary.json (``best.final_model.time_plan``): to the best trial's
  kept fold model (holdout splits keep it, rundir/foldmodels.py) or its bagged fold models when
  refitting the folds fits, else to a refit on the largest sample predicted to fit. A refit
  predicted under ``REFIT_GRACE_S`` is always done on all rows.
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from automl.candidates.pipeline import build_pipeline
from automl.ensemble import BaggedModel
from automl.problem import ProblemInfo
from automl.rundir.foldmodels import load_fold_models
from automl.search.sampling import sample_index
from automl.search.trial import TrialContext, weighted_fit_kwargs
from automl.selection import SelectSpec
from automl.selection.bagging import bagging_estimate
from automl.selection.build import Built, Trials, build_bagged, save_seconds
from automl.selection.choose import MAX_MEMBERS_CONSIDERED, PER_CANDIDATE_IN_POOL, EnsembleChoice

log = logging.getLogger(__name__)

SCALING = "n log n"
REFIT_MARGIN = 1.2  # on the predicted refit (fold times vary by up to 2x; refit_within corrects ensembles)
# Measured on the 1M-row benchmark (benchmarks/large_data.py, 2 cores): ensemble selection over
# 200,000 out-of-fold rows of 30 trials took 35 s; the report, model and summary 15 s.
ENSEMBLE_S_PER_ROW_TRIAL = 35.0 / (200_000 * 30)
PUBLISH_S_PER_ROW = 15.0 / 1_000_000  # beyond the fixed reserve's share for the report (its floor_s)
MIN_SAMPLE_ROWS = 1000  # the smallest sample a fallback refit uses
# A refit predicted under this is done on all rows even past the plan: any fallback would save less
# than that and drop data (kershaw at 60 s: a 0.12 s refit became a 1,000-row sample of 2,551 rows).
REFIT_GRACE_S = 0.5


def scaled_seconds(seconds: float, rows_from: float, rows_to: float) -> float:
    """``seconds`` measured on ``rows_from`` rows, scaled to ``rows_to`` as ``n log n``."""
    a, b = max(2.0, float(rows_from)), max(2.0, float(rows_to))
    return float(seconds) * (b * math.log(b)) / (a * math.log(a))


def fold_rows(ctx: TrialContext, name: Optional[str] = None) -> float:
    """Rows a trial's fold (of candidate ``name``) trains on (after any sample of the folds)."""
    return float(np.mean([len(tr) for tr, _ in (ctx.folds if name is None else ctx.folds_of(name))]))


def refit_rows(ctx: TrialContext, name: Optional[str] = None) -> int:
    """Rows candidate ``name``'s refit fits on: all, or the memory plan's sample (search/memory.py)."""
    cap = getattr(ctx.candidates.get(name), "memory_refit_rows", None) if name is not None else None
    return min(len(ctx.y), int(cap)) if cap else len(ctx.y)


def refit_seconds(ctx: TrialContext, fit_s: float, rows: Optional[int] = None, name: Optional[str] = None) -> float:
    """A refit's predicted time on ``rows`` rows (those of ``refit_rows`` by default) from a trial's
    fit_s (a trial of candidate ``name``, whose folds may be a memory down-sample)."""
    per_fold = float(fit_s) / max(1, len(ctx.folds))
    return scaled_seconds(per_fold, fold_rows(ctx, name), refit_rows(ctx, name) if rows is None else rows)


def rows_within(ctx: TrialContext, fit_s: float, seconds: float, name: Optional[str] = None) -> int:
    """The most rows (up to ``refit_rows``) whose predicted refit (with the margin) takes at most
    ``seconds``."""
    lo, hi = 2, refit_rows(ctx, name)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if refit_seconds(ctx, fit_s, mid, name) * REFIT_MARGIN <= seconds:
            lo = mid
        else:
            hi = mid - 1
    return lo


def ensemble_seconds(ctx: TrialContext, n_completed: int) -> float:
    """Ensemble selection over the out-of-fold rows of the trials in its pool (choose.ensemble_pool)."""
    oof_rows = len(np.unique(np.concatenate([va for _, va in ctx.folds])))
    pool = min(n_completed, max(MAX_MEMBERS_CONSIDERED, PER_CANDIDATE_IN_POOL * len(ctx.candidates)))
    return ENSEMBLE_S_PER_ROW_TRIAL * oof_rows * pool


def post_search_seconds(ctx: TrialContext, rows: List[Dict[str, Any]], greater_is_better: bool,
                        ensemble: bool, floor_s: float) -> float:
    """The time after the search the completed trials predict: ``floor_s`` (the fixed reserve's
    share for the report and the search's teardown), the best one's refit, the ensemble selection
    and the publishing's time per row (``floor_s`` alone before any trial completed)."""
    done = [r for r in rows if r.get("status") == "completed" and r.get("fit_s") is not None]
    if not done:
        return floor_s
    best = (max if greater_is_better else min)(done, key=lambda r: float(r["objective"]))
    need = floor_s + refit_seconds(ctx, float(best["fit_s"]), name=best.get("candidate")) * REFIT_MARGIN \
        + PUBLISH_S_PER_ROW * len(ctx.y) + save_seconds(ctx, float(best.get("model_size_bytes") or 0.0),
                                                                    float(best.get("model_parts") or 0.0))
    if ensemble and len(done) > 1:
        need += ensemble_seconds(ctx, len(done))
    return need


def post_search_planner(ctx: TrialContext, greater_is_better: bool, ensemble: bool,
                        floor_s: float) -> Callable[[List[Dict[str, Any]]], float]:
    """``post_search_seconds`` for the search loop, which calls it as trials complete."""
    return lambda rows: post_search_seconds(ctx, rows, greater_is_better, ensemble, floor_s)


def sample_refit(ctx: TrialContext, spec: tuple, n: int):
    """Refit a (candidate, params) pair on a sample of ``n`` rows (stratified by class when it can)."""
    idx = sample_index(ctx.y, n, ctx.problem_type, ctx.seed)
    name, params = spec
    pipe = build_pipeline(ctx.candidates[name], params, ctx.column_types, ctx.problem_type, ctx.seed)
    return pipe.fit(ctx.X.iloc[idx], ctx.y[idx], **weighted_fit_kwargs(pipe, ctx.weights_of(idx)))


def within_clock(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, choice: EnsembleChoice, trials: Trials,
                 first: str, deadline: float) -> Tuple[Optional[Built], Dict[str, Any]]:
    """``(None, plan)`` when the refit of ``first`` (the configuration refit first) is predicted to
    finish before ``deadline`` with the publishing after it; else ``(the fallback model, built
    now, plan)``. ``plan`` is summary.json's ``best.final_model.time_plan``."""
    n, name = len(ctx.y), trials.spec(first)[0]
    need = refit_seconds(ctx, trials.fit_s(first), name=name) * REFIT_MARGIN
    left = deadline - time.time() - PUBLISH_S_PER_ROW * n \
        - save_seconds(ctx, trials.size_bytes(first), trials.parts(first))
    plan: Dict[str, Any] = {"predicted_refit_s": round(need, 2), "time_left_s": round(max(0.0, left), 2),
                            "rows": refit_rows(ctx, name), "fold_rows": int(fold_rows(ctx, name)), "scaling": SCALING,
                            "decision": "refit on all rows" if refit_rows(ctx, name) == n else
                            f"refit on {refit_rows(ctx, name)} rows (the memory plan)"}
    if need <= max(left, REFIT_GRACE_S):
        return None, plan
    best = trials.best_id
    choice.selection = None  # an ensemble's members would not be refit in time either
    kept = load_fold_models(trials.out, best, trials.so)
    k = len(ctx.folds)
    bag_need = bagging_estimate(trials.fit_s(best)) / max(1, min(os.cpu_count() or 1, k))
    if kept:
        built = Built(BaggedModel(kept, info.problem_type, len(info.classes)), trials.oof(best), kind="bagged")
        plan["decision"] = f"the best trial's {len(kept)} kept fold model(s), bagged"
    elif k >= 2 and bag_need <= left:
        built = build_bagged(ctx, info, spec, choice, trials, deadline)
        plan["decision"] = f"its {k} fold models, bagged (predicted {bag_need:.1f} s)"
    else:
        best_name = trials.spec(best)[0]
        rows = max(min(MIN_SAMPLE_ROWS, refit_rows(ctx, best_name)),
                   rows_within(ctx, trials.fit_s(best), max(0.0, left), best_name))
        built = Built(sample_refit(ctx, trials.spec(best), rows), trials.oof(best))
        plan.update(decision=f"a refit on a sample of {rows} of the {n} rows", sample_rows=rows)
    what = f"all {n}" if plan["rows"] == n else f"{plan['rows']} of the {n}"
    built.reason = (f"the refit on {what} rows was predicted at {need:.1f} s ({SCALING} from the folds' "
                    f"{trials.fit_s(first):.1f} s), more than the {max(0.0, left):.1f} s left: {plan['decision']}")
    log.warning("final model: %s", built.reason)
    return built, plan


def fallback_refit_rows(ctx: TrialContext, name: str, fit_s: float, deadline: float) -> Tuple[int, Dict[str, Any]]:
    """The rows the no-trial-finished fallback (selection/fallback.py) refits ``name`` on, from its
    partial trial's ``fit_s`` (scaled to all its folds), and the plan: its refit rows when predicted to
    finish before ``deadline`` with the publishing after it, else the largest sample predicted to fit
    (at least 1,000 rows). ``plan["decision"]`` says which."""
    n, rows = len(ctx.y), refit_rows(ctx, name)
    need = refit_seconds(ctx, fit_s, name=name) * REFIT_MARGIN
    left = max(0.0, deadline - time.time() - PUBLISH_S_PER_ROW * n)
    plan: Dict[str, Any] = {"predicted_refit_s": round(need, 2), "time_left_s": round(left, 2), "rows": rows,
                            "fold_rows": int(fold_rows(ctx, name)), "scaling": SCALING,
                            "decision": "refit on all rows" if rows == n else f"refit on {rows} rows (the memory plan)"}
    if need > max(left, REFIT_GRACE_S):
        rows = max(min(MIN_SAMPLE_ROWS, rows), rows_within(ctx, fit_s, left, name))
        plan.update(decision=f"a refit on a sample of {rows} of the {n} rows", sample_rows=rows)
    return rows, plan
