"""After the search: choose the final model (ensemble or best single), build it, tune its threshold.

The choice is made on the trials' out-of-fold (OOF) predictions: a Caruana ensemble kept only
through the gate (selection/choose.py, selection/gates.py), else the best single configuration
after a re-rank (selection/rerank.py). The chosen configuration(s) are then built as
``select.final_model`` says (selection/build.py); ``auto`` bags when its estimated time fits in
the time left, else refits. The reason for every choice is logged and recorded in summary.json
(``best.final_model``, ``best.gate``).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from automl.metrics import THRESHOLD_METRICS, score_all, tune_threshold
from automl.model import Calibrator
from automl.problem import ProblemInfo
from automl.search.trial import TrialContext, latency_ms
from automl.selection import SelectSpec
from automl.selection.bagging import choose_kind
from automl.selection.calibration import choose_calibration, score_calibrated
from automl.selection.build import Built, Trials, build_bagged, build_refit, refit_estimate, stack_onto
from automl.selection.choose import (EnsembleChoice, Limits, choose_ensemble, constraint_record, ensemble_members,
                                     rejoin, split_by_limits, trim_to_limits)
from automl.selection.oof import covered_rows, load_oof
from automl.rundir.leaderboard import rank_score
from automl.selection.rerank import RerankSpec, rerank
from automl.selection.timeplan import within_clock

log = logging.getLogger(__name__)
ENSEMBLE_ID = "ensemble"


@dataclass
class Selection:
    """The select stage's result: the final model, and what summary.json's ``best`` records of it."""

    model: Any  # the fitted final estimator (pipeline, WeightedEnsemble, BaggedModel or StackedModel)
    trial_id: str  # ENSEMBLE_ID for an ensemble or stack
    candidate: str
    score: Optional[float]  # validation score as ranked (re-ranked mean, or the ensemble's OOF score); None: fallback
    final_model: Dict[str, Any]  # kind, requested, reason (and the stack's record)
    refit_s: float
    leaderboard: pd.DataFrame  # re-ranked, with the ensemble's row first when one was kept
    members: Optional[List[Dict[str, Any]]] = None  # trial_id, candidate, weight of each member
    rerank: Optional[Dict[str, Any]] = None  # what the re-rank did (selection/rerank.py); None if nothing
    gate: Optional[Dict[str, Any]] = None  # the ensemble gate's record
    threshold: Optional[float] = None  # binary threshold tuned on the OOF predictions
    calibration: Optional[Calibrator] = None  # fitted on the OOF predictions (selection/calibration.py)
    calibration_record: Optional[Dict[str, Any]] = None  # summary.json's best.calibration
    constraints: Optional[Dict[str, Any]] = None  # select.max_latency_ms / max_size_mb: what they did (choose.py)
    started: float = field(default_factory=time.time)  # when the selection began (the refit's log line)
    fallback: bool = False  # no trial finished: the cheapest candidate's default configuration (selection/fallback.py)

    @property
    def is_ensemble(self) -> bool:
        return self.trial_id == ENSEMBLE_ID

    def best_single(self) -> pd.Series:
        """The leaderboard's best single configuration (after the re-rank)."""
        lb = self.leaderboard
        done = lb[(lb["status"] == "completed") & (lb["trial_id"].astype(str) != ENSEMBLE_ID)]
        if self.fallback and done.empty:  # no trial finished: the fallback's own row
            return lb[lb["trial_id"].astype(str) == self.trial_id].iloc[0]
        return done.iloc[0]

    def record(self) -> Dict[str, Any]:
        """The choice as a plain dict, keys in the order summary.json has always had them."""
        rec: Dict[str, Any] = {"trial_id": self.trial_id, "candidate": self.candidate, "score": self.score}
        if self.members is not None:
            rec["members"] = self.members
        if self.rerank:
            rec["rerank"] = self.rerank
        rec["final_model"] = self.final_model
        if self.fallback:
            rec["fallback"] = True
        if self.gate is not None:
            rec["gate"] = self.gate
        rec["refit_s"] = self.refit_s
        if self.threshold is not None:
            rec["threshold"] = self.threshold
        if self.calibration is not None and self.calibration.method == "temperature":
            rec["temperature"] = self.calibration.temperature  # the key runs before select.calibration wrote
        if self.calibration_record is not None:
            rec["calibration"] = self.calibration_record
        if self.constraints is not None:
            rec["constraints"] = self.constraints
        return rec


def calibrate(ctx: TrialContext, info: ProblemInfo, sel: Selection, oof: Optional[np.ndarray],
              requested: str = "auto", scored: bool = True) -> Optional[Dict[str, float]]:
    """Tune the binary threshold and choose the calibration (select.calibration) on the final
    model's OOF predictions, into ``sel``; both on the raw probabilities, so labels do not change.
    Returns every metric on the OOF rows (probability metrics calibrated, cross-fitted) when
    ``scored`` (an ensemble's leaderboard row), else None."""
    if oof is None:
        return None
    covered = covered_rows(oof)
    y, raw, w = ctx.y[covered], oof[covered], ctx.weights_of(covered)  # w: sample weights (None: unweighted)
    if info.problem_type == "binary" and info.metric in THRESHOLD_METRICS:
        sel.threshold, _ = tune_threshold(y, raw, info.metric, info.pos_index, w)
    if info.problem_type == "regression":
        return score_all(info.problem_type, y, raw, info.pos_index, sample_weight=w)
    cal = choose_calibration(requested, y, raw, info.problem_type, info.pos_index, ctx.seed)
    sel.calibration, sel.calibration_record = cal.calibrator, cal.record
    if not scored:
        return None
    if cal.oof is None:
        return score_all(info.problem_type, y, raw, info.pos_index, sel.threshold, w)
    return score_calibrated(info.problem_type, y[cal.rows], raw[cal.rows], cal.oof, info.pos_index, sel.threshold,
                            None if w is None else w[cal.rows])


def ensemble_row(ctx: TrialContext, info: ProblemInfo, built: Built, sel: Selection,
                 scores: Dict[str, float]) -> pd.DataFrame:
    """``sel.leaderboard`` with the kept ensemble's row put first."""
    lb = sel.leaderboard
    row = {"trial_id": ENSEMBLE_ID, "trial_number": len(lb), "candidate": ENSEMBLE_ID, "algorithm": "ensemble",
           "status": "completed", "objective": built.score, **scores,
           "fit_s": sel.refit_s, "predict_ms_per_row": np.nan,
           "latency_ms_single_row": latency_ms(built.model, ctx.X, info.problem_type),
           "model_size_bytes": np.nan,  # the publish stage fills it in from the saved model (one serialisation)
           "error": "", "members": " ".join(f"{m['trial_id']}:{m['weight']}" for m in sel.members)}
    return pd.concat([pd.DataFrame([row]), lb], ignore_index=True)


def rerank_single(ctx: TrialContext, lb: pd.DataFrame, rows: List[Dict[str, Any]], info: ProblemInfo,
                  spec: RerankSpec, deadline: float, out: str, so: Dict[str, Any]):
    """Re-rank the best single configurations, leaving the refit of the slowest of those it may
    pick (with a margin). Returns (leaderboard, what was done or None)."""
    done = lb[lb["status"] == "completed"]
    slowest = refit_estimate(ctx, done["fit_s"].head(spec.top).max(), 1.5)
    until = min(time.time() + spec.seconds, deadline - slowest - 0.5)
    best_oof = load_oof(out, str(done.iloc[0]["trial_id"]), so)
    return rerank(ctx, lb, rows, info.greater_is_better, spec, until, best_oof=best_oof)


def describe(built: Built, choice: EnsembleChoice, trials: Trials, info: ProblemInfo, spec: SelectSpec,
             reranked: Optional[Dict[str, Any]], t0: float) -> Selection:
    """The Selection for ``built`` (its leaderboard still without an ensemble row)."""
    by_id, lb = trials.by_id, trials.leaderboard
    kind = {"kind": built.kind, "requested": spec.final_model, "reason": built.reason, **built.extra}
    gate = {"method": spec.gate, **choice.gate.record()} if choice.gate is not None else None
    if built.members:
        log.info("ensemble kept: %d member(s), validation %s %.5f vs best single %.5f", len(built.members),
                 info.metric, built.score, choice.selection.best_single_score if choice.selection else float("nan"))
        members = [{"trial_id": t, "candidate": by_id[t]["candidate"], "weight": round(float(w), 4)}
                   for t, w in built.members]
        return Selection(built.model, ENSEMBLE_ID, ENSEMBLE_ID, built.score, kind, round(time.time() - t0, 2), lb,
                         members=members, gate=gate)
    best_id = trials.best_id
    done = lb[lb["status"] == "completed"]
    return Selection(built.model, best_id, by_id[best_id]["candidate"], rank_score(done.iloc[0]), kind,
                     round(time.time() - t0, 2), lb, rerank=reranked or None, gate=gate)


def select_final(ctx: TrialContext, lb: pd.DataFrame, rows: List[Dict[str, Any]], info: ProblemInfo,
                 deadline: float, out: str, so: Dict[str, Any], ensemble: bool = True,
                 rerank_spec: Optional[RerankSpec] = None, select: Optional[SelectSpec] = None) -> Selection:
    """Choose, build and calibrate the final model from the search's trials (``rows``, ranked in ``lb``).

    When the final model is a single configuration, the best few are first re-scored on more
    cross-validation splits (``rerank_spec``; see selection/rerank.py) and the best mean wins.
    ``select`` (the ``select.*`` keys) says how the model is built and gated.
    """
    started = time.time()
    spec = select or SelectSpec()
    limits = Limits(spec.max_latency_ms, spec.max_size_mb)
    lb, over = split_by_limits(lb, limits)  # the trials over select.max_latency_ms/max_size_mb are not chosen
    by_id = {str(r["trial_id"]): r for r in rows}
    choice = choose_ensemble(ctx, lb[lb["status"] == "completed"], info, out, so, spec, ensemble)
    trimmed = trim_to_limits(ctx, info, spec, choice, lb[lb["status"] == "completed"], limits)
    reranked = None
    if choice.selection is None and rerank_spec is not None and rerank_spec.top >= 2:
        lb, reranked = rerank_single(ctx, lb, rows, info, rerank_spec, deadline, out, so)
    trials = Trials(by_id, lb, str(lb[lb["status"] == "completed"].iloc[0]["trial_id"]), out, so)
    t0 = time.time()
    planned = [t for t, _ in ensemble_members(choice)] if choice.selection is not None else [trials.best_id]
    kind, why = choose_kind(spec.final_model, ctx, [trials.fit_s(t) for t in planned], deadline - 0.5 - t0,
                            os.cpu_count() or 1)
    log.debug("final model: %s (%s)", kind, why)
    # a refit predicted past the deadline falls back (bagged or on a sample; selection/timeplan.py)
    fallback, clock = within_clock(ctx, info, spec, choice, trials, planned[0], deadline) if kind == "refit" \
        else (None, None)
    built = fallback or (build_bagged if kind == "bagged" else build_refit)(ctx, info, spec, choice, trials, deadline)
    built.reason = built.reason or why
    if fallback is not None:  # recorded only when it changed the model (summary.json's best.final_model)
        built.extra["time_plan"] = clock
    if spec.stack and built.members:
        stack_onto(ctx, info, spec, built)
    sel = describe(built, choice, trials, info, spec, reranked, t0)
    sel.started = started
    scores = calibrate(ctx, info, sel, built.oof, spec.calibration, scored=bool(built.members))
    if built.members and scores is not None:
        sel.leaderboard = ensemble_row(ctx, info, built, sel, scores)
    if limits.active:
        sel.leaderboard = rejoin(sel.leaderboard, over)
        sel.constraints = constraint_record(limits, built.model, ctx, int((lb["status"] == "completed").sum()),
                                            len(over), trimmed)
    return sel
