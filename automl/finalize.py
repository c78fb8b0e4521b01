"""After the search: choose the final model (ensemble or best single), refit it, tune its threshold.

Members are refit on all training rows in parallel threads; when that would not fit in the
time left, the ensemble keeps its heaviest members if they still beat the best single model,
else it is skipped (the reason is logged either way).
"""
from __future__ import annotations

import io
import json
import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pandas as pd

from automl import artifacts as art
from automl.ensemble import WeightedEnsemble, caruana_select, significant_count_gain
from automl.model import apply_temperature, fit_temperature
from automl.metrics import THRESHOLD_METRICS, get_metric, objective_score, score_all, tune_threshold
from automl.problem import ProblemInfo
from automl.search.rerank import RerankSpec, rank_score, rerank
from automl.search.trial import TrialContext, latency_ms, build_pipeline

log = logging.getLogger(__name__)
ENSEMBLE_ID = "ensemble"
MAX_MEMBERS_CONSIDERED = 30


def load_oof(out: str, trial_id: str, so: Dict[str, Any]) -> Optional[np.ndarray]:
    try:
        return np.load(io.BytesIO(art.read_bytes(art.join(out, "trials", trial_id, "oof.npy"), so))).astype(float)
    except Exception:
        return None


def _refit_one(ctx: TrialContext, spec: tuple):
    """Refit a (candidate name, params) pair on all rows."""
    name, params = spec
    pipe = build_pipeline(ctx.candidates[name], params, ctx.column_types, ctx.problem_type, ctx.seed)
    return pipe.fit(ctx.X, ctx.y)


def refit_within(fit_one: Callable[[int], Any], estimates: List[float], deadline: float,
                 workers: int = 1, first_always: bool = True) -> Dict[int, Any]:
    """Fit items ``0..n-1`` in order, ``workers`` at a time in threads of this process (XGBoost
    and scikit-learn's trees release the GIL): item 0 always (unless not ``first_always``),
    every other one only if its estimated time fits before ``deadline``. Estimates are scaled by what the fits so far
    actually took against their estimates (measured, not assumed: the trials' fold times
    over- or under-state a refit by up to 2x). Returns ``{index: fitted}`` of the items fitted.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    fitted: Dict[int, Any] = {}
    queue = list(range(1 if first_always else 0, len(estimates)))
    running: Dict[Any, tuple] = {}
    spent = estimated = 0.0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        if first_always and estimates:
            running[pool.submit(fit_one, 0)] = (0, time.time())
        while True:
            ratio = spent / estimated if estimated > 0 else 1.0
            for i in list(queue):
                if len(running) >= max(1, workers):
                    break
                if time.time() + estimates[i] * ratio <= deadline:
                    queue.remove(i)
                    running[pool.submit(fit_one, i)] = (i, time.time())
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                i, started = running.pop(future)
                fitted[i] = future.result()
                spent += time.time() - started
                estimated += max(estimates[i], 1e-3)
    return fitted


def _refit_estimate(ctx: TrialContext, fit_s: float, margin: float) -> float:
    """A refit's time from a trial's fit_s, which covers its folds: k-fold CV trains each fold
    on (k-1)/k of the rows, a holdout on 1 - holdout share; a refit fits all rows once."""
    k = len(ctx.folds)
    train_share = (k - 1) / k if k > 1 else len(ctx.folds[0][0]) / len(ctx.y)
    return float(fit_s) / k / train_share * margin


def _better_score(metric, a: float, b: float) -> bool:
    return a > b + 1e-9 if metric.greater_is_better else a < b - 1e-9


def _score(info: ProblemInfo, y: np.ndarray, pred: np.ndarray) -> float:
    return objective_score(info.problem_type, info.metric, info.pos_index, y, pred)


def _clear_gain(info: ProblemInfo, metric, y: np.ndarray, pred: np.ndarray, single: np.ndarray,
                single_score: float) -> tuple:
    """Whether an ensemble's validation prediction beats the best single model's: a better
    score, and for accuracy more than a few rows better (see ``significant_count_gain``).
    Returns ``(ok, reason when not)``; used for the selected ensemble and for a trimmed one."""
    if not _better_score(metric, _score(info, y, pred), single_score):
        return False, "it does not beat the best single model on validation"
    if info.metric == "accuracy":
        ok, b, c = significant_count_gain(y, pred, single)
        if not ok:
            return False, (f"on validation it labels {b} row(s) right that the best single model gets "
                           f"wrong and {c} the other way round, within noise")
    return True, ""


def finalize(ctx: TrialContext, lb: pd.DataFrame, rows: List[Dict[str, Any]], info: ProblemInfo,
             deadline: float, out: str, so: Dict[str, Any], ensemble: bool = True,
             rerank_spec: Optional[RerankSpec] = None):
    """Return (fitted estimator, description dict, leaderboard with an ensemble row if kept).

    When the final model is a single configuration, the best few are first re-scored on more
    cross-validation splits (``rerank_spec``; see search/rerank.py) and the best mean wins.
    """
    by_id = {str(r["trial_id"]): r for r in rows}
    done = lb[lb["status"] == "completed"]
    best_id = str(done.iloc[0]["trial_id"])
    refit_of = lambda tid: json.loads(by_id[tid].get("refit_params_json") or "{}")  # noqa: E731
    covered = None
    selection = None
    oofs: Dict[str, np.ndarray] = {}
    if ensemble and len(done) >= 2:
        for tid in done["trial_id"].astype(str).head(MAX_MEMBERS_CONSIDERED):
            o = load_oof(out, tid, so)
            if o is not None:
                oofs[tid] = o
        if len(oofs) >= 2:
            first = next(iter(oofs.values()))
            covered = ~np.isnan(first if first.ndim == 1 else first[:, 0])
            ids = list(oofs)
            preds = [oofs[t][covered] for t in ids]
            metric = get_metric(info.metric, info.problem_type)
            selection = caruana_select(preds, ctx.y[covered], metric, info.pos_index,
                                       score_fn=lambda yy, p: _score(info, yy, p))
            if selection is None:
                log.info("ensemble not kept: it does not beat the best single model on validation")
            else:
                single = preds[selection.indices[0]]
                blend = sum(w * preds[i] for i, w in enumerate(selection.weights) if w > 0)
                ok, why = _clear_gain(info, metric, ctx.y[covered], blend, single, selection.best_single_score)
                if not ok:
                    log.info("ensemble not kept: %s", why)
                    selection = None
    oof_of = lambda tid: oofs[tid] if tid in oofs else load_oof(out, tid, so)  # noqa: E731
    reranked = None
    if selection is None and rerank_spec is not None and rerank_spec.top >= 2:
        # Leave the refit of the slowest of the configurations it may pick, with a margin.
        slowest = _refit_estimate(ctx, done["fit_s"].head(rerank_spec.top).max(), 1.5)
        until = min(time.time() + rerank_spec.seconds, deadline - slowest - 0.5)
        lb, reranked = rerank(ctx, lb, rows, info.greater_is_better, rerank_spec, until, best_oof=oof_of(best_id))
        done = lb[lb["status"] == "completed"]
        best_id = str(done.iloc[0]["trial_id"])
    t0 = time.time()
    model = None
    if selection is not None:
        # The best single model first (the fallback, refit whatever happens), then by weight.
        members = sorted(((ids[i], w) for i, w in enumerate(selection.weights) if w > 0), key=lambda m: -m[1])
        single_id = ids[selection.indices[0]]
        members.sort(key=lambda m: m[0] != single_id)
        # 20% margin; refit_within then corrects the estimates by the refits it has measured.
        estimates = [_refit_estimate(ctx, lb.loc[lb["trial_id"].astype(str) == t, "fit_s"].iloc[0], 1.2)
                     for t, _ in members]
        parallel = max(1, min(os.cpu_count() or 1, len(members)))  # refits run on this machine
        specs = [(by_id[t]["candidate"], refit_of(t)) for t, _ in members]
        done_fits = refit_within(lambda i: _refit_one(ctx, specs[i]), estimates, deadline - 0.5, parallel)
        kept = [(members[i][0], members[i][1], done_fits[i]) for i in sorted(done_fits)]
        ok = len(kept) == len(members)
        if not ok and len(kept) >= 2:
            total = sum(w for _, w, _ in kept)
            pred = sum(w / total * preds[ids.index(t)] for t, w, _ in kept)
            ok = _clear_gain(info, metric, ctx.y[covered], pred, single, selection.best_single_score)[0]
            if ok:
                selection.score = _score(info, ctx.y[covered], pred)
                log.info("ensemble cut from %d to %d member(s): the others' refit would not finish in the "
                         "%.0f s left", len(members), len(kept), deadline - t0)
                kept = [(t, w / total, f) for t, w, f in kept]
        if not ok:
            log.info("ensemble of %d skipped: only %d member(s) could be refit in the %.0f s left, and "
                     "they do not clearly beat the best single model", len(members), len(kept), deadline - t0)
            model = done_fits[0] if single_id == best_id else None  # the best single model, refit already
            selection = None
        else:
            members = [(t, w) for t, w, _ in kept]
    if selection is not None:
        log.info("ensemble kept: %d member(s), validation %s %.5f vs best single %.5f", len(members),
                 info.metric, selection.score, selection.best_single_score)
        model = WeightedEnsemble([f for _, _, f in kept], [w for _, w in members], info.problem_type,
                                 len(info.classes))
        oof = sum(w * oofs[t] for t, w in members)
        if oof.ndim == 2:
            oof = oof / oof.sum(axis=1, keepdims=True)
        chosen = {"trial_id": ENSEMBLE_ID, "candidate": ENSEMBLE_ID, "score": selection.score,
                  "members": [{"trial_id": t, "candidate": by_id[t]["candidate"], "weight": round(float(w), 4)}
                              for t, w in members]}
    else:
        if model is None:
            model = _refit_one(ctx, (by_id[best_id]["candidate"], refit_of(best_id)))
        oof = oof_of(best_id)
        chosen = {"trial_id": best_id, "candidate": by_id[best_id]["candidate"], "score": rank_score(done.iloc[0])}
        if reranked:
            chosen["rerank"] = reranked
    refit_s = time.time() - t0
    chosen["refit_s"] = round(refit_s, 2)
    threshold = None
    if oof is not None:
        covered = ~np.isnan(oof if oof.ndim == 1 else oof[:, 0])
        if info.problem_type == "binary" and info.metric in THRESHOLD_METRICS:
            threshold, _ = tune_threshold(ctx.y[covered], oof[covered], info.metric, info.pos_index)
            chosen["threshold"] = threshold
        if info.metric == "logloss":
            chosen["temperature"] = fit_temperature(ctx.y[covered], oof[covered])
            oof = apply_temperature(oof, chosen["temperature"])
    if chosen["trial_id"] == ENSEMBLE_ID:
        scores = score_all(info.problem_type, ctx.y[covered], oof[covered], info.pos_index, threshold)
        row = {"trial_id": ENSEMBLE_ID, "trial_number": len(lb), "candidate": ENSEMBLE_ID, "algorithm": "ensemble",
               "status": "completed", "objective": selection.score, **scores,
               "fit_s": refit_s, "predict_ms_per_row": np.nan,
               "latency_ms_single_row": latency_ms(model, ctx.X, info.problem_type),
               "model_size_bytes": np.nan,  # the runner fills it in from model.pkl (one pickling, not two)
               "error": "", "members": " ".join(f"{m['trial_id']}:{m['weight']}" for m in chosen["members"])}
        lb = pd.concat([pd.DataFrame([row]), lb], ignore_index=True)
    return model, chosen, threshold, lb
