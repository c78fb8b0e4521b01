"""The search on this machine without Ray: for budgets too small to pay Ray's start-up.

Starting Ray costs 3-9 s on a small machine (and importing Ray Tune 1.4 s more), which is most
of a 10 s budget. Here the search loop (search/loop.py: the same searcher, Optuna TPE
define-by-run with the portfolio first) hands each trial to a worker process forked from this
one, ``workers`` at a time; the trial code is the same (``trial.evaluate``). A fork starts in
milliseconds and inherits the data, and a trial still running at the search deadline (or past
its own limit) is killed, like the Ray search's watchdog does. Rows are persisted as each trial
finishes, by the loop, exactly as in the Ray search. ``search.executor=auto`` uses it on Linux
only (``=local`` wherever ``fork`` exists); ``=ray`` keeps the Ray search for any budget.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from automl.candidates.generate import Candidate
from automl.search.events import EventSink
from automl.search.loop import SearchLoop
from automl.search.resume import RunState
from automl.search.memory import OOM_KILLS  # a dead worker's reason: out of memory after an OOM kill
from automl.search.trial import TrialContext, evaluate, expiry, placement

log = logging.getLogger(__name__)

# No trial starts when less than this is left before the deadline.
MIN_START_S = 0.3
# A trial still running this long after the search deadline (or its own limit) is killed.
GRACE_S = 0.3

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
        self.trial_id = trial_id
        self.config = config
        self.started = time.time()
        self.conn, child_conn = mp.Pipe(duplex=False)
        self.proc = mp.Process(target=_child, args=(child_conn, config, trial_id, deadline), daemon=True)
        self.proc.start()
        child_conn.close()

    def result(self) -> Optional[Dict[str, Any]]:
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


_OPENMP_BROKEN = False  # once this process's OpenMP state breaks forked children, it stays broken
OPENMP_CANARY_S = 3.0  # a canary child that has not finished a tiny XGBoost fit by then is stuck (it takes ~0.1 s)


def _openmp_canary() -> None:
    import numpy as np
    import xgboost

    xgboost.XGBRegressor(n_estimators=1, max_depth=1, n_jobs=1).fit(np.arange(8.0).reshape(-1, 1), np.arange(8.0))


def openmp_survives_fork() -> bool:
    """Whether a forked child can still run OpenMP code (XGBoost, LightGBM, HistGradientBoosting).

    GNU OpenMP's thread pool does not survive a fork once this process has entered a parallel
    region (an earlier fit or prediction in the same process: a second ``automl.fit``, the
    estimators in ``cross_val_score``, a sweep's next point): the child's first parallel region
    then hangs forever. A canary child running a tiny XGBoost fit finds out (~0.1 s)."""
    global _OPENMP_BROKEN
    if _OPENMP_BROKEN:
        return False
    try:
        import xgboost  # noqa: F401 (imported here, before the fork, as the trials would)
    except ImportError:
        return True
    import multiprocessing

    proc = multiprocessing.get_context("fork").Process(target=_openmp_canary, daemon=True)
    proc.start()
    proc.join(OPENMP_CANARY_S)
    if proc.is_alive():
        proc.kill()
        proc.join(1.0)
        _OPENMP_BROKEN = True
        return False
    return proc.exitcode == 0


def can_fork(auto: bool = False) -> bool:
    """Whether worker processes can be forked here. ``auto``: only where forking is the norm
    (Linux); macOS offers fork, but system libraries there are not safe to use after it."""
    import multiprocessing
    import sys

    if auto and not sys.platform.startswith("linux"):
        return False
    return "fork" in multiprocessing.get_all_start_methods()


class ForkExecutor:
    """A ``TrialPool`` (search/loop.py) of forked worker processes, ``workers`` at a time."""

    min_budget_s = MIN_START_S
    budget_digits = 1
    min_start_s = MIN_START_S

    def __init__(self, workers: int = 1):
        self.slots = max(1, int(workers))
        self.pending: Dict[Any, _Forked] = {}  # the result pipe -> its trial
        self.deadline = 0.0
        self.loop: Optional[SearchLoop] = None
        self.limit = 0.0
        self.worst = 0.0
        self._mp = None

    @contextlib.contextmanager
    def session(self, loop: SearchLoop) -> Iterator[None]:
        """Children inherit the trial context through the fork; it is cleared when the search ends."""
        global _CONTEXT
        import multiprocessing

        from automl.metrics import get_metric, worst_value

        loop.searcher()  # built (and, resuming, logged) before the search's own line
        ctx = loop.ctx
        self.deadline, self.limit = loop.deadline, ctx.trial_time_limit_s
        self.loop = loop  # its deadline may move earlier as trials complete (SearchLoop.replan)
        if ctx.keep_fold_models:
            import skops.io  # noqa: F401 (imported once here, not in every forked trial that keeps its fold model)
        self.worst = worst_value(get_metric(ctx.metric, ctx.problem_type))
        self._mp = multiprocessing.get_context("fork")
        log.info("search without Ray (forked workers): %d candidate(s), up to %d trials, %d at a time, %.1f s budget",
                 len(loop.candidates), loop.remaining, self.slots, loop.time_budget_s)
        _CONTEXT = ctx
        try:
            yield
        finally:
            self.stop()
            _CONTEXT = None

    def run(self, loop: SearchLoop) -> None:
        loop.ask_tell(self)

    def submit(self, trial_id: str, config: Dict[str, Any]) -> None:
        self.deadline = self.loop.deadline if self.loop is not None else self.deadline
        forked = _Forked(self._mp, config, trial_id, self.deadline)
        self.pending[forked.conn] = forked

    def poll(self) -> List[Tuple[str, Dict[str, Any]]]:
        """Results of the trials that ended, then those killed at the deadline or their limit."""
        from multiprocessing.connection import wait as wait_ready

        self.deadline = self.loop.deadline if self.loop is not None else self.deadline
        kill_at = min(min(self.deadline, f.started + self.limit) for f in self.pending.values()) + GRACE_S
        done = []
        for conn in wait_ready(list(self.pending), timeout=max(0.0, kill_at - time.time())):
            forked = self.pending.pop(conn)
            result = forked.result()
            if result is None:
                result = {"candidate": forked.config.get("candidate"), "status": "failed", "objective": self.worst,
                          "error": OOM_KILLS.worker_died(), "fit_s": time.time() - forked.started}
            done.append((forked.trial_id, result))
        now = time.time()
        for conn, forked in list(self.pending.items()):
            at_deadline = now >= self.deadline + GRACE_S
            if not at_deadline and now < forked.started + self.limit + GRACE_S:
                continue
            forked.kill()
            self.pending.pop(conn)
            ran = now - forked.started
            status, error = expiry(at_deadline, self.limit, ran, "the search")
            done.append((forked.trial_id, {"candidate": forked.config.get("candidate"), "status": status,
                                           "error": error, "objective": self.worst, "fit_s": ran, **placement()}))
        return done

    def stop(self) -> None:
        for forked in self.pending.values():
            forked.kill()
        self.pending.clear()


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
    callbacks: Optional[Sequence[EventSink]] = None,
    state: Optional[RunState] = None,
) -> List[Dict[str, Any]]:
    """Run the search in forked processes; return one row per trial, like ``tuner.run_search``."""
    loop = SearchLoop(ctx, candidates, greater_is_better=greater_is_better, max_trials=max_trials,
                      time_budget_s=time_budget_s, searcher=searcher, n_startup_trials=n_startup_trials,
                      warm_start=warm_start, callbacks=callbacks, state=state)
    return loop.run(ForkExecutor(workers))
