"""A model when no trial finished: the best partially validated trial, or the cheapest default.

On a loaded machine, or with a budget too small for one cross-validation, every trial can end
stopped at the search deadline or past its own time limit. Rather than end the run without a
model, the select stage then fits, on all rows, in the reserve kept after the search:

- the configuration of the trial with the best score on the folds it finished, when a trial was
  stopped after at least one fold (its ``partial_objective`` on ``partial_folds`` folds); or
- the cheapest enabled candidate (candidates are ordered by cost: the linear model by default)
  with its first known-good configuration.

The first has a measured time (its folds' ``fit_s``): its refit is planned against the deadline
(selection/timeplan.py) and, when all rows would overrun it, fitted on the largest sample predicted
to fit (``best.final_model.time_plan``). The cheapest default has no measured time: it is fitted
on all rows. Neither has a full cross-validated score; summary.json says ``"fallback": true`` and the log says
which and why. When every trial failed with an error, the run still fails with the commonest
cause (stages/search.py): a fallback would hide it.
"""
from __future__ import annotations

import json
import logging
import math
import time
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from automl.candidates.generate import Candidate
from automl.candidates.space import SEP, init_point, params_of, portfolio_points
from automl.search.trial import TrialContext
from automl.selection.build import refit_one
from automl.selection.final import Selection
from automl.selection.timeplan import fallback_refit_rows, sample_refit

log = logging.getLogger(__name__)

FALLBACK_ID = "fallback"  # its trial_id in leaderboard.csv and summary.json
FALLBACK_STATUS = "fallback"
PARTIAL_WORST = 1e11  # |partial_objective| at or above this is a failed score (metrics.worst_value: 1e12)


def best_partial(lb: pd.DataFrame, greater_is_better: bool) -> Optional[pd.Series]:
    """The stopped trial with the best score on the folds it finished (None when there is none)."""
    if "partial_objective" not in lb.columns:
        return None
    score = pd.to_numeric(lb["partial_objective"], errors="coerce")
    refit = lb["refit_params_json"]
    ok = np.isfinite(score) & (score.abs() < PARTIAL_WORST) & refit.notna() & refit.astype(str).str.startswith("{")
    if not ok.any():
        return None
    score = score[ok]
    return lb.loc[score.idxmax() if greater_is_better else score.idxmin()]


def fallback_row(candidates: List[Candidate], problem_type: str, reason: str,
                 lb: Optional[pd.DataFrame] = None, greater_is_better: bool = True) -> Dict[str, Any]:
    """The leaderboard row of the fallback: the best partially validated trial's configuration,
    else the first (cheapest) candidate's first warm-start configuration (its search space's
    defaults when it has no portfolio)."""
    part = best_partial(lb, greater_is_better) if lb is not None else None
    if part is not None:
        name = str(part["candidate"])
        params = json.loads(part["params_json"])
        text = (f"trial {part['trial_id']}'s configuration ({name}: {part['partial_objective']:.5g} on the "
                f"{int(part['partial_folds'])} fold(s) it finished, the best of the stopped trials)")
        fit_s = pd.to_numeric(pd.Series([part.get("fit_s")]), errors="coerce").iloc[0]
        return {"trial_id": FALLBACK_ID, "candidate": name, "status": FALLBACK_STATUS, "objective": math.nan,
                "config": {"candidate": name, **{f"{name}{SEP}{k}": v for k, v in params.items()}},
                "error": reason, "params_json": part["params_json"],
                "refit_params_json": part["refit_params_json"], "fallback_text": text,
                # seconds per fold it measured: the refit's time plan (not the leaderboard's fit_s)
                "fold_s": float(fit_s) / int(part["partial_folds"]) if np.isfinite(fit_s) and fit_s > 0 else None}
    cand = candidates[0]
    points = portfolio_points(cand.name, cand.space, problem_type)
    config = points[0] if points else {"candidate": cand.name, **{
        f"{cand.name}{SEP}{k}": v for k, v in init_point(cand.space, problem_type).items()}}
    params = json.dumps(params_of(config, cand.name), default=str)
    return {"trial_id": FALLBACK_ID, "candidate": cand.name, "config": config, "status": FALLBACK_STATUS,
            "objective": math.nan, "error": reason, "params_json": params, "refit_params_json": params}


def fit_fallback(ctx: TrialContext, lb: pd.DataFrame, row: Dict[str, Any], requested: str,
                 deadline: Optional[float] = None) -> Selection:
    """Fit the fallback ``row`` on all rows, or on the sample its measured fold time says fits
    before ``deadline``; the Selection the publish stage writes (no score)."""
    started = time.time()
    name = str(row["candidate"])
    spec = (name, json.loads(row["refit_params_json"]))
    what = row.get("fallback_text") or f"{name}'s default configuration"
    rows, plan = len(ctx.y), None
    if deadline is not None and row.get("fold_s"):
        rows, plan = fallback_refit_rows(ctx, name, float(row["fold_s"]) * len(ctx.folds), deadline)
    log.warning("%s: fitting %s on %s rows instead, without a full validation "
                "(summary.json: \"fallback\": true); raise budget.time_limit_s for a searched model",
                row["error"], what, f"all {rows}" if rows == len(ctx.y) else f"{rows} of the {len(ctx.y)}")
    sampled = plan is not None and "sample_rows" in plan
    model = sample_refit(ctx, spec, rows) if sampled else refit_one(ctx, spec)
    kind = {"kind": "refit", "requested": requested, "reason": f"fallback: {row['error']}; " + (
        row.get("fallback_text") or "the cheapest candidate's default configuration")}
    if sampled:  # recorded only when the clock changed the model, as for a searched model (timeplan.py)
        kind["reason"] += (f"; the refit on all {len(ctx.y)} rows was predicted at {plan['predicted_refit_s']:.1f} s, "
                           f"more than the {plan['time_left_s']:.1f} s left: {plan['decision']}")
        kind["time_plan"] = plan
        log.warning("final model: %s", kind["reason"])
    sel = Selection(model, FALLBACK_ID, name, None, kind, round(time.time() - started, 2), lb)
    sel.fallback = True
    sel.started = started
    return sel
