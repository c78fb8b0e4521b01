"""After the search: choose the final model (ensemble or best single), build it, tune its threshold.

The choice is made on the trials' out-of-fold (OOF) predictions: a Caruana ensemble kept only
through the gate (selection/gates.py), else the best single configuration after a re-rank
(search/rerank.py). The chosen configuration(s) are then built as ``select.final_model`` says:

- ``refit``: refit on all training rows in parallel threads; when that would not fit in the time
  left, the ensemble keeps its heaviest members if they still pass the gate, else it is skipped;
- ``bagged``: each configuration's k fold models, averaged (selection/bagging.py); an ensemble's
  weights are chosen again on the bagged models' own OOF predictions, which match them exactly;
- ``auto``: bagged when its estimated time fits in the time left, else refit.

With ``select.stack`` a second level on the members' OOF predictions replaces the ensemble when it
passes the gate against it (selection/stacking.py). The reason for every choice is logged and
recorded in summary.json (``best.final_model``, ``best.gate``).
"""
from __future__ import annotations

import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from automl import artifacts as art
from automl.ensemble import Selection, WeightedEnsemble, caruana_select
from automl.model import apply_temperature, fit_temperature
from automl.metrics import THRESHOLD_METRICS, get_metric, objective_score, score_all, tune_threshold
from automl.problem import ProblemInfo
from automl.rundir.layout import trial_oof_file
from automl.search.rerank import RerankSpec, rank_score, rerank
from automl.search.scheduling import refit_within  # noqa: F401 (tests and callers import it from here)
from automl.search.trial import TrialContext, latency_ms, build_pipeline
from automl.selection import SelectSpec
from automl.selection.bagging import bag_within, choose_kind
from automl.selection.gates import GateResult, gate
from automl.selection.stacking import try_stack

log = logging.getLogger(__name__)
ENSEMBLE_ID = "ensemble"
MAX_MEMBERS_CONSIDERED = 30


def load_oof(out: str, trial_id: str, so: Dict[str, Any]) -> Optional[np.ndarray]:
    try:
        return np.load(io.BytesIO(art.read_bytes(art.join(out, trial_oof_file(trial_id)), so))).astype(float)
    except Exception:
        return None


def _refit_one(ctx: TrialContext, spec: tuple):
    """Refit a (candidate name, params) pair on all rows."""
    name, params = spec
    pipe = build_pipeline(ctx.candidates[name], params, ctx.column_types, ctx.problem_type, ctx.seed)
    return pipe.fit(ctx.X, ctx.y)


def _refit_estimate(ctx: TrialContext, fit_s: float, margin: float) -> float:
    """A refit's time from a trial's fit_s, which covers its folds: k-fold CV trains each fold
    on (k-1)/k of the rows, a holdout on 1 - holdout share; a refit fits all rows once."""
    k = len(ctx.folds)
    train_share = (k - 1) / k if k > 1 else len(ctx.folds[0][0]) / len(ctx.y)
    return float(fit_s) / k / train_share * margin


def _score(info: ProblemInfo, y: np.ndarray, pred: np.ndarray) -> float:
    return objective_score(info.problem_type, info.metric, info.pos_index, y, pred)


@dataclass
class _Choice:
    """What the selection stage hands to the building stage."""

    selection: Optional[Selection] = None  # a Caruana ensemble that passed the gate
    ids: List[str] = field(default_factory=list)  # the trials Caruana chose from
    preds: List[np.ndarray] = field(default_factory=list)  # their OOF predictions on ``covered`` rows
    covered: Optional[np.ndarray] = None
    gate: Optional[GateResult] = None


@dataclass
class _Built:
    """The final model and the OOF predictions that describe it."""

    model: Any
    oof: Optional[np.ndarray]
    members: Optional[List[Tuple[str, float]]] = None  # (trial id, weight) for an ensemble
    score: Optional[float] = None  # the ensemble's OOF score
    kind: str = "refit"
    reason: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)
    member_oofs: Dict[str, np.ndarray] = field(default_factory=dict)  # each member's own OOF predictions


def _gate(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, y, cand, base, what: str) -> GateResult:
    return gate(y, cand, base, lambda yy, p: _score(info, yy, p), info.greater_is_better, info.metric,
                spec.gate, spec.gate_confidence, spec.gate_resamples, ctx.seed, what)


def _select_ensemble(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, ids: List[str],
                     preds: List[np.ndarray], y: np.ndarray) -> Tuple[Optional[Selection], Optional[GateResult]]:
    """Caruana over ``preds``, then the gate against its best single model."""
    metric = get_metric(info.metric, info.problem_type)
    selection = caruana_select(preds, y, metric, info.pos_index, score_fn=lambda yy, p: _score(info, yy, p))
    if selection is None:
        log.info("ensemble not kept: it does not beat the best single model on validation")
        return None, GateResult(False, 0.0, float("nan"), "the ensemble does not beat the best single model")
    blend = sum(w * preds[i] for i, w in enumerate(selection.weights) if w > 0)
    result = _gate(ctx, info, spec, y, blend, preds[selection.indices[0]], "the ensemble")
    if not result.passed:
        log.info("ensemble not kept: %s", result.reason)
        return None, result
    return selection, result


def _choose(ctx: TrialContext, done: pd.DataFrame, info: ProblemInfo, out: str, so: Dict[str, Any],
            spec: SelectSpec, ensemble: bool) -> _Choice:
    choice = _Choice()
    if not ensemble or len(done) < 2:
        return choice
    oofs = {}
    for tid in done["trial_id"].astype(str).head(MAX_MEMBERS_CONSIDERED):
        o = load_oof(out, tid, so)
        if o is not None:
            oofs[tid] = o
    if len(oofs) < 2:
        return choice
    first = next(iter(oofs.values()))
    choice.covered = ~np.isnan(first if first.ndim == 1 else first[:, 0])
    choice.ids = list(oofs)
    choice.preds = [oofs[t][choice.covered] for t in choice.ids]
    choice.selection, choice.gate = _select_ensemble(ctx, info, spec, choice.ids, choice.preds,
                                                     ctx.y[choice.covered])
    return choice


def _members(choice: _Choice) -> List[Tuple[str, float]]:
    """The ensemble's (trial id, weight): the best single model first, then by weight."""
    sel = choice.selection
    members = sorted(((choice.ids[i], w) for i, w in enumerate(sel.weights) if w > 0), key=lambda m: -m[1])
    single_id = choice.ids[sel.indices[0]]
    members.sort(key=lambda m: m[0] != single_id)
    return members


def _fit_s(lb: pd.DataFrame, tid: str) -> float:
    return float(lb.loc[lb["trial_id"].astype(str) == tid, "fit_s"].fillna(0.0).iloc[0])


def _build_refit(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, choice: _Choice, lb: pd.DataFrame,
                 by_id: Dict[str, Dict[str, Any]], best_id: str, deadline: float, out: str,
                 so: Dict[str, Any]) -> _Built:
    """Refit the ensemble's members (or the best single configuration) on all rows."""
    refit_of = lambda tid: json.loads(by_id[tid].get("refit_params_json") or "{}")  # noqa: E731
    t0 = time.time()
    if choice.selection is None:
        return _Built(_refit_one(ctx, (by_id[best_id]["candidate"], refit_of(best_id))), load_oof(out, best_id, so))
    members = _members(choice)
    single_id = members[0][0]
    # 20% margin; refit_within then corrects the estimates by the refits it has measured.
    estimates = [_refit_estimate(ctx, _fit_s(lb, t), 1.2) for t, _ in members]
    parallel = max(1, min(os.cpu_count() or 1, len(members)))  # refits run on this machine
    specs = [(by_id[t]["candidate"], refit_of(t)) for t, _ in members]
    fits = refit_within(lambda i: _refit_one(ctx, specs[i]), estimates, deadline - 0.5, parallel)
    kept = [(members[i][0], members[i][1], fits[i]) for i in sorted(fits)]
    score = choice.selection.score
    if len(kept) < len(members):
        ok = False
        if len(kept) >= 2:
            total = sum(w for _, w, _ in kept)
            kept = [(t, w / total, f) for t, w, f in kept]
            y = ctx.y[choice.covered]
            pred = sum(w * choice.preds[choice.ids.index(t)] for t, w, _ in kept)
            ok = _gate(ctx, info, spec, y, pred, choice.preds[choice.ids.index(single_id)], "the trimmed ensemble").passed
            score = _score(info, y, pred) if ok else score
        if not ok:
            log.info("ensemble of %d skipped: only %d member(s) could be refit in the %.0f s left, and they do not "
                     "clearly beat the best single model", len(members), len(kept), deadline - t0)
            choice.selection = None
            model = fits[0] if single_id == best_id else _refit_one(ctx, (by_id[best_id]["candidate"],
                                                                          refit_of(best_id)))
            return _Built(model, load_oof(out, best_id, so))
        log.info("ensemble cut from %d to %d member(s): the others' refit would not finish in the %.0f s left",
                 len(members), len(kept), deadline - t0)
    oofs = {t: load_oof(out, t, so) for t, _, _ in kept}
    model = WeightedEnsemble([f for _, _, f in kept], [w for _, w, _ in kept], info.problem_type, len(info.classes))
    return _Built(model, _blend(oofs, [(t, w) for t, w, _ in kept]), [(t, w) for t, w, _ in kept], score,
                  member_oofs=oofs)


def _blend(oofs: Dict[str, np.ndarray], members: List[Tuple[str, float]]) -> np.ndarray:
    oof = sum(w * oofs[t] for t, w in members)
    if oof.ndim == 2:
        oof = oof / oof.sum(axis=1, keepdims=True)
    return oof


def _build_bagged(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, choice: _Choice, lb: pd.DataFrame,
                  by_id: Dict[str, Dict[str, Any]], best_id: str, deadline: float, out: str,
                  so: Dict[str, Any]) -> _Built:
    """Bag the ensemble's members (or the best single configuration): each its k fold models.

    An ensemble's weights are selected again, and gated again, on the bagged models' own OOF
    predictions (float64, from the models that predict), so they describe the final model exactly."""
    ids = [t for t, _ in _members(choice)] if choice.selection is not None else [best_id]
    specs = [(by_id[t]["candidate"], json.loads(by_id[t].get("params_json") or "{}")) for t in ids]
    workers = max(1, min(os.cpu_count() or 1, len(ids) * len(ctx.folds)))
    bags = bag_within(ctx, specs, [_fit_s(lb, t) for t in ids], deadline - 0.5, workers)
    if choice.selection is not None and len(bags) >= 2 and 0 in bags:
        got = sorted(bags)
        preds = [bags[i][1] for i in got]
        selection, result = _select_ensemble(ctx, info, spec, [ids[i] for i in got], preds, ctx.y)
        choice.gate = result
        if selection is not None:
            members = [(ids[got[i]], float(w)) for i, w in enumerate(selection.weights) if w > 0]
            models = [bags[got[i]][0] for i, w in enumerate(selection.weights) if w > 0]
            weights = [w for _, w in members]
            model = WeightedEnsemble(models, weights, info.problem_type, len(info.classes))
            oofs = {t: bags[ids.index(t)][1] for t, _ in members}
            oof = _blend(oofs, members)
            if len(got) < len(ids):
                log.info("bagged ensemble from %d of %d member(s): the others' folds would not finish in time",
                         len(got), len(ids))
            return _Built(model, oof, members, selection.score, "bagged", member_oofs=oofs)
        log.info("bagged ensemble not kept: the best single configuration is used")
    choice.selection = None
    if ids[0] == best_id and 0 in bags:
        return _Built(bags[0][0], bags[0][1], kind="bagged")
    log.info("the best configuration's fold models would not finish in time: refit on all rows instead")
    refit = json.loads(by_id[best_id].get("refit_params_json") or "{}")
    return _Built(_refit_one(ctx, (by_id[best_id]["candidate"], refit)), load_oof(out, best_id, so),
                  reason="bagging did not finish in time")


def _stack(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, built: _Built) -> None:
    """Replace ``built``'s ensemble by a stack of its members when the stack passes the gate."""
    ids = [t for t, _ in built.members]
    stack, result = try_stack(list(built.model.estimators), [built.member_oofs[t] for t in ids], built.oof, ctx.y,
                              info.problem_type, len(info.classes), ctx.seed,
                              lambda y, cand, base: _gate(ctx, info, spec, y, cand, base, "the stack"),
                              lambda y, p: _score(info, y, p))
    built.extra["stack"] = {"kept": stack is not None, **result.record()}
    if stack is not None:
        built.model, built.oof, built.score = stack.model, stack.oof, stack.score
        built.kind = f"{built.kind}+stack"


def _calibrate(ctx: TrialContext, info: ProblemInfo, oof: Optional[np.ndarray], chosen: Dict[str, Any]):
    """Tune the binary threshold / logloss temperature on the final model's OOF predictions.
    Returns (threshold, oof after temperature, covered rows)."""
    threshold, covered = None, None
    if oof is not None:
        covered = ~np.isnan(oof if oof.ndim == 1 else oof[:, 0])
        if info.problem_type == "binary" and info.metric in THRESHOLD_METRICS:
            threshold, _ = tune_threshold(ctx.y[covered], oof[covered], info.metric, info.pos_index)
            chosen["threshold"] = threshold
        if info.metric == "logloss":
            chosen["temperature"] = fit_temperature(ctx.y[covered], oof[covered])
            oof = apply_temperature(oof, chosen["temperature"])
    return threshold, oof, covered


def _ensemble_row(ctx: TrialContext, info: ProblemInfo, lb: pd.DataFrame, built: _Built, chosen: Dict[str, Any],
                  oof: np.ndarray, covered: np.ndarray, threshold) -> pd.DataFrame:
    scores = score_all(info.problem_type, ctx.y[covered], oof[covered], info.pos_index, threshold)
    row = {"trial_id": ENSEMBLE_ID, "trial_number": len(lb), "candidate": ENSEMBLE_ID, "algorithm": "ensemble",
           "status": "completed", "objective": built.score, **scores,
           "fit_s": chosen["refit_s"], "predict_ms_per_row": np.nan,
           "latency_ms_single_row": latency_ms(built.model, ctx.X, info.problem_type),
           "model_size_bytes": np.nan,  # the runner fills it in from the saved model (one serialisation)
           "error": "", "members": " ".join(f"{m['trial_id']}:{m['weight']}" for m in chosen["members"])}
    return pd.concat([pd.DataFrame([row]), lb], ignore_index=True)


def finalize(ctx: TrialContext, lb: pd.DataFrame, rows: List[Dict[str, Any]], info: ProblemInfo,
             deadline: float, out: str, so: Dict[str, Any], ensemble: bool = True,
             rerank_spec: Optional[RerankSpec] = None, select: Optional[SelectSpec] = None):
    """Return (fitted estimator, description dict, threshold, leaderboard with an ensemble row if kept).

    When the final model is a single configuration, the best few are first re-scored on more
    cross-validation splits (``rerank_spec``; see search/rerank.py) and the best mean wins.
    ``select`` (the ``select.*`` keys) says how the model is built and gated.
    """
    spec = select or SelectSpec()
    by_id = {str(r["trial_id"]): r for r in rows}
    done = lb[lb["status"] == "completed"]
    best_id = str(done.iloc[0]["trial_id"])
    choice = _choose(ctx, done, info, out, so, spec, ensemble)
    reranked = None
    if choice.selection is None and rerank_spec is not None and rerank_spec.top >= 2:
        # Leave the refit of the slowest of the configurations it may pick, with a margin.
        slowest = _refit_estimate(ctx, done["fit_s"].head(rerank_spec.top).max(), 1.5)
        until = min(time.time() + rerank_spec.seconds, deadline - slowest - 0.5)
        best_oof = load_oof(out, best_id, so)
        lb, reranked = rerank(ctx, lb, rows, info.greater_is_better, rerank_spec, until, best_oof=best_oof)
        done = lb[lb["status"] == "completed"]
        best_id = str(done.iloc[0]["trial_id"])
    t0 = time.time()
    planned = [t for t, _ in _members(choice)] if choice.selection is not None else [best_id]
    kind, why = choose_kind(spec.final_model, ctx, [_fit_s(lb, t) for t in planned], deadline - 0.5 - t0,
                            os.cpu_count() or 1)
    log.info("final model: %s (%s)", kind, why)
    build = _build_bagged if kind == "bagged" else _build_refit
    built = build(ctx, info, spec, choice, lb, by_id, best_id, deadline, out, so)
    built.reason = built.reason or why
    if spec.stack and built.members:
        _stack(ctx, info, spec, built)
    if built.members:
        log.info("ensemble kept: %d member(s), validation %s %.5f vs best single %.5f", len(built.members),
                 info.metric, built.score, choice.selection.best_single_score if choice.selection else float("nan"))
        chosen = {"trial_id": ENSEMBLE_ID, "candidate": ENSEMBLE_ID, "score": built.score,
                  "members": [{"trial_id": t, "candidate": by_id[t]["candidate"], "weight": round(float(w), 4)}
                              for t, w in built.members]}
    else:
        chosen = {"trial_id": best_id, "candidate": by_id[best_id]["candidate"], "score": rank_score(done.iloc[0])}
        if reranked:
            chosen["rerank"] = reranked
    chosen["final_model"] = {"kind": built.kind, "requested": spec.final_model, "reason": built.reason,
                             **built.extra}
    if choice.gate is not None:
        chosen["gate"] = {"method": spec.gate, **choice.gate.record()}
    chosen["refit_s"] = round(time.time() - t0, 2)
    threshold, oof, covered = _calibrate(ctx, info, built.oof, chosen)
    if built.members:
        lb = _ensemble_row(ctx, info, lb, built, chosen, oof, covered, threshold)
    return built.model, chosen, threshold, lb
