"""The search on this machine without Ray: for budgets too small to pay Ray's start-up.

Starting Ray costs 3-9 s on a small machine (and importing Ray Tune 1.4 s more), which is most
of a 10 s budget. Here the same searcher (Optuna TPE, define-by-run, the portfolio first) and
the same trial code (``trial.evaluate``) run in worker processes forked from this one, ``workers``
at a time: a fork starts in milliseconds and inherits the data, and a trial still running at
the search deadline (or past its own limit) is killed, like the Ray search's watchdog does.
Rows are persisted as each trial finishes, exactly as in the Ray search. ``search.executor=auto``
uses it on Linux only (``=local`` wherever ``fork`` exists); ``=ray`` keeps the Ray search for
any budget.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any, Dict, List, Optional

from automl.candidates.generate import Candidate
from automl.search.resume import RunState, feed_study, persist_row, result_row
from automl.search.searcher import DefineByRun, make_sampler, warm_points
from automl.search.trial import WORKER_DIED, TrialContext, evaluate, expiry, placement

log = logging.getLogger(__name__)

# No trial starts when less than this is left before the deadline.
MIN_START_S = 0.3
# A trial still running this long after the search deadline (or its own limit) is killed.
GRACE_S = 0.3


class LocalTrial:
    """What the progress hooks read from a trial (Tune's Trial has the same attributes)."""

    def __init__(self, trial_id: str, config: Dict[str, Any]):
        self.trial_id = trial_id
        self.config = config
        self.status = "RUNNING"
        self.started = time.time()


_CONTEXT: Optional[TrialContext] = None  # set before forking: children inherit it, nothing is pickled


def _child(conn, config: Dict[str, Any], trial_id: str, deadline: float) -> None:
    # The trial's outcome travels in its result; its stray output (library warnings, logging)
    # would only garble the live view, and a parent's stream object (e.g. a notebook's) may not
    # work after a fork.
    import sys

    sys.stdout = sys.stderr = open(os.devnull, "w")
    logging.disable(logging.CRITICAL)
    result = evaluate(config, _CONTEXT, trial_id, None, deadline)  # never raises
    conn.send({**result, **placement()})
    conn.close()


class _Forked:
    """One trial in a forked process; ``conn`` becomes readable once it has sent its result."""

    def __init__(self, mp, config: Dict[str, Any], trial_id: str, deadline: float):
        self.conn, child_conn = mp.Pipe(duplex=False)
        self.proc = mp.Process(target=_child, args=(child_conn, config, trial_id, deadline), daemon=True)
        self.proc.start()
        child_conn.close()

    def result(self) -> Dict[str, Any]:
        try:
            out = self.conn.recv()
        except (EOFError, OSError):  # died without a result (killed, out of memory)
            out = None
        self.proc.join(1.0)
        self.conn.close()
        return out

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(1.0)
        self.conn.close()


def can_fork(auto: bool = False) -> bool:
    """Whether worker processes can be forked here. ``auto``: only where forking is the norm
    (Linux); macOS offers fork, but system libraries there are not safe to use after it."""
    import multiprocessing
    import sys

    if auto and not sys.platform.startswith("linux"):
        return False
    return "fork" in multiprocessing.get_all_start_methods()


def run_local_search(
    ctx: TrialContext,
    candidates: List[Candidate],
    *,
    greater_is_better: bool,
    max_trials: int,
    time_budget_s: float,
    searcher: str = "optuna",
    n_startup_trials: int = 8,
    warm_start: bool = True,
    workers: int = 1,
    callbacks: Optional[List[Any]] = None,
    state: Optional[RunState] = None,
) -> List[Dict[str, Any]]:
    """Run the search in forked processes; return one row per trial, like ``tuner.run_search``."""
    global _CONTEXT
    import multiprocessing
    from multiprocessing.connection import wait as wait_ready

    import optuna

    from automl.metrics import get_metric, worst_value

    previous = list(state.previous_rows) if state is not None else []
    remaining = max_trials - len(previous)
    if remaining <= 0 or time_budget_s < MIN_START_S:
        log.info("search: nothing left to run (%d of %d trials done, %.1f s of search budget left)",
                 len(previous), max_trials, max(0.0, time_budget_s))
        return previous
    study = optuna.create_study(direction="maximize" if greater_is_better else "minimize",
                                sampler=make_sampler(searcher, ctx.seed, n_startup_trials, len(previous)))
    if previous:
        log.info("searcher continues from %d earlier trial(s)",
                 feed_study(study, previous, candidates, ctx.problem_type))
    for point in warm_points(candidates, ctx.problem_type, warm_start, previous):
        study.enqueue_trial(point)
    space = DefineByRun({c.name: c.space for c in candidates}, ctx.problem_type)
    deadline = time.time() + time_budget_s
    ctx.search_deadline = deadline
    worst = worst_value(get_metric(ctx.metric, ctx.problem_type))
    limit = ctx.trial_time_limit_s
    run_id = state.run_id if state is not None else ""
    hooks = list(callbacks or [])
    workers = max(1, int(workers))
    mp = multiprocessing.get_context("fork")
    log.info("search without Ray (forked workers): %d candidate(s), up to %d trials, %d at a time, %.1f s budget",
             len(candidates), remaining, workers, time_budget_s)

    def call(hook: str, *args) -> None:
        for cb in hooks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(*args)

    rows: List[Dict[str, Any]] = []
    trials: List[LocalTrial] = []
    pending: Dict[Any, tuple] = {}  # the result pipe -> (Optuna trial, LocalTrial, _Forked)
    started = time.time()
    launched = 0

    def finish(opt_trial, trial: LocalTrial, result: Optional[Dict[str, Any]]) -> None:
        if result is None:
            result = {"candidate": trial.config.get("candidate"), "status": "failed", "objective": worst,
                      "error": WORKER_DIED, "fit_s": time.time() - trial.started}
        study.tell(opt_trial, float(result["objective"]))
        trial.status = "TERMINATED" if result.get("status") == "completed" else "ERROR"
        row = result_row(trial.trial_id, trial.config, result, run_id)
        rows.append(row)
        persist_row(ctx.output_dir, row, ctx.storage_options, state)
        call("on_trial_result", launched, trials, trial, result)

    _CONTEXT = ctx
    if state is not None:
        state.start_heartbeat()
    try:
        while True:
            while len(pending) < workers and launched < remaining and deadline - time.time() > MIN_START_S:
                opt_trial = study.ask()
                space(opt_trial)
                trial = LocalTrial(uuid.uuid4().hex[:8], dict(opt_trial.params))
                trials.append(trial)
                launched += 1
                call("on_trial_start", launched, trials, trial)
                forked = _Forked(mp, trial.config, trial.trial_id, deadline)
                pending[forked.conn] = (opt_trial, trial, forked)
            if not pending:
                break
            kill_at = min(min(deadline, t.started + limit) for _, t, _ in pending.values()) + GRACE_S
            for conn in wait_ready(list(pending), timeout=max(0.0, kill_at - time.time())):
                opt_trial, trial, forked = pending.pop(conn)
                finish(opt_trial, trial, forked.result())
            now = time.time()
            for conn, (opt_trial, trial, forked) in list(pending.items()):
                at_deadline = now >= deadline + GRACE_S
                if not at_deadline and now < trial.started + limit + GRACE_S:
                    continue
                forked.kill()
                pending.pop(conn)
                ran = now - trial.started
                status, error = expiry(at_deadline, limit, ran, "the search")
                finish(opt_trial, trial, {"candidate": trial.config.get("candidate"), "status": status,
                                          "error": error, "objective": worst, "fit_s": ran, **placement()})
    finally:
        for _, _, forked in pending.values():
            forked.kill()
        _CONTEXT = None
        if state is not None:
            state.stop_heartbeat()
    call("on_experiment_end", trials)
    log.info("search finished: %d trial(s) in %.1f s", len(rows), time.time() - started)
    return previous + rows
