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
from automl.model import apply_temperature, fit_temperature
from automl.problem import ProblemInfo
from automl.search.trial import TrialContext, latency_ms
from automl.selection import SelectSpec
from automl.selection.bagging import choose_kind
from automl.selection.build import Built, Trials, build_bagged, build_refit, refit_estimate, stack_onto
from automl.selection.choose import EnsembleChoice, choose_ensemble, ensemble_members
from automl.selection.oof import covered_rows, load_oof
from automl.rundir.leaderboard import rank_score
from automl.selection.rerank import RerankSpec, rerank

log = logging.getLogger(__name__)
ENSEMBLE_ID = "ensemble"


@dataclass
class Selection:
    """The select stage's result: the final model, and what summary.json's ``best`` records of it."""

    model: Any  # the fitted final estimator (pipeline, WeightedEnsemble, BaggedModel or StackedModel)
    trial_id: str  # ENSEMBLE_ID for an ensemble or stack
    candidate: str
    score: float  # validation score as ranked (re-ranked mean, or the ensemble's OOF score)
    final_model: Dict[str, Any]  # kind, requested, reason (and the stack's record)
    refit_s: float
    leaderboard: pd.DataFrame  # re-ranked, with the ensemble's row first when one was kept
    members: Optional[List[Dict[str, Any]]] = None  # trial_id, candidate, weight of each member
    rerank: Optional[Dict[str, Any]] = None  # what the re-rank did (selection/rerank.py); None if nothing
    gate: Optional[Dict[str, Any]] = None  # the ensemble gate's record
    threshold: Optional[float] = None  # binary threshold tuned on the OOF predictions
    temperature: Optional[float] = None  # logloss temperature fitted on the OOF predictions
    started: float = field(default_factory=time.time)  # when the selection began (the refit's log line)

    @property
    def is_ensemble(self) -> bool:
        return self.trial_id == ENSEMBLE_ID

    def best_single(self) -> pd.Series:
        """The leaderboard's best single configuration (after the re-rank)."""
        lb = self.leaderboard
        return lb[(lb["status"] == "completed") & (lb["trial_id"].astype(str) != ENSEMBLE_ID)].iloc[0]

    def record(self) -> Dict[str, Any]:
        """The choice as a plain dict, keys in the order summary.json has always had them."""
        rec: Dict[str, Any] = {"trial_id": self.trial_id, "candidate": self.candidate, "score": self.score}
        if self.members is not None:
            rec["members"] = self.members
        if self.rerank:
            rec["rerank"] = self.rerank
        rec["final_model"] = self.final_model
        if self.gate is not None:
            rec["gate"] = self.gate
        rec["refit_s"] = self.refit_s
        if self.threshold is not None:
            rec["threshold"] = self.threshold
        if self.temperature is not None:
            rec["temperature"] = self.temperature
        return rec


def calibrate(ctx: TrialContext, info: ProblemInfo, sel: Selection, oof: Optional[np.ndarray]):
    """Tune the binary threshold / logloss temperature on the final model's OOF predictions into
    ``sel``. Returns (OOF after temperature, covered rows)."""
    covered = None
    if oof is not None:
        covered = covered_rows(oof)
        if info.problem_type == "binary" and info.metric in THRESHOLD_METRICS:
            sel.threshold, _ = tune_threshold(ctx.y[covered], oof[covered], info.metric, info.pos_index)
        if info.metric == "logloss":
            sel.temperature = fit_temperature(ctx.y[covered], oof[covered])
            oof = apply_temperature(oof, sel.temperature)
    return oof, covered


def ensemble_row(ctx: TrialContext, info: ProblemInfo, built: Built, sel: Selection, oof: np.ndarray,
                 covered: np.ndarray) -> pd.DataFrame:
    """``sel.leaderboard`` with the kept ensemble's row put first."""
    lb = sel.leaderboard
    scores = score_all(info.problem_type, ctx.y[covered], oof[covered], info.pos_index, sel.threshold)
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
    by_id = {str(r["trial_id"]): r for r in rows}
    choice = choose_ensemble(ctx, lb[lb["status"] == "completed"], info, out, so, spec, ensemble)
    reranked = None
    if choice.selection is None and rerank_spec is not None and rerank_spec.top >= 2:
        lb, reranked = rerank_single(ctx, lb, rows, info, rerank_spec, deadline, out, so)
    trials = Trials(by_id, lb, str(lb[lb["status"] == "completed"].iloc[0]["trial_id"]), out, so)
    t0 = time.time()
    planned = [t for t, _ in ensemble_members(choice)] if choice.selection is not None else [trials.best_id]
    kind, why = choose_kind(spec.final_model, ctx, [trials.fit_s(t) for t in planned], deadline - 0.5 - t0,
                            os.cpu_count() or 1)
    log.info("final model: %s (%s)", kind, why)
    built = (build_bagged if kind == "bagged" else build_refit)(ctx, info, spec, choice, trials, deadline)
    built.reason = built.reason or why
    if spec.stack and built.members:
        stack_onto(ctx, info, spec, built)
    sel = describe(built, choice, trials, info, spec, reranked, t0)
    sel.started = started
    oof, covered = calibrate(ctx, info, sel, built.oof)
    if built.members:
        sel.leaderboard = ensemble_row(ctx, info, built, sel, oof, covered)
    return sel
