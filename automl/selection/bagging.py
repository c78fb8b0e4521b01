"""Bagged fold models: a configuration's k cross-validation fold models as its final model.

Instead of refitting the chosen configuration on all rows, its k fold models (each fitted on
k-1 folds, boosting stopped early on its own validation fold, exactly as in the trial) are kept
and their predictions averaged. No extrapolated ``n_estimators``, lower variance on small data,
and the out-of-fold predictions that weigh an ensemble come from the very models that predict.

The fold models are refitted in the driver on the trial's folds (same seed, same template), in
threads before the deadline (``refit_within``): a trial runs in a worker process, and keeping
every trial's k fitted models would mean serialising and storing k models for every trial of
the search (most never chosen) to save the refit of the few that are.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from automl.ensemble import BaggedModel
from automl.search.scheduling import refit_within
from automl.candidates.pipeline import build_pipeline, predict_matrix
from automl.search.trial import TrialContext, fit_fold

log = logging.getLogger(__name__)


def fit_fold_model(ctx: TrialContext, candidate: str, params: Dict[str, Any], fold: int) -> Tuple[Any, np.ndarray]:
    """Fold ``fold`` of a trial fitted again: (fitted pipeline, its predictions on the fold's
    validation rows). Same template, seed, rows and early stopping as ``trial.evaluate``."""
    cand = ctx.candidates[candidate]
    template = build_pipeline(cand, params, ctx.column_types, ctx.problem_type, ctx.seed)
    tr, va = ctx.folds_of(candidate)[fold]  # a memory down-sample's folds (search/memory.py)
    pipe, _ = fit_fold(template, cand.algorithm, ctx.X.iloc[tr], ctx.y[tr], ctx.X.iloc[va], ctx.y[va],
                       ctx.weights_of(tr), ctx.weights_of(va))
    return pipe, predict_matrix(pipe, ctx.X.iloc[va], ctx.problem_type, ctx.n_classes)


def assemble(ctx: TrialContext, parts: Sequence[Tuple[Any, np.ndarray]]) -> Tuple[BaggedModel, np.ndarray]:
    """A BaggedModel from all k fitted folds (in fold order) and its out-of-fold predictions,
    in float64: fold j's model on fold j's validation rows."""
    shape = (len(ctx.y),) if ctx.problem_type == "regression" else (len(ctx.y), ctx.n_classes)
    oof = np.full(shape, np.nan)
    for (_, va), (_, pred) in zip(ctx.folds, parts):
        oof[va] = pred
    model = BaggedModel([p for p, _ in parts], ctx.problem_type, ctx.n_classes)
    return model, oof


def bagging_estimate(fit_s: float, margin: float = 1.2) -> float:
    """Seconds to refit all k folds of a trial: the trial's own fit_s (it fitted the same k
    folds), with a margin; refit_within corrects it by what the first folds take."""
    return float(fit_s) * margin


def bag_within(ctx: TrialContext, specs: Sequence[Tuple[str, Dict[str, Any]]], fit_s: Sequence[float],
               deadline: float, workers: int) -> Dict[int, Tuple[BaggedModel, np.ndarray]]:
    """Bag each (candidate, params) of ``specs`` (in order of priority) by fitting its k folds in
    threads, as many as fit before ``deadline``; the first spec's first fold always runs.
    Returns ``{spec index: (BaggedModel, out-of-fold predictions)}`` for the specs fully fitted."""
    k = len(ctx.folds)
    items = [(s, f) for s in range(len(specs)) for f in range(k)]
    estimates = [bagging_estimate(fit_s[s]) / k for s, _ in items]
    t0 = time.time()
    fitted = refit_within(lambda i: fit_fold_model(ctx, *specs[items[i][0]], items[i][1]), estimates,
                          deadline, workers)
    out: Dict[int, Tuple[BaggedModel, np.ndarray]] = {}
    for s in range(len(specs)):
        idx = [s * k + f for f in range(k)]
        if all(i in fitted for i in idx):
            out[s] = assemble(ctx, [fitted[i] for i in idx])
    log.info("bagged %d of %d configuration(s) (%d fold models) in %.1f s", len(out), len(specs), len(fitted),
             time.time() - t0)
    return out


def choose_kind(requested: str, ctx: TrialContext, fit_s: Sequence[float], seconds_left: float,
                workers: int) -> Tuple[str, str]:
    """``(refit | bagged, why)`` for ``select.final_model``; ``auto`` bags when refitting every
    fold of the configurations in ``fit_s`` is estimated to fit in ``seconds_left``."""
    if requested == "refit":
        return "refit", "select.final_model=refit"
    if len(ctx.folds) < 2:
        return "refit", "a holdout split has one fold model, trained on part of the rows: refit on all rows"
    need = sum(bagging_estimate(f) for f in fit_s) / max(1, min(workers, len(fit_s) * len(ctx.folds)))
    if requested == "bagged":
        return "bagged", "select.final_model=bagged"
    if need <= seconds_left:
        return "bagged", f"auto: bagging the {len(ctx.folds)} fold models is estimated at {need:.1f} s of " \
                         f"the {seconds_left:.1f} s left"
    return "refit", f"auto: bagging is estimated at {need:.1f} s, more than the {seconds_left:.1f} s left"

