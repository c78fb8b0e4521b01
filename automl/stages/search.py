"""The search stage: tune every candidate within the budget, on Ray Tune or in forked workers.

The search loop's entry points (search/tuner.py, search/local.py, search/live.py) are called from
this module only: :func:`start_executor` and :func:`run_trials`."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from automl import artifacts as art
from automl.candidates.generate import Candidate
from automl.candidates.space import params_of
from automl.data.compact import compact_features
from automl.errors import ConfigError, SearchError
from automl.metrics import METRICS
from automl.problem import ProblemInfo
from automl.search.trial import TrialContext
from automl.stages.env import RunEnv
from automl.stages.plan import Plan
from automl.stages.prepare import Prepared

log = logging.getLogger(__name__)

REPORT_RESERVE_S = 4.0  # what writing report.html, the summary and the manifest may take
SEARCH_TEARDOWN_S = 0.5  # trials stop themselves at the search deadline; Tune then winds down


@dataclass
class SearchOutcome:
    """The search's trials: what the select stage chooses from."""

    ctx: TrialContext  # the data, folds and candidates every trial used
    rows: List[Dict[str, Any]]  # one per trial, as the search returned them
    leaderboard: pd.DataFrame  # completed trials first, best first; the others after
    counts: Dict[str, int]  # trials per status

    @property
    def best(self) -> pd.Series:
        """The best completed trial (by the search's score)."""
        return self.leaderboard[self.leaderboard["status"] == "completed"].iloc[0]


def leaderboard_frame(rows: List[Dict[str, Any]], candidates: Dict[str, Candidate], info: ProblemInfo) -> pd.DataFrame:
    """leaderboard.csv's table from the search's rows: completed trials by objective, then the rest."""
    records = []
    for number, row in enumerate(rows):
        rec = {"trial_id": row["trial_id"], "trial_number": number, "candidate": row.get("candidate"),
               "algorithm": candidates[row["candidate"]].algorithm if row.get("candidate") in candidates else None,
               "status": row.get("status"), "objective": row.get("objective") if row.get("status") == "completed" else np.nan}
        for m in METRICS[info.problem_type]:
            rec[m] = row.get(f"metric_{m}", np.nan)
        for k in ("fit_s", "predict_ms_per_row", "latency_ms_single_row", "model_size_bytes"):
            rec[k] = row.get(k, np.nan)
        rec["error"] = row.get("error", "")
        rec["node_ip"], rec["node_id"] = row.get("node_ip", ""), row.get("node_id", "")  # where it ran
        # exact, typed params and tuned threshold: Run.trial_model refits any trial from them
        for k in ("params_json", "refit_params_json", "threshold"):
            rec[k] = row.get(k, "" if k != "threshold" else np.nan)
        if row.get("candidate"):
            rec.update(params_of(row.get("config") or {}, row["candidate"]))
        records.append(rec)
    lb = pd.DataFrame.from_records(records)
    if lb.empty:
        return pd.DataFrame(columns=["trial_id", "trial_number", "candidate", "algorithm", "status", "objective",
                                     *METRICS[info.problem_type], "error"])
    ok = lb["status"] == "completed"
    lb = pd.concat([lb[ok].sort_values("objective", ascending=not info.greater_is_better), lb[~ok]])
    return lb.reset_index(drop=True)


def use_local_search(cfg: DictConfig) -> bool:
    """Search in this process (no Ray) when asked, or for a small budget on this machine:
    Ray's start-up (3-9 s here) would eat most of it."""
    from automl.search.local import can_fork

    executor = cfg.search.executor
    if executor == "auto":
        return (not cfg.ray.address and float(cfg.budget.time_limit_s) < float(cfg.search.local_below_s)
                and can_fork(auto=True))
    if executor == "local" and not can_fork():
        raise ConfigError("search.executor=local needs the fork start method, which this platform lacks; "
                          "use search.executor=ray")
    return executor == "local"


def search_reserve_s(budget_s: float) -> float:
    """Kept back from the search: the final refit (ensemble members in parallel), the report and
    writing. 10% of the budget plus the report's share (all of REPORT_RESERVE_S from 30 s on;
    less for smaller budgets, where the report skips its slow parts) plus the search's teardown."""
    return 0.1 * budget_s + REPORT_RESERVE_S * min(1.0, budget_s / 30.0) + SEARCH_TEARDOWN_S


def trial_context(env: RunEnv, prepared: Prepared, plan: Plan) -> TrialContext:
    """What every trial reads: the features, the target, the folds and the candidates."""
    cfg, n_rows = env.cfg, len(prepared.df)
    trial_limit = cfg.budget.trial_time_limit_s or max(10.0, float(cfg.budget.time_limit_s) / 3)
    feature_types = prepared.feature_types
    info = prepared.info
    ctx = TrialContext(X=compact_features(prepared.X[prepared.features], feature_types), y=prepared.y,
                       folds=prepared.folds, column_types=feature_types, candidates=plan.by_name,
                       problem_type=info.problem_type, metric=info.metric, n_classes=len(info.classes),
                       pos_index=info.pos_index, seed=cfg.seed, trial_time_limit_s=trial_limit, output_dir=env.out,
                       storage_options=env.so,
                       multi_fidelity=len(prepared.folds) > 1 and n_rows >= cfg.validation.multi_fidelity_min_rows)
    if ctx.multi_fidelity:
        log.info("multi-fidelity: %d rows >= %d, ASHA stops poor trials after their first folds",
                 n_rows, cfg.validation.multi_fidelity_min_rows)
    return ctx


def start_executor(cfg: DictConfig) -> bool:
    """Choose the executor and start Ray when it is used; True for the local (forked) search."""
    local = use_local_search(cfg)
    if not local:
        from automl.raystart import init_ray

        phase = time.time()
        init_ray(cfg.ray.address, cfg.ray.num_cpus, keep_logs=bool(cfg.verbose))
        log.info("ray ready in %.1f s", time.time() - phase)
    return local


def run_trials(env: RunEnv, ctx: TrialContext, plan: Plan, info: ProblemInfo, local: bool,
               search_budget: float) -> List[Dict[str, Any]]:
    """Run the search loop with its live progress; one row per trial."""
    from automl.search.live import make_progress
    from automl.search.loop import SearchLoop

    cfg = env.cfg
    progress = make_progress(cfg.budget.max_trials, search_budget, info.metric, info.greater_is_better)
    common = dict(greater_is_better=info.greater_is_better, max_trials=cfg.budget.max_trials,
                  time_budget_s=search_budget, searcher=cfg.search.searcher,
                  n_startup_trials=cfg.search.n_startup_trials, warm_start=cfg.search.warm_start,
                  callbacks=[progress], state=env.state)
    if local:
        from automl.search.local import ForkExecutor

        executor = ForkExecutor(max(1, int((cfg.ray.num_cpus or os.cpu_count() or 1)
                                           // max(1e-9, cfg.ray.cpus_per_trial))))
    else:
        from automl.search.tuner import TuneExecutor

        executor = TuneExecutor(cfg.ray.cpus_per_trial)
    return SearchLoop(ctx, plan.candidates, **common).run(executor)


def search(env: RunEnv, prepared: Prepared, plan: Plan) -> SearchOutcome:
    """Tune the plan's candidates until the search's share of the budget is spent; writes leaderboard.csv."""
    cfg, info = env.cfg, prepared.info
    ctx = trial_context(env, prepared, plan)
    local = start_executor(cfg)
    budget_total = float(cfg.budget.time_limit_s)
    search_budget = env.deadline - time.time() - search_reserve_s(budget_total)
    if search_budget < (0.5 if local else 1.0) and not env.state.previous_rows:
        raise SearchError(
            f"budget.time_limit_s={budget_total:.0f} is used up before the search starts "
            f"(data loading{'' if local else ' and Ray start'} took {time.time() - env.started:.0f} s); "
            "raise budget.time_limit_s"
        )
    rows = run_trials(env, ctx, plan, info, local, search_budget)
    lb = leaderboard_frame(rows, ctx.candidates, info)
    art.write_text(art.join(env.out, art.LEADERBOARD_FILE), lb.to_csv(index=False), env.so)
    done = lb[lb["status"] == "completed"]
    if done.empty:
        errors = lb["error"].replace("", np.nan).dropna()
        if errors.empty:
            raise SearchError(f"no trial finished within the budget ({len(lb)} started); "
                              "raise budget.time_limit_s")
        raise SearchError(f"all {len(lb)} trial(s) failed; commonest cause: {errors.value_counts().index[0]}")
    outcome = SearchOutcome(ctx, rows, lb, lb["status"].value_counts().to_dict())
    best = outcome.best
    log.info("best trial %s (%s): %s=%.5f", best.trial_id, best.candidate, info.metric, best.objective)
    return outcome

