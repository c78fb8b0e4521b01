"""The search stage: tune every candidate within the budget, on Ray Tune or in forked workers.

The search loop's entry points (search/tuner.py, search/local.py, search/live.py) are called from
this module only: :func:`start_executor` and :func:`run_trials`. Where the trials run (Ray or
forked workers) is decided once, in :func:`choose_executor`."""
from __future__ import annotations

import atexit
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from automl import artifacts as art
from automl.rundir.layout import RAY_LOG_FILE
from automl.rundir.leaderboard import write_leaderboard
from automl.candidates.generate import Candidate
from automl.candidates.space import params_of
from automl.data.compact import compact_features
from automl.errors import SearchError
from automl.metrics import METRICS
from automl.problem import ProblemInfo
from automl.search.events import outcome as counted_as, outcome_text
from automl.search.sampling import cap_fold_rows
from automl.search.trial import TrialContext
from automl.stages.env import EXIT_S, RAY_EXIT_S, RunEnv
from automl.stages.plan import Plan
from automl.stages.prepare import Prepared

log = logging.getLogger(__name__)

# What writing report.html, the summary and the manifest may take. The report took 1.3-4.7 s
# (median 2.0) in the suite's 60 s runs (2026-12-01, 75 runs): REPORT_RESERVE_S covers its slow
# side up to 30 s, where the budget's 10% tolerance (3 s) cannot; from REPORT_MEDIAN_FROM_S on,
# where the tolerance is 6 s and more, the reserve is the median's REPORT_RESERVE_LONG_S and the
# search gets the difference. In between it moves linearly.
REPORT_RESERVE_S = 4.0
REPORT_RESERVE_LONG_S = 2.5
REPORT_MEDIAN_FROM_S = 60.0
SEARCH_TEARDOWN_S = 0.5  # trials stop themselves at the search deadline; Tune then winds down
# search.executor=auto starts Ray, measures its start-up and searches in forked workers instead
# when the start-up took more than RAY_START_SHARE of budget.time_limit_s, or left the search less
# than MIN_RAY_SEARCH_S (Tune's own set-up, 2-3 s here, would take much of it). See docs/search.md.
RAY_START_SHARE = 0.25
MIN_RAY_SEARCH_S = 10.0
# Ray's start-up, on the slow side of usual: the 90th percentile of 75 suite runs at 60 s on 2
# cores (median 4.7 s, 3.3-7.2 s). auto does not start Ray when this much, and its shutdown at
# exit (RAY_EXIT_S), would leave the search less than MIN_RAY_SEARCH_S. On the slow side because
# the costs are not even: a Ray left after its start has cost its start-up and shutdown (6-9 s), a
# Ray not started only Tune's extras.
RAY_START_EXPECTED_S = 6.1


@dataclass
class SearchOutcome:
    """The search's trials: what the select stage chooses from."""

    ctx: TrialContext  # the data, folds and candidates every trial used
    rows: List[Dict[str, Any]]  # one per trial, as the search returned them
    leaderboard: pd.DataFrame  # completed trials first, best first; the others after
    counts: Dict[str, int]  # trials per status
    # No trial finished: the row of the model the select stage fits instead (selection/fallback.py).
    fallback: Optional[Dict[str, Any]] = None
    # The time plan during the search (selection/timeplan.py): predicted time after it, how early it ended.
    clock: Optional[Dict[str, Any]] = None

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
        for k in ("fit_s", "predict_ms_per_row", "latency_ms_single_row", "model_size_bytes", "model_parts"):
            rec[k] = row.get(k, np.nan)
        rec["error"] = row.get("error", "")
        rec["node_ip"], rec["node_id"] = row.get("node_ip", ""), row.get("node_id", "")  # where it ran
        # exact, typed params and tuned threshold: Run.trial_model refits any trial from them
        for k in ("params_json", "refit_params_json", "threshold"):
            rec[k] = row.get(k, "" if k != "threshold" else np.nan)
        # a trial stopped after some folds: its score on the rows they validated (selection/fallback.py)
        rec["partial_objective"], rec["partial_folds"] = row.get("partial_objective", np.nan), row.get("partial_folds", 0)
        if "memory_sample_rows" in row:  # the memory plan's sample: training rows per fold (search/memory.py)
            rec["memory_sample_rows"] = row["memory_sample_rows"]
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


def fork_is_safe(warn: bool = False) -> bool:
    """Whether forked workers can run the trials: not once this process has used OpenMP (an
    earlier fit or prediction here), after which XGBoost hangs in a forked child; Ray then."""
    from automl.search.local import openmp_survives_fork

    if openmp_survives_fork():
        return True
    (log.warning if warn else log.info)(
        "this process has already run OpenMP code (an earlier fit or prediction in it), after which "
        "XGBoost hangs in forked workers: searching on Ray instead (a new process can search without Ray)")
    return False


def search_reserve_s(budget_s: float) -> float:
    """Kept back from the search: the final refit (ensemble members in parallel), the report and
    writing. 10% of the budget plus the report's share (all of REPORT_RESERVE_S from 30 s on;
    less for smaller budgets, where the report skips its slow parts) plus the search's teardown.
    The search ends earlier when its trials predict more (selection/timeplan.py)."""
    return 0.1 * budget_s + report_reserve_s(budget_s)


def report_reserve_s(budget_s: float) -> float:
    """The fixed reserve's share for the report and the search's teardown (not for the refit)."""
    return report_share_s(budget_s) + SEARCH_TEARDOWN_S


def report_share_s(budget_s: float) -> float:
    """What the report (and the summary and manifest) is planned to take at the end of the run:
    REPORT_RESERVE_S at 30 s (less below, where the report skips its slow parts), down to
    REPORT_RESERVE_LONG_S from REPORT_MEDIAN_FROM_S on. The steps before it (the attribution
    baseline) stop this much before the deadline."""
    if budget_s <= 30.0:
        return REPORT_RESERVE_S * budget_s / 30.0
    towards_long = min(1.0, (budget_s - 30.0) / (REPORT_MEDIAN_FROM_S - 30.0))
    return REPORT_RESERVE_S + towards_long * (REPORT_RESERVE_LONG_S - REPORT_RESERVE_S)


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
                       multi_fidelity=len(prepared.folds) > 1 and n_rows >= cfg.validation.multi_fidelity_min_rows,
                       weights=prepared.weights, groups=prepared.structure.groups,
                       time_ordered=prepared.structure.kind == "time",
                       keep_fold_models=len(prepared.folds) == 1,  # holdout: the refit's fallback (timeplan)
                       candidate_folds=memory_folds(plan, prepared, cfg.seed))
    if ctx.multi_fidelity:
        log.info("multi-fidelity: %d rows >= %d, ASHA stops poor trials after their first folds",
                 n_rows, cfg.validation.multi_fidelity_min_rows)
    return ctx


def memory_folds(plan: Plan, prepared: Prepared, seed: int) -> Dict[str, list]:
    """The folds of the candidates the memory plan down-sampled (search/memory.py), stratified."""
    return {c.name: cap_fold_rows(prepared.folds, prepared.y, c.memory_train_rows, prepared.info.problem_type, seed,
                                  f"{c.name}: the memory plan") for c in plan.candidates if c.memory_train_rows}


def auto_may_fork(cfg: DictConfig) -> bool:
    """Whether search.executor=auto may search in forked workers instead of Ray: on this machine
    only (no ray.address), where forking is the norm and safe. Asked once per fit (the safety
    check forks a canary process)."""
    from automl.search.local import can_fork

    return cfg.search.executor == "auto" and not cfg.ray.address and can_fork(auto=True) and fork_is_safe()


def ray_fallback_reason(budget_s: float, start_s: float, search_left_s: float) -> str:
    """Why search.executor=auto, where it may fork (``auto_may_fork``), leaves the Ray it started
    for forked workers ("" to keep Ray): when Ray's start-up took more than RAY_START_SHARE of the
    budget or left the search less than MIN_RAY_SEARCH_S."""
    if start_s > RAY_START_SHARE * budget_s:
        return (f"Ray took {start_s:.1f} s to start, more than {RAY_START_SHARE:.0%} of the {budget_s:.0f} s "
                "budget")
    if search_left_s < MIN_RAY_SEARCH_S:
        return (f"Ray's start-up ({start_s:.1f} s) left the search {max(0.0, search_left_s):.1f} s, "
                f"less than {MIN_RAY_SEARCH_S:.0f} s")
    return ""


def ray_not_worth_starting(search_left_s: float) -> str:
    """Why search.executor=auto, where it may fork (``auto_may_fork``), searches in forked workers
    without starting Ray ("" to start it): ``ray_fallback_reason``'s rule applied before paying
    for Ray, to its expected start-up (RAY_START_EXPECTED_S) and its shutdown at exit.
    ``search_left_s``: the search's time if it began now without Ray."""
    left = search_left_s - RAY_START_EXPECTED_S - (RAY_EXIT_S - EXIT_S)
    if left < MIN_RAY_SEARCH_S:
        return (f"Ray's expected start-up and shutdown ({RAY_START_EXPECTED_S:.1f} + {RAY_EXIT_S - EXIT_S:.1f} s) "
                f"would leave the search {max(0.0, left):.1f} s, less than {MIN_RAY_SEARCH_S:.0f} s")
    return ""


def choose_executor(env: RunEnv) -> Tuple[bool, bool]:
    """Where the trials run, decided once per fit: (start Ray, may leave it for forked workers
    after a slow start). Forked workers when asked (search.executor=local), and for auto on this
    machine (``auto_may_fork``) below search.local_below_s, where Ray's start-up (3-9 s here)
    would eat most of the budget, or when Ray is not worth starting (``ray_not_worth_starting``).
    Ray where forking would hang (``fork_is_safe``)."""
    cfg = env.cfg
    if cfg.search.executor == "local":  # config/validate.py checked that this platform forks
        return (False, False) if fork_is_safe(warn=True) else (True, False)
    if not auto_may_fork(cfg):  # search.executor=ray, a cluster, or forking unsafe here
        return True, False
    budget = float(cfg.budget.time_limit_s)
    if budget < float(cfg.search.local_below_s):
        return False, False
    why = ray_not_worth_starting(env.deadline - time.time() - search_reserve_s(budget))
    if why:
        log.info("%s: searching without Ray (forked workers)", why)
        return False, False
    return True, True


def start_executor(env: RunEnv, messages: str, may_fork: bool) -> bool:
    """Start Ray, its own messages to the local file ``messages``; True when the search goes to
    forked workers after all (``may_fork`` and a slow start). Ray's start-up, from the call to a
    usable cluster, is measured: see ``ray_fallback_reason``."""
    cfg = env.cfg
    from automl.raystart import init_ray

    phase = time.time()
    init_ray(cfg.ray.address, cfg.ray.num_cpus, keep_logs=bool(cfg.verbose), messages=messages)
    env.stops_ray_at_exit()  # also when the search leaves it below: it runs until the process ends
    took = time.time() - phase
    log.info("ray ready in %.1f s", took)
    budget = float(cfg.budget.time_limit_s)
    why = ray_fallback_reason(budget, took, env.deadline - time.time() - search_reserve_s(budget)) if may_fork else ""
    if why:
        log.warning("%s: searching without Ray (forked workers) instead", why)
    return bool(why)


def ray_message_file() -> str:
    """A local file for Ray's own messages during this fit, removed when the process ends (Ray
    may write there until then); the search stage copies it into the run folder."""
    fd, path = tempfile.mkstemp(prefix="automl-ray-", suffix=".log")
    os.close(fd)
    atexit.register(lambda: os.path.exists(path) and os.remove(path))
    return path


def run_trials(env: RunEnv, ctx: TrialContext, plan: Plan, info: ProblemInfo, local: bool,
               search_budget: float) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """Run the search loop with its live progress; one row per trial, and the time plan's record."""
    from automl.search.live import make_progress
    from automl.search.loop import SearchLoop
    from automl.selection.timeplan import post_search_planner

    cfg = env.cfg
    max_trials = env.state.trial_budget(cfg.budget.max_trials)  # a continuation runs max_trials more
    progress = make_progress(max_trials, search_budget, info.metric, info.greater_is_better)
    common = dict(greater_is_better=info.greater_is_better, max_trials=max_trials,
                  time_budget_s=search_budget, searcher=cfg.search.searcher,
                  n_startup_trials=cfg.search.n_startup_trials, warm_start=cfg.search.warm_start,
                  callbacks=[progress], state=env.state, run_deadline=env.deadline,
                  post_search=post_search_planner(ctx, info.greater_is_better, bool(cfg.search.ensemble),
                                                  report_reserve_s(float(cfg.budget.time_limit_s))))
    if local:
        from automl.search.local import ForkExecutor

        executor = ForkExecutor(max(1, int((cfg.ray.num_cpus or os.cpu_count() or 1)
                                           // max(1e-9, cfg.ray.cpus_per_trial))))
    else:
        from automl.search.tuner import TuneExecutor

        executor = TuneExecutor(cfg.ray.cpus_per_trial)
    loop = SearchLoop(ctx, plan.candidates, **common)
    try:
        return loop.run(executor), loop.clock
    finally:
        progress.close()  # the terminal back, also when the search is interrupted


def search_rows(env: RunEnv, ctx: TrialContext, plan: Plan, info: ProblemInfo, local: bool,
                ray_started: bool) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """The trials, in the search's share of the budget (what is left after the reserve, or after
    the time the trials predict for the refit, ensemble and report when that is more), and the
    time plan's record."""
    budget_total = float(env.cfg.budget.time_limit_s)
    search_budget = env.deadline - time.time() - search_reserve_s(budget_total)
    if search_budget < (0.5 if local else 1.0) and not env.state.previous_rows:
        log.warning("budget.time_limit_s=%.0f is used up before the search starts (data loading%s took %.0f s)",
                    budget_total, " and Ray start" if ray_started else "", time.time() - env.started)
        return [], {}
    return run_trials(env, ctx, plan, info, local, search_budget)


def no_trial_finished(lb: pd.DataFrame) -> str:
    """Why the search has no completed trial, for the fallback (selection/fallback.py). Raises
    when every trial failed with an error: a fallback would hide the cause."""
    if len(lb) and (lb["status"].map(counted_as) == "failed").all():
        errors = lb["error"].replace("", np.nan).dropna()
        cause = errors.value_counts().index[0] if len(errors) else "no error message"
        raise SearchError(f"all {len(lb)} trial(s) failed; commonest cause: {cause}")
    if lb.empty:
        return "no trial could start within the search budget"
    return f"no trial finished within the search budget ({outcome_text(lb['status'])})"


def keep_ray_messages(env: RunEnv, messages: str) -> None:
    """Ray's own messages so far into the run folder (logs/ray.log): they stay off the terminal."""
    try:
        with open(messages, "rb") as fh:
            art.write_bytes(art.join(env.out, RAY_LOG_FILE), fh.read(), env.so)
    except OSError as exc:
        log.warning("could not keep Ray's messages in %s: %s", RAY_LOG_FILE, exc)


def search(env: RunEnv, prepared: Prepared, plan: Plan) -> SearchOutcome:
    """Tune the plan's candidates until the search's share of the budget is spent; writes
    leaderboard.csv (and logs/ray.log when Ray ran). When no trial finished, the outcome names the
    fallback model for the select stage."""
    from automl.selection.fallback import fallback_row

    cfg, info = env.cfg, prepared.info
    ctx = trial_context(env, prepared, plan)
    uses_ray, may_fork = choose_executor(env)
    messages = ray_message_file() if uses_ray else ""
    try:
        local = start_executor(env, messages, may_fork) if uses_ray else True
        rows, clock = search_rows(env, ctx, plan, info, local, uses_ray)
    finally:
        if uses_ray:
            keep_ray_messages(env, messages)
    lb = leaderboard_frame(rows, ctx.candidates, info)
    counts, fallback = lb["status"].value_counts().to_dict(), None
    write_leaderboard(env.out, lb, env.so)
    if not (lb["status"] == "completed").any():
        fallback = fallback_row(plan.candidates, info.problem_type, no_trial_finished(lb), lb, info.greater_is_better)
        rows = rows + [fallback]
        lb = leaderboard_frame(rows, ctx.candidates, info)
        lb = pd.concat([lb.tail(1), lb.head(len(lb) - 1)], ignore_index=True)  # the chosen model first
    outcome = SearchOutcome(ctx, rows, lb, counts, fallback, clock or None)
    if fallback is None:
        best = outcome.best
        log.info("best trial %s (%s): %s=%.5f, of %d trial(s): %s", best.trial_id, best.candidate, info.metric,
                 best.objective, len(lb), outcome_text(lb["status"]))
    return outcome
