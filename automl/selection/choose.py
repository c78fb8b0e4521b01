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
from automl.errors import ConfigError
from automl.metrics import get_metric, objective_score
from automl.problem import ProblemInfo
from automl.search.trial import TrialContext
from automl.selection import SelectSpec
from automl.selection.gates import GateResult, gate
from automl.selection.oof import covered_rows, load_oof

log = logging.getLogger(__name__)
MAX_MEMBERS_CONSIDERED = 30
# Of each candidate, its best few trials are always in the pool the ensemble is chosen from. A
# long search spends most of its trials refining the leading candidate (credit at 300 s: 185 of
# 250 trials linear), so the best 30 by score were 30 near-copies of one model, and the ensemble
# lost the other kinds of model it had with fewer trials. On the same 300 s search (seed 1,
# benchmarks/select_ab.py --prefix-from): credit 0.8475 from all trials with the best-30 pool,
# 0.8528 from the first 23, 0.8544 with this pool; churn 0.9280, 0.9321, 0.9337 (docs/benchmarks.md).
PER_CANDIDATE_IN_POOL = 3


def score(info: ProblemInfo, y: np.ndarray, pred: np.ndarray, w: Optional[np.ndarray] = None) -> float:
    """The run's objective on ``pred`` (weighted by the rows' sample weights ``w`` when given)."""
    return objective_score(info.problem_type, info.metric, info.pos_index, y, pred, w)


def gate_against(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, y, cand, base, what: str,
                 w: Optional[np.ndarray] = None) -> GateResult:
    """The ``select.gate`` check of ``cand`` (OOF predictions) against ``base``; ``w``: the rows'
    sample weights (``ctx.weights_of(rows)``)."""
    return gate(y, cand, base, lambda yy, p, ww=None: score(info, yy, p, ww), info.greater_is_better, info.metric,
                spec.gate, spec.gate_confidence, spec.gate_resamples, ctx.seed, what, sample_weight=w)


@dataclass
class EnsembleChoice:
    """The ensemble the OOF predictions chose (or none), handed to the building of the final model."""

    selection: Optional[CaruanaSelection] = None  # a Caruana ensemble that passed the gate
    ids: List[str] = field(default_factory=list)  # the trials Caruana chose from
    preds: List[np.ndarray] = field(default_factory=list)  # their OOF predictions on ``covered`` rows
    covered: Optional[np.ndarray] = None
    gate: Optional[GateResult] = None


def select_ensemble(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, ids: List[str],
                    preds: List[np.ndarray], y: np.ndarray,
                    w: Optional[np.ndarray] = None) -> Tuple[Optional[CaruanaSelection], Optional[GateResult]]:
    """Caruana over ``preds``, then the gate against its best single model (``w``: the rows' sample weights)."""
    metric = get_metric(info.metric, info.problem_type)
    selection = caruana_select(preds, y, metric, info.pos_index, score_fn=lambda yy, p: score(info, yy, p, w))
    if selection is None:
        log.debug("ensemble not kept: it does not beat the best single model on validation")
        return None, GateResult(False, 0.0, float("nan"), "the ensemble does not beat the best single model")
    mix = sum(w * preds[i] for i, w in enumerate(selection.weights) if w > 0)
    result = gate_against(ctx, info, spec, y, mix, preds[selection.indices[0]], "the ensemble", w)
    if not result.passed:
        log.debug("ensemble not kept: %s", result.reason)  # summary.json's best.gate keeps why
        return None, result
    return selection, result


def ensemble_pool(done: pd.DataFrame, size: int = MAX_MEMBERS_CONSIDERED,
                  per_candidate: int = PER_CANDIDATE_IN_POOL) -> List[str]:
    """The trials (ids, best first) the ensemble is chosen from, out of ``done`` (completed, ranked
    best first): the best ``per_candidate`` of every candidate, then the best of the rest up to
    ``size`` in all (more only when the candidates' shares alone exceed it). With ``size`` trials
    or fewer, all of them."""
    ids = done["trial_id"].astype(str).tolist()
    if len(ids) <= size:
        return ids
    rank = pd.Series(range(len(ids)))
    share = rank.groupby(done["candidate"].astype(str).to_numpy()).cumcount() < per_candidate
    keep = set(rank[share.to_numpy()])
    for i in range(len(ids)):
        if len(keep) >= size:
            break
        keep.add(i)
    return [ids[i] for i in sorted(keep)]


def choose_ensemble(ctx: TrialContext, done: pd.DataFrame, info: ProblemInfo, out: str, so: Dict[str, Any],
                    spec: SelectSpec, ensemble: bool) -> EnsembleChoice:
    """The gated Caruana ensemble over the OOF predictions of the completed trials (``done``,
    ranked) in ``ensemble_pool``."""
    choice = EnsembleChoice()
    if not ensemble or len(done) < 2:
        return choice
    oofs = {}
    for tid in ensemble_pool(done):
        o = load_oof(out, tid, so)
        if o is not None:
            oofs[tid] = o
    if len(oofs) < 2:
        return choice
    choice.covered = covered_rows(next(iter(oofs.values())))
    choice.ids = list(oofs)
    choice.preds = [oofs[t][choice.covered] for t in choice.ids]
    choice.selection, choice.gate = select_ensemble(ctx, info, spec, choice.ids, choice.preds,
                                                    ctx.y[choice.covered], ctx.weights_of(choice.covered))
    return choice


def ensemble_members(choice: EnsembleChoice) -> List[Tuple[str, float]]:
    """The ensemble's (trial id, weight): the best single model first, then by weight."""
    sel = choice.selection
    members = sorted(((choice.ids[i], w) for i, w in enumerate(sel.weights) if w > 0), key=lambda m: -m[1])
    single_id = choice.ids[sel.indices[0]]
    members.sort(key=lambda m: m[0] != single_id)
    return members


# --- Selection under constraints (select.max_latency_ms, select.max_size_mb) -----------------------

LATENCY_COL, SIZE_COL = "latency_ms_single_row", "model_size_bytes"
MB = 1e6  # select.max_size_mb counts 10^6 bytes


@dataclass
class Limits:
    """``select.max_latency_ms`` (one row) and ``select.max_size_mb``, checked on the figures every
    trial measured on its last fold model: the median of three single-row predictions and the
    pickled size."""

    max_latency_ms: Optional[float] = None
    max_size_mb: Optional[float] = None

    @property
    def active(self) -> bool:
        return self.max_latency_ms is not None or self.max_size_mb is not None

    def meets(self, latency_ms: float, size_bytes: float) -> bool:
        """Both figures within the bounds (a missing figure never qualifies for a set bound)."""
        ok = True
        if self.max_latency_ms is not None:
            ok &= bool(np.isfinite(latency_ms) and latency_ms <= self.max_latency_ms)
        if self.max_size_mb is not None:
            ok &= bool(np.isfinite(size_bytes) and size_bytes <= self.max_size_mb * MB)
        return ok

    def text(self) -> str:
        parts = [f"select.max_latency_ms={self.max_latency_ms:g}" if self.max_latency_ms is not None else "",
                 f"select.max_size_mb={self.max_size_mb:g}" if self.max_size_mb is not None else ""]
        return " and ".join(p for p in parts if p)


def _figures(rows: pd.DataFrame) -> Tuple[np.ndarray, np.ndarray]:
    lat = pd.to_numeric(rows.get(LATENCY_COL, pd.Series(np.nan, index=rows.index)), errors="coerce")
    size = pd.to_numeric(rows.get(SIZE_COL, pd.Series(np.nan, index=rows.index)), errors="coerce")
    return lat.to_numpy(dtype=float), size.to_numpy(dtype=float)


def _trial_text(row: pd.Series, col: str) -> str:
    value = float(row[col])
    figure = f"{value:.3g} ms" if col == LATENCY_COL else f"{value / MB:.3g} MB"
    return f"trial {row['trial_id']} ({row['candidate']}, {figure})"


def none_qualify(done: pd.DataFrame, limits: Limits) -> ConfigError:
    """The one-line error when no completed trial meets the bounds: the fastest and the smallest."""
    lat, size = _figures(done)
    parts = []
    if np.isfinite(lat).any():
        parts.append("the fastest is " + _trial_text(done.iloc[int(np.nanargmin(lat))], LATENCY_COL))
    if np.isfinite(size).any():
        parts.append("the smallest is " + _trial_text(done.iloc[int(np.nanargmin(size))], SIZE_COL))
    found = "; ".join(parts) or "no trial recorded its latency and size"
    return ConfigError(f"no trial of the {len(done)} completed meets {limits.text()}: {found}. Fix: raise the "
                       "bound, or add faster or smaller candidates (e.g. candidates.include=[linear])")


def split_by_limits(lb: pd.DataFrame, limits: Limits) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """(the leaderboard without the completed trials over the bounds, those trials). The select
    stage chooses from the first; an error when no completed trial is within the bounds."""
    if not limits.active:
        return lb, lb.iloc[:0]
    completed = lb["status"] == "completed"
    lat, size = _figures(lb)
    within = np.array([limits.meets(a, b) for a, b in zip(lat, size)], dtype=bool)
    if not (within & completed.to_numpy()).any():
        raise none_qualify(lb[completed], limits)
    over = completed.to_numpy() & ~within
    log.info("%d of %d completed trial(s) meet %s", int((within & completed.to_numpy()).sum()),
             int(completed.sum()), limits.text())
    return lb[~over].reset_index(drop=True), lb[over].reset_index(drop=True)


def rejoin(lb: pd.DataFrame, held: pd.DataFrame) -> pd.DataFrame:
    """The final leaderboard: the trials within the bounds (and an ensemble) as ranked, then those
    over them, then the unfinished ones; ``within_limits`` says which is which."""
    lb = lb.assign(within_limits=lb["status"] == "completed")
    held = held.assign(within_limits=False)
    done = lb["status"] == "completed"
    out = pd.concat([lb[done], held, lb[~done]], ignore_index=True)
    if "trial_number" in out and "algorithm" in out:  # an ensemble's row is numbered after every trial
        ens = out["algorithm"].astype(str) == "ensemble"
        out.loc[ens, "trial_number"] = len(out) - 1
    return out


def ensemble_figures(members: List[Tuple[str, float]], figures: Dict[str, Tuple[float, float]]) -> Tuple[float, float]:
    """An ensemble's latency and size, estimated as the sums of its members' (it predicts with
    each member in turn; shared processing makes it a little faster, never slower)."""
    lat = sum(figures[t][0] for t, _ in members)
    size = sum(figures[t][1] for t, _ in members)
    return lat, size


def trim_to_limits(ctx: TrialContext, info: ProblemInfo, spec: SelectSpec, choice: EnsembleChoice,
                   done: pd.DataFrame, limits: Limits) -> Optional[Dict[str, Any]]:
    """Drop the lowest-weight members of the chosen ensemble until the sum of their figures meets
    the bounds; the trimmed ensemble must pass the gate again, else the best single model is used.
    Returns what was done (for summary.json), None when nothing was needed."""
    if not limits.active or choice.selection is None:
        return None
    lat, size = _figures(done)
    figures = {str(t): (a, b) for t, a, b in zip(done["trial_id"], lat, size)}
    members = ensemble_members(choice)
    before = len(members)
    while len(members) > 1 and not limits.meets(*ensemble_figures(members, figures)):
        members = members[:1] + sorted(members[1:], key=lambda m: -m[1])[:-1]
    if len(members) == before:
        return None
    record: Dict[str, Any] = {"members_before": before, "members_after": len(members)}
    if len(members) > 1:
        total = sum(w for _, w in members)
        weights = np.zeros(len(choice.ids))
        for t, w in members:
            weights[choice.ids.index(t)] = w / total
        y, sw = ctx.y[choice.covered], ctx.weights_of(choice.covered)
        mix = sum(w * choice.preds[i] for i, w in enumerate(weights) if w > 0)
        result = gate_against(ctx, info, spec, y, mix, choice.preds[choice.selection.indices[0]],
                              "the trimmed ensemble", sw)
        if result.passed:
            choice.selection.weights, choice.selection.score = weights, score(info, y, mix, sw)
            choice.gate = result
            log.info("ensemble trimmed from %d to %d member(s) to meet %s", before, len(members), limits.text())
            return record
    log.info("ensemble dropped: trimmed to meet %s it no longer beats the best single model", limits.text())
    choice.selection = None
    record["members_after"] = 0
    return record


def constraint_record(limits: Limits, model: Any, ctx: TrialContext, n_within: int, n_over: int,
                      trimmed: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """summary.json's ``best.constraints``: the bounds, how many trials met them, the ensemble's
    trimming, and the final model's own figures (measured again: a refit on all rows can be a
    little slower or larger than the fold model a trial measured; a miss is logged)."""
    import pickle

    from automl.search.trial import latency_ms

    rec: Dict[str, Any] = {"max_latency_ms": limits.max_latency_ms, "max_size_mb": limits.max_size_mb,
                           "n_trials_within": n_within, "n_trials_over": n_over}
    if trimmed:
        rec["ensemble_trimmed"] = trimmed
    final_lat = latency_ms(model, ctx.X, ctx.problem_type)
    rec["final_latency_ms"] = round(final_lat, 4)
    final_size = len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)) if limits.max_size_mb is not None \
        else float("nan")
    if limits.max_size_mb is not None:
        rec["final_size_mb"] = round(final_size / MB, 4)
    rec["final_model_meets"] = limits.meets(final_lat, final_size if limits.max_size_mb is not None else 0.0)
    if not rec["final_model_meets"]:
        log.warning("the final model, refit on all rows, measures %.3g ms%s: over %s, which its trial's fold "
                    "model met", final_lat, f" and {final_size / MB:.3g} MB" if np.isfinite(final_size) else "",
                    limits.text())
    return rec
