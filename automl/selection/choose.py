"""Which configurations the final model is made of: a Caruana ensemble over the trials' OOF
predictions, kept only through the gate (selection/gates.py), else the best single configuration."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from automl.ensemble import Selection as CaruanaSelection
from automl.ensemble import caruana_select
from automl.metrics import get_metric, objective_score
from automl.problem import ProblemInfo
from automl.search.trial import TrialContext
from automl.selection import SelectSpec
from automl.selection.gates import GateResult, gate
from automl.selection.oof import covered_rows, load_oof

log = logging.getLogger(__name__)
MAX_MEMBERS_CONSIDERED = 30


def score(info: ProblemInfo, y: np.ndarray, pred: np.ndarray) -> float:
    """The run's objective on ``pred``."""
    return objective_score(info.problem_type, info.metric, info.pos_index, y, pred)


def gate_against(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, y, cand, base, what: str) -> GateResult:
    """The ``select.gate`` check of ``cand`` (OOF predictions) against ``base``."""
    return gate(y, cand, base, lambda yy, p: score(info, yy, p), info.greater_is_better, info.metric,
                spec.gate, spec.gate_confidence, spec.gate_resamples, ctx.seed, what)


@dataclass
class EnsembleChoice:
    """The ensemble the OOF predictions chose (or none), handed to the building of the final model."""

    selection: Optional[CaruanaSelection] = None  # a Caruana ensemble that passed the gate
    ids: List[str] = field(default_factory=list)  # the trials Caruana chose from
    preds: List[np.ndarray] = field(default_factory=list)  # their OOF predictions on ``covered`` rows
    covered: Optional[np.ndarray] = None
    gate: Optional[GateResult] = None


def select_ensemble(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, ids: List[str],
                    preds: List[np.ndarray], y: np.ndarray) -> Tuple[Optional[CaruanaSelection], Optional[GateResult]]:
    """Caruana over ``preds``, then the gate against its best single model."""
    metric = get_metric(info.metric, info.problem_type)
    selection = caruana_select(preds, y, metric, info.pos_index, score_fn=lambda yy, p: score(info, yy, p))
    if selection is None:
        log.info("ensemble not kept: it does not beat the best single model on validation")
        return None, GateResult(False, 0.0, float("nan"), "the ensemble does not beat the best single model")
    mix = sum(w * preds[i] for i, w in enumerate(selection.weights) if w > 0)
    result = gate_against(ctx, info, spec, y, mix, preds[selection.indices[0]], "the ensemble")
    if not result.passed:
        log.info("ensemble not kept: %s", result.reason)
        return None, result
    return selection, result


def choose_ensemble(ctx: TrialContext, done: pd.DataFrame, info: ProblemInfo, out: str, so: Dict[str, Any],
                    spec: SelectSpec, ensemble: bool) -> EnsembleChoice:
    """The gated Caruana ensemble over the best completed trials' OOF predictions (``done``, ranked)."""
    choice = EnsembleChoice()
    if not ensemble or len(done) < 2:
        return choice
    oofs = {}
    for tid in done["trial_id"].astype(str).head(MAX_MEMBERS_CONSIDERED):
        o = load_oof(out, tid, so)
        if o is not None:
            oofs[tid] = o
    if len(oofs) < 2:
        return choice
    choice.covered = covered_rows(next(iter(oofs.values())))
    choice.ids = list(oofs)
    choice.preds = [oofs[t][choice.covered] for t in choice.ids]
    choice.selection, choice.gate = select_ensemble(ctx, info, spec, choice.ids, choice.preds,
                                                    ctx.y[choice.covered])
    return choice


def ensemble_members(choice: EnsembleChoice) -> List[Tuple[str, float]]:
    """The ensemble's (trial id, weight): the best single model first, then by weight."""
    sel = choice.selection
    members = sorted(((choice.ids[i], w) for i, w in enumerate(sel.weights) if w > 0), key=lambda m: -m[1])
    single_id = choice.ids[sel.indices[0]]
    members.sort(key=lambda m: m[0] != single_id)
    return members
