"""A model when no trial finished: the cheapest candidate's default configuration, on all rows.

On a loaded machine, or with a budget too small for one cross-validation, every trial can end
stopped at the search deadline or past its own time limit. Rather than end the run without a
model, the select stage then fits the cheapest enabled candidate (candidates are ordered by cost:
the linear model by default) with its first known-good configuration, on all rows, in the reserve
kept after the search. It has no validation score; summary.json says ``"fallback": true`` and the
log says why. When every trial failed with an error, the run still fails with the commonest
cause (stages/search.py): a fallback would hide it.
"""
from __future__ import annotations

import json
import logging
import math
import time
from typing import Any, Dict, List

import pandas as pd

from automl.candidates.generate import Candidate
from automl.candidates.space import SEP, init_point, params_of, portfolio_points
from automl.search.trial import TrialContext
from automl.selection.build import refit_one
from automl.selection.final import Selection

log = logging.getLogger(__name__)

FALLBACK_ID = "fallback"  # its trial_id in leaderboard.csv and summary.json
FALLBACK_STATUS = "fallback"


def fallback_row(candidates: List[Candidate], problem_type: str, reason: str) -> Dict[str, Any]:
    """The leaderboard row of the fallback: the first (cheapest) candidate's first warm-start
    configuration (its search space's defaults when it has no portfolio)."""
    cand = candidates[0]
    points = portfolio_points(cand.name, cand.space, problem_type)
    config = points[0] if points else {"candidate": cand.name, **{
        f"{cand.name}{SEP}{k}": v for k, v in init_point(cand.space, problem_type).items()}}
    params = json.dumps(params_of(config, cand.name), default=str)
    return {"trial_id": FALLBACK_ID, "candidate": cand.name, "config": config, "status": FALLBACK_STATUS,
            "objective": math.nan, "error": reason, "params_json": params, "refit_params_json": params}


def fit_fallback(ctx: TrialContext, lb: pd.DataFrame, row: Dict[str, Any], requested: str) -> Selection:
    """Fit the fallback ``row`` on all rows; the Selection the publish stage writes (no score)."""
    started = time.time()
    name = str(row["candidate"])
    log.warning("%s: fitting %s's default configuration on all %d rows instead, without validation "
                "(summary.json: \"fallback\": true); raise budget.time_limit_s for a searched model",
                row["error"], name, len(ctx.y))
    model = refit_one(ctx, (name, json.loads(row["refit_params_json"])))
    kind = {"kind": "refit", "requested": requested,
            "reason": f"fallback: {row['error']}; the cheapest candidate's default configuration"}
    sel = Selection(model, FALLBACK_ID, name, None, kind, round(time.time() - started, 2), lb)
    sel.fallback = True
    sel.started = started
    return sel
