"""One trial: build a candidate's pipeline with sampled parameters and cross-validate it.

Runs inside a Ray worker. Everything it needs arrives in a ``TrialContext`` through Ray's
object store (``tune.with_parameters``), so workers need no shared disk.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter

from automl.candidates.estimators import TargetTransformRegressor
from automl.candidates.generate import Candidate
from automl.candidates.pipeline import build_pipeline, predict_matrix  # noqa: F401 (selection imports them from here)
from automl.candidates.space import params_of
from automl.candidates.algorithms import get_algorithm, make_estimator
from automl.data.splits import fold_count, make_folds  # noqa: F401  (re-exported: callers read them here)
from automl.metrics import THRESHOLD_METRICS, get_metric, score_all, tune_threshold, worst_value
from automl.raystart import PACKAGE_DIR  # automl's own folder (a trial row's code_path)
from automl.rundir.foldmodels import save_fold_models
from automl.rundir.modelfile import model_parts
from automl.rundir.layout import trial_oof_file

EARLY_STOPPING_ROUNDS = 40


class TrialTimeout(RuntimeError):
    """A trial ran past its per-trial time limit."""


@dataclass
class TrialContext:
    X: pd.DataFrame
    y: np.ndarray
    folds: List[Tuple[np.ndarray, np.ndarray]]
    column_types: Dict[str, str]
    candidates: Dict[str, Candidate]
    problem_type: str
    metric: str
    n_classes: int = 0
    pos_index: int = 1
    seed: int = 0
    trial_time_limit_s: float = 60.0
    output_dir: Optional[str] = None
    storage_options: Dict[str, Any] = field(default_factory=dict)
    # Report after each fold so ASHA can stop poor trials early (large data only).
    multi_fidelity: bool = False
    # Wall-clock time (time.time()) at which the search ends: a trial still running then is
    # stopped by its own watchdog (Tune can stop a trial only when it reports).
    search_deadline: Optional[float] = None
    # One sample weight per row of X (data.weight_column / data.weights); None: unweighted.
    weights: Optional[np.ndarray] = None
    # validation.group_column's code per row (the re-rank's extra splits keep groups apart).
    groups: Optional[np.ndarray] = None
    # True with validation.time_column: rows in time order, forward-chaining folds (no re-rank).
    time_ordered: bool = False
    # Write the fitted fold models (trials/<id>/fold_models.skops; holdout splits): the select
    # stage's fallback when a refit on all rows would not fit the clock (selection/timeplan.py).
    keep_fold_models: bool = False
    # The memory plan's down-sampled folds per candidate (search/memory.py); others use ``folds``.
    candidate_folds: Dict[str, List[Tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)

    def folds_of(self, name: str) -> List[Tuple[np.ndarray, np.ndarray]]:
        """The folds candidate ``name``'s trials fit on (a memory down-sample, else ``folds``)."""
        return self.candidate_folds.get(name, self.folds)

    def weights_of(self, rows) -> Optional[np.ndarray]:
        """The sample weights of ``rows`` (an index or mask); None when the run is unweighted."""
        return None if self.weights is None else self.weights[rows]


class SearchDeadline(TrialTimeout):
    """A trial that could not finish before the search deadline."""


WORKER_DIED = ("the trial's worker process died (killed by a signal or out of memory); "
               "the run went on without it")
OUT_OF_MEMORY = "out of memory"  # a failed trial's reason when its fit ran out of memory (MemoryError)


def release_memory() -> bool:
    """Hand the memory a finished trial freed back to the system (True when it could).

    A Ray worker is reused for trial after trial (``reuse_actors``), each run in a new thread, and
    glibc keeps what a thread's arena freed: a 1M-row search grew each worker by ~100 MB a trial
    (0.6 -> 1.5 GiB in 18 trials, 2.5 GiB at 600 s; issue 20). ``malloc_trim`` returns the free
    pages of every arena; it frees nothing still in use, so no result changes.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return False
    return True


def placement(node_id: str = "") -> Dict[str, Any]:
    """Where a trial ran (the leaderboard shows it; the cluster test checks it)."""
    import socket

    return {"node_id": node_id, "hostname": socket.gethostname(), "pid": os.getpid(),
            "code_path": PACKAGE_DIR}


def expiry(at_deadline: bool, limit_s: float, ran_s: float, stopper: str) -> Tuple[str, str]:
    """Status and error of a trial ended from outside (``stopper``: who ended it) at the search
    deadline or past its own limit."""
    if at_deadline:
        return "stopped", f"stopped at the search deadline after {ran_s:.0f} s"
    return "timeout", (f"trial exceeded its time limit of {limit_s:.0f} s (stopped by {stopper} after "
                       f"{ran_s:.0f} s; raise budget.trial_time_limit_s)")


def weight_support(algorithm: str, problem_type: str) -> str:
    """Why ``algorithm`` cannot fit with sample weights ("" when it can): its estimator's ``fit``
    takes no ``sample_weight``."""
    try:
        est = make_estimator(algorithm, problem_type, {}, 0)
    except Exception:  # a factory that needs parameters: its trials will say what fails
        return ""
    if has_fit_parameter(est, "sample_weight"):
        return ""
    return (f"{type(est).__name__}.fit takes no sample_weight, and this run has sample weights "
            "(data.weight_column / data.weights)")


def weighted_fit_kwargs(pipe: Pipeline, w: Optional[np.ndarray]) -> Dict[str, Any]:
    """``fit`` keyword arguments that give the pipeline's final step (the model) its weights."""
    return {} if w is None else {f"{pipe.steps[-1][0]}__sample_weight": w}


def fit_fold(template: Pipeline, algorithm: str, X_tr, y_tr, X_va, y_va, w_tr: Optional[np.ndarray] = None,
             w_va: Optional[np.ndarray] = None) -> tuple[Pipeline, Optional[int]]:
    """Fit one fold (with the rows' sample weights ``w_tr``, ``w_va`` when given); boosting stops
    early on the fold's validation rounds.

    Returns the fitted pipeline and, for early-stopped models, the number of rounds used.
    """
    pipe = clone(template)
    stop = get_algorithm(algorithm).early_stopping  # the library's recipe (candidates/algorithms.py)
    if stop is None:
        pipe.fit(X_tr, y_tr, **weighted_fit_kwargs(pipe, w_tr))
        return pipe, None
    pre = Pipeline(pipe.steps[:-1])  # shares the step objects, so fitting it fits pipe's steps
    Xt = pre.fit_transform(X_tr, y_tr)
    Xv = pre.transform(X_va)
    model = pipe.steps[-1][1]
    wrapped = isinstance(model, TargetTransformRegressor)
    model.set_params(**{("regressor__" if wrapped else "") + k: v
                        for k, v in stop.params(EARLY_STOPPING_ROUNDS).items()})
    kwargs = stop.fit_kwargs(Xv, y_va, EARLY_STOPPING_ROUNDS)
    if w_tr is not None:
        kwargs["sample_weight"] = w_tr
        if stop.eval_weight_key:  # the validation rounds are weighted too
            kwargs[stop.eval_weight_key] = [w_va]
    model.fit(Xt, y_tr, **kwargs)
    return pipe, stop.rounds_kept(model.regressor_ if wrapped else model)


def refit_params(params: Dict[str, Any], rounds: List[int]) -> Dict[str, Any]:
    """Parameters for a refit on all rows: early-stopped rounds become a fixed n_estimators."""
    if not rounds:
        return dict(params)
    return {**params, "model.n_estimators": max(1, int(np.ceil(np.mean(rounds) * 1.1)))}


def latency_ms(pipeline, X: pd.DataFrame, problem_type: str) -> float:
    """Median time of three single-row predictions, in milliseconds."""
    row = X.iloc[:1]
    times = []
    for _ in range(3):
        t = time.perf_counter()
        pipeline.predict(row) if problem_type == "regression" else pipeline.predict_proba(row)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def evaluate(config: Dict[str, Any], ctx: TrialContext, trial_id: Optional[str] = None,
             on_fold: Optional[Callable[[int, float], None]] = None,
             deadline: Optional[float] = None) -> Dict[str, Any]:
    """Cross-validate one configuration; never raises (a failure is a result).

    ``on_fold(n_folds_done, score_so_far)`` is called after every fold but the last, so a
    multi-fidelity scheduler can stop a poor trial early.
    """
    name = config["candidate"]
    params = params_of(config, name)
    metric = get_metric(ctx.metric, ctx.problem_type)
    base = {"candidate": name, "params_json": json.dumps(params, default=str)}
    start = time.perf_counter()
    try:
        candidate = ctx.candidates[name]
        template = build_pipeline(candidate, params, ctx.column_types, ctx.problem_type, ctx.seed)
        shape = (len(ctx.y),) if ctx.problem_type == "regression" else (len(ctx.y), ctx.n_classes)
        oof = np.full(shape, np.nan)
        covered = np.zeros(len(ctx.y), dtype=bool)
        predict_s = 0.0
        rounds: List[int] = []
        fitted: List[Pipeline] = []
        for i, (tr, va) in enumerate(ctx.folds_of(name)):
            pipe, used = fit_fold(template, candidate.algorithm, ctx.X.iloc[tr], ctx.y[tr], ctx.X.iloc[va], ctx.y[va],
                                  ctx.weights_of(tr), ctx.weights_of(va))
            if used is not None:
                rounds.append(used)
            if ctx.keep_fold_models:
                fitted.append(pipe)
            t = time.perf_counter()
            oof[va] = predict_matrix(pipe, ctx.X.iloc[va], ctx.problem_type, ctx.n_classes)
            predict_s += time.perf_counter() - t
            covered[va] = True
            if on_fold is not None and i < len(ctx.folds) - 1:
                on_fold(i + 1, _partial_score(ctx, oof, covered))
            elapsed = time.perf_counter() - start
            stop = _stop_after(ctx, i + 1, elapsed, deadline)
            if stop is not None:
                stop.partial = partial_result(ctx, oof, covered, i + 1, params, rounds)
                raise stop
        threshold, w = None, ctx.weights_of(covered)
        if ctx.problem_type == "binary" and ctx.metric in THRESHOLD_METRICS:
            threshold, _ = tune_threshold(ctx.y[covered], oof[covered], ctx.metric, ctx.pos_index, w)
        scores = score_all(ctx.problem_type, ctx.y[covered], oof[covered], ctx.pos_index, threshold, w)
        objective = scores[ctx.metric]
        if not np.isfinite(objective):
            raise ValueError(f"metric {ctx.metric} is not finite on validation data")
        fit_s = time.perf_counter() - start - predict_s
        result = {
            **base,
            "status": "completed",
            "error": "",
            "objective": float(objective),
            **{f"metric_{k}": v for k, v in scores.items()},
            "fit_s": fit_s,
            "predict_ms_per_row": 1000 * predict_s / max(1, int(covered.sum())),
            "latency_ms_single_row": latency_ms(pipe, ctx.X, ctx.problem_type),
            "model_size_bytes": len(pickle.dumps(pipe, protocol=pickle.HIGHEST_PROTOCOL)),
            "model_parts": model_parts(pipe),  # what the model file's write costs per part (selection/build.py)
            "threshold": threshold,
            "refit_params_json": json.dumps(refit_params(params, rounds), default=str),
        }
        if name in ctx.candidate_folds:  # the memory plan's down-sample: rows per fold it trained on
            result["memory_sample_rows"] = max(len(tr) for tr, _ in ctx.candidate_folds[name])
        if ctx.output_dir and trial_id:
            _save_oof(ctx, trial_id, oof)
            if fitted:
                save_fold_models(ctx.output_dir, trial_id, fitted, ctx.storage_options)
        return result
    except Exception as exc:  # a failed trial is recorded, the run goes on
        status, error = failure(exc)
        return {**base, "status": status, "error": error, "objective": worst_value(metric),
                "fit_s": time.perf_counter() - start, **getattr(exc, "partial", {})}


def failure(exc: Exception) -> Tuple[str, str]:
    """A trial's status and reason for an exception out of its folds."""
    if isinstance(exc, TrialTimeout):
        return ("stopped" if isinstance(exc, SearchDeadline) else "timeout"), str(exc)
    if isinstance(exc, MemoryError):  # numpy's "Unable to allocate ..." and the like: the run goes on
        detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return "failed", f"{OUT_OF_MEMORY} ({detail})"
    return "failed", traceback.format_exception_only(type(exc), exc)[-1].strip()[:500]


def _stop_after(ctx: TrialContext, done: int, elapsed: float, deadline: Optional[float]) -> Optional[TrialTimeout]:
    """Stop now (the exception to raise) if the ``done`` folds so far say the rest cannot finish
    within the search deadline or the trial's limit: the watchdog would kill the trial later anyway,
    after wasting a worker on it."""
    if done >= len(ctx.folds):
        return None
    projected = elapsed / done * len(ctx.folds)
    if deadline is not None and time.time() + projected - elapsed > deadline:
        return SearchDeadline(f"stopped at the search deadline after {done} of {len(ctx.folds)} folds")
    if projected > ctx.trial_time_limit_s:
        return TrialTimeout(f"trial would exceed its time limit of {ctx.trial_time_limit_s:.0f} s "
                            f"({elapsed:.1f} s for {done} of {len(ctx.folds)} folds)")
    return None


def partial_result(ctx: TrialContext, oof: np.ndarray, covered: np.ndarray, folds_done: int,
                   params: Dict[str, Any], rounds: List[int]) -> Dict[str, Any]:
    """What a trial stopped after ``folds_done`` folds still tells: its score on the rows those
    folds validated, and the parameters a refit would use. When no trial finished, the select
    stage fits the best of these rather than an unvalidated default (selection/fallback.py)."""
    return {"partial_objective": _partial_score(ctx, oof, covered), "partial_folds": folds_done,
            "refit_params_json": json.dumps(refit_params(params, rounds), default=str)}


def _partial_score(ctx: TrialContext, oof: np.ndarray, covered: np.ndarray) -> float:
    metric = get_metric(ctx.metric, ctx.problem_type)
    try:
        return float(metric.fn(ctx.y[covered], oof[covered], ctx.pos_index, ctx.weights_of(covered)))
    except ValueError:  # e.g. one class only in the rows seen so far
        return float(worst_value(metric))


def _save_oof(ctx: TrialContext, trial_id: str, oof: np.ndarray) -> None:
    import fsspec

    buf = io.BytesIO()
    np.save(buf, oof.astype(np.float32))
    with fsspec.open(f"{ctx.output_dir.rstrip('/')}/{trial_oof_file(trial_id)}", "wb",
                     auto_mkdir=True, **ctx.storage_options) as fh:
        fh.write(buf.getvalue())
