"""Building the final model from the chosen configuration(s), as ``select.final_model`` says:

- ``refit``: refit on all training rows in parallel threads; when that would not fit in the time
  left, the ensemble keeps its heaviest members if they still pass the gate, else it is skipped;
- ``bagged``: each configuration's k fold models, averaged (selection/bagging.py); an ensemble's
  weights are chosen again on the bagged models' own OOF predictions, which match them exactly.

With ``select.stack`` a second level on the members' OOF predictions replaces the ensemble when it
passes the gate against it (selection/stacking.py).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from automl.ensemble import WeightedEnsemble
from automl.problem import ProblemInfo
from automl.search.sampling import sample_index
from automl.search.scheduling import refit_within
from automl.candidates.pipeline import build_pipeline
from automl.search.trial import TrialContext, weighted_fit_kwargs
from automl.selection import SelectSpec
from automl.selection.bagging import bag_within
from automl.selection.choose import EnsembleChoice, ensemble_members, gate_against, score, select_ensemble
from automl.selection.oof import blend, covered_rows, load_oof
from automl.selection.stacking import try_stack

log = logging.getLogger(__name__)


@dataclass
class Built:
    """The final model and the OOF predictions that describe it."""

    model: Any
    oof: Optional[np.ndarray]
    members: Optional[List[Tuple[str, float]]] = None  # (trial id, weight) for an ensemble
    score: Optional[float] = None  # the ensemble's OOF score
    kind: str = "refit"
    reason: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)
    member_oofs: Dict[str, np.ndarray] = field(default_factory=dict)  # each member's own OOF predictions


@dataclass
class Trials:
    """What the building reads about the search's trials: their rows by id, the leaderboard, the
    run folder (for their OOF predictions) and the best single configuration's id."""

    by_id: Dict[str, Dict[str, Any]]
    leaderboard: pd.DataFrame
    best_id: str
    out: str
    so: Dict[str, Any]

    def _value(self, tid: str, column: str) -> float:
        """A trial's number in a leaderboard column, 0 when the column or the value is missing."""
        lb = self.leaderboard
        if column not in lb:
            return 0.0
        return float(lb.loc[lb["trial_id"].astype(str) == tid, column].fillna(0.0).iloc[0])

    def fit_s(self, tid: str) -> float:
        return self._value(tid, "fit_s")

    def size_bytes(self, tid: str) -> float:
        """The trial's fold model's size (pickled), 0 when not recorded."""
        return self._value(tid, "model_size_bytes")

    def parts(self, tid: str) -> float:
        """The parts skops writes one by one in the trial's model (a forest's trees), 0 when not recorded."""
        return self._value(tid, "model_parts")

    def spec(self, tid: str, key: str = "refit_params_json") -> Tuple[str, Dict[str, Any]]:
        """(candidate name, params) of a trial: its refit params, or ``params_json`` as searched."""
        return self.by_id[tid]["candidate"], json.loads(self.by_id[tid].get(key) or "{}")

    def oof(self, tid: str) -> Optional[np.ndarray]:
        return load_oof(self.out, tid, self.so)


def refit_one(ctx: TrialContext, spec: tuple):
    """Refit a (candidate name, params) pair on all rows, or on the sample the memory plan allows
    a down-sampled candidate (search/memory.py)."""
    name, params = spec
    cand = ctx.candidates[name]
    pipe = build_pipeline(cand, params, ctx.column_types, ctx.problem_type, ctx.seed)
    if cand.memory_refit_rows and cand.memory_refit_rows < len(ctx.y):
        idx = sample_index(ctx.y, cand.memory_refit_rows, ctx.problem_type, ctx.seed)
        log.info("final model of %s: refit on a sample of %d of the %d rows (the memory plan)", name, len(idx),
                 len(ctx.y))
        return pipe.fit(ctx.X.iloc[idx], ctx.y[idx], **weighted_fit_kwargs(pipe, ctx.weights_of(idx)))
    return pipe.fit(ctx.X, ctx.y, **weighted_fit_kwargs(pipe, ctx.weights))


def refit_estimate(ctx: TrialContext, fit_s: float, margin: float) -> float:
    """A refit's time from a trial's fit_s, which covers its folds: k-fold CV trains each fold
    on (k-1)/k of the rows, a holdout on 1 - holdout share; a refit fits all rows once."""
    return float(fit_s) / len(ctx.folds) / train_share(ctx) * margin


def train_share(ctx: TrialContext) -> float:
    """The share of all rows a trial's fold model trained on: (k-1)/k for k-fold CV, else the
    holdout split's training rows."""
    k = len(ctx.folds)
    return (k - 1) / k if k > 1 else len(ctx.folds[0][0]) / len(ctx.y)


# Writing a model file (the skops dump at deflate level 1 and the audit of its types), in CPU
# seconds: ~2.3-2.6 ms per part skops writes one by one (a forest's tree, a boosting stage) whatever
# its size, plus ~7-11 ms per MB pickled (benchmarks/model_write.py: 500 two-level trees, 0.5 MB,
# 1.17 s; 500 full trees, 38.6 MB, 1.44 s). The constants below over-predict 200-tree forests on
# hpc and ames by 23-45%: the safe side.
# A per-MB rate alone (14 ms/MB, then 25) missed hpc's 10 forests: 9.5 s to dump under cProfile.
SAVE_S_PER_PART = 0.003
SAVE_S_PER_MB = 0.012


def save_seconds(ctx: TrialContext, fold_model_bytes: float, parts: float = 0.0) -> float:
    """Predicted time to write a refit model whose fold model had ``fold_model_bytes`` and
    ``parts`` (rundir/modelfile.model_parts): trees grow with the rows, so the size scales from a
    fold's training rows to all rows; their count does not."""
    return float(parts) * SAVE_S_PER_PART + float(fold_model_bytes) / 1e6 / train_share(ctx) * SAVE_S_PER_MB


def build_refit(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, choice: EnsembleChoice, trials: Trials,
                deadline: float) -> Built:
    """Refit the ensemble's members (or the best single configuration) on all rows."""
    t0 = time.time()
    best_id = trials.best_id
    if choice.selection is None:
        return Built(refit_one(ctx, trials.spec(best_id)), trials.oof(best_id))
    members = ensemble_members(choice)
    single_id = members[0][0]
    # 20% margin; refit_within then corrects the estimates by the refits it has measured.
    estimates = [refit_estimate(ctx, trials.fit_s(t), 1.2) for t, _ in members]
    parallel = max(1, min(os.cpu_count() or 1, len(members)))  # refits run on this machine
    specs = [trials.spec(t) for t, _ in members]
    # writing each member into the model file (forests grow to hundreds of MB) counts against the clock too
    writes = [save_seconds(ctx, trials.size_bytes(t), trials.parts(t)) for t, _ in members]
    fits = refit_within(lambda i: refit_one(ctx, specs[i]), estimates, deadline - 0.5, parallel, after=writes)
    kept = [(members[i][0], members[i][1], fits[i]) for i in sorted(fits)]
    ensemble_score = choice.selection.score
    if len(kept) < len(members):
        ok = False
        if len(kept) >= 2:
            total = sum(w for _, w, _ in kept)
            kept = [(t, w / total, f) for t, w, f in kept]
            y, sw = ctx.y[choice.covered], ctx.weights_of(choice.covered)
            pred = sum(w * choice.preds[choice.ids.index(t)] for t, w, _ in kept)
            ok = gate_against(ctx, info, spec, y, pred, choice.preds[choice.ids.index(single_id)],
                              "the trimmed ensemble", sw).passed
            ensemble_score = score(info, y, pred, sw) if ok else ensemble_score
        if not ok:
            log.info("ensemble of %d skipped: only %d member(s) could be refit in the %.0f s left, and they do not "
                     "clearly beat the best single model", len(members), len(kept), deadline - t0)
            choice.selection = None
            model = fits[0] if single_id == best_id else refit_one(ctx, trials.spec(best_id))
            return Built(model, trials.oof(best_id))
        log.info("ensemble cut from %d to %d member(s): the others' refit would not finish in the %.0f s left",
                 len(members), len(kept), deadline - t0)
    oofs = {t: trials.oof(t) for t, _, _ in kept}
    model = WeightedEnsemble([f for _, _, f in kept], [w for _, w, _ in kept], info.problem_type, len(info.classes))
    return Built(model, blend(oofs, [(t, w) for t, w, _ in kept]), [(t, w) for t, w, _ in kept], ensemble_score,
                 member_oofs=oofs)


def build_bagged(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, choice: EnsembleChoice, trials: Trials,
                 deadline: float) -> Built:
    """Bag the ensemble's members (or the best single configuration): each its k fold models.

    An ensemble's weights are selected again, and gated again, on the bagged models' own OOF
    predictions (float64, from the models that predict), so they describe the final model exactly."""
    best_id = trials.best_id
    ids = [t for t, _ in ensemble_members(choice)] if choice.selection is not None else [best_id]
    specs = [trials.spec(t, "params_json") for t in ids]
    workers = max(1, min(os.cpu_count() or 1, len(ids) * len(ctx.folds)))
    bags = bag_within(ctx, specs, [trials.fit_s(t) for t in ids], deadline - 0.5, workers)
    if choice.selection is not None and len(bags) >= 2 and 0 in bags:
        got = sorted(bags)
        cov = covered_rows(bags[got[0]][1])  # forward chaining in time never validates the first block
        preds = [bags[i][1][cov] for i in got]
        selection, result = select_ensemble(ctx, info, spec, [ids[i] for i in got], preds, ctx.y[cov],
                                            ctx.weights_of(cov))
        choice.gate = result
        if selection is not None:
            members = [(ids[got[i]], float(w)) for i, w in enumerate(selection.weights) if w > 0]
            models = [bags[got[i]][0] for i, w in enumerate(selection.weights) if w > 0]
            weights = [w for _, w in members]
            model = WeightedEnsemble(models, weights, info.problem_type, len(info.classes))
            oofs = {t: bags[ids.index(t)][1] for t, _ in members}
            if len(got) < len(ids):
                log.info("bagged ensemble from %d of %d member(s): the others' folds would not finish in time",
                         len(got), len(ids))
            return Built(model, blend(oofs, members), members, selection.score, "bagged", member_oofs=oofs)
        log.info("bagged ensemble not kept: the best single configuration is used")
    choice.selection = None
    if ids[0] == best_id and 0 in bags:
        return Built(bags[0][0], bags[0][1], kind="bagged")
    log.info("the best configuration's fold models would not finish in time: refit on all rows instead")
    return Built(refit_one(ctx, trials.spec(best_id)), trials.oof(best_id), reason="bagging did not finish in time")


def stack_onto(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, built: Built) -> None:
    """Replace ``built``'s ensemble by a stack of its members when the stack passes the gate."""
    ids = [t for t, _ in built.members]
    sw = ctx.weights_of(covered_rows(built.oof))  # the rows try_stack scores: those every member covers
    stack, result = try_stack(list(built.model.estimators), [built.member_oofs[t] for t in ids], built.oof, ctx.y,
                              info.problem_type, len(info.classes), ctx.seed,
                              lambda y, cand, base: gate_against(ctx, info, spec, y, cand, base, "the stack", sw),
                              lambda y, p: score(info, y, p, sw), ctx.weights)
    built.extra["stack"] = {"kept": stack is not None, **result.record()}
    if stack is not None:
        built.model, built.oof, built.score = stack.model, stack.oof, stack.score
        built.kind = f"{built.kind}+stack"
