"""The search loop: one protocol, whichever executor runs the trials.

The loop owns what every search does: the budget (what an earlier attempt of a resumed run
left, and the wall-clock deadline), the searcher's ask/tell with its warm-start points, the
run state's heartbeat, persisting every finished trial exactly once (search/resume.py), and
automl's own trial events (search/events.py) for the progress display.

An executor runs the trials. Two exist:

* ``ForkExecutor`` (search/local.py): forked worker processes, a ``TrialPool``: the loop asks
  the searcher for a configuration, ``submit``s it, ``poll``s for results and tells them back.
* ``TuneExecutor`` (search/tuner.py): one Ray Tune experiment. Tune keeps its own scheduling
  (Optuna inside Tune, ASHA stopping poor trials after their first folds, actors reused), so it
  ``run``s the trials itself; its callback turns Tune's hooks into the same events, and the
  loop persists and displays them exactly as for forked workers.
"""
from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any, Callable, ContextManager, Dict, List, Optional, Protocol, Sequence, Tuple

from automl.candidates.generate import Candidate
from automl.rundir.foldmodels import drop_fold_models
from automl.search.events import (ENDED, FINISHED, PERSISTED_KINDS, STARTED, STOPPED, EventSink, TrialEvent,
                                  outcome_text)
from automl.search.resume import RunState, persist_row, result_row
from automl.search.searcher import SearchSpec
from automl.search.trial import TrialContext

log = logging.getLogger(__name__)


class Executor(Protocol):
    """Runs the trials of one search for ``SearchLoop.run``."""

    min_budget_s: float  # below this search budget no trial starts
    budget_digits: int  # decimals of the budget in the "nothing left to run" line

    def session(self, loop: "SearchLoop") -> ContextManager[None]:
        """Start up (and log what will run) on entry; release everything on exit, also on Ctrl-C."""

    def run(self, loop: "SearchLoop") -> None:
        """Run trials until the trial count or the deadline is reached, reporting through ``loop.emit``."""


class TrialPool(Executor, Protocol):
    """An executor the loop drives trial by trial (its ``run`` is ``loop.ask_tell(self)``)."""

    slots: int  # trials at a time
    min_start_s: float  # no trial starts with less than this left before the deadline

    def submit(self, trial_id: str, config: Dict[str, Any]) -> None:
        """Start one trial."""

    def poll(self) -> List[Tuple[str, Dict[str, Any]]]:
        """Wait for trials to end (or be ended at their limit); their ``(trial_id, result)``."""

    def stop(self) -> None:
        """End every trial still running."""


class SearchLoop:
    """One search: budget, searcher, heartbeat, persistence and events over an ``Executor``."""

    def __init__(self, ctx: TrialContext, candidates: List[Candidate], *, greater_is_better: bool,
                 max_trials: int, time_budget_s: float, searcher: str = "optuna", n_startup_trials: int = 8,
                 warm_start: bool = True, callbacks: Optional[Sequence[EventSink]] = None,
                 state: Optional[RunState] = None,
                 post_search: Optional[Callable[[List[Dict[str, Any]]], float]] = None,
                 run_deadline: Optional[float] = None):
        self.ctx = ctx
        self.candidates = candidates
        self.state = state
        self.previous: List[Dict[str, Any]] = list(state.previous_rows) if state is not None else []
        self.max_trials = max_trials
        self.remaining = max_trials - len(self.previous)
        self.time_budget_s = time_budget_s
        self.spec = SearchSpec(candidates, ctx.problem_type, greater_is_better, searcher, ctx.seed,
                               n_startup_trials, warm_start, self.previous)
        self.run_id = state.run_id if state is not None else ""
        self.sinks = list(callbacks or [])
        self.deadline = 0.0
        # The time after the search that the completed trials predict (selection/timeplan.py), and
        # the run's own deadline: the search ends earlier when that is more than its fixed reserve.
        self.post_search, self.run_deadline = post_search, run_deadline
        self.planned_deadline = 0.0
        self.clock: Dict[str, Any] = {}  # what the plan did (summary.json's search_clock)
        self._best_kept: Optional[Tuple[str, float]] = None  # the trial whose fold models are kept
        self.rows: Dict[str, Dict[str, Any]] = {}  # finished trials, persisted once each
        self.unfinished: List[Dict[str, Any]] = []  # trials the end of the search stopped
        self._searcher: Optional[Tuple[Any, Any]] = None

    def run(self, executor: Executor) -> List[Dict[str, Any]]:
        """Run the search; return one row per trial (earlier attempts' first, then completed,
        failed, timed out, pruned, then those stopped unfinished)."""
        if self.remaining <= 0 or self.time_budget_s < executor.min_budget_s:
            log.info("search: nothing left to run (%d of %d trials done, %.*f s of search budget left)",
                     len(self.previous), self.max_trials, executor.budget_digits, max(0.0, self.time_budget_s))
            return self.previous
        self.deadline = self.planned_deadline = time.time() + self.time_budget_s
        self.ctx.search_deadline = self.deadline  # trials stop themselves there
        self.replan()  # a resumed run's earlier trials already predict the time after the search
        with executor.session(self):
            started = time.time()
            with self._heartbeat():
                executor.run(self)
        self.emit(TrialEvent(ENDED))
        rows = list(self.rows.values()) + self.unfinished
        log.debug("search finished: %d trial(s) in %.1f s (%s)", len(rows), time.time() - started,
                  outcome_text(r.get("status") for r in rows))
        return self.previous + rows

    @contextlib.contextmanager
    def _heartbeat(self):
        if self.state is not None:
            self.state.start_heartbeat()
        try:
            yield
        finally:
            if self.state is not None:
                self.state.stop_heartbeat()

    def row(self, trial_id: str, config: Dict[str, Any], result: Dict[str, Any]) -> Dict[str, Any]:
        """A trial's leaderboard (and persisted) row from its result."""
        return result_row(trial_id, config, result, self.run_id)

    def emit(self, event: TrialEvent) -> None:
        """Persist a finished trial (the first time it is seen), keep the rows, tell the sinks."""
        if event.row is not None and event.trial_id not in self.rows:
            if event.kind in PERSISTED_KINDS:
                self.rows[event.trial_id] = event.row
                if not event.persisted:
                    persist_row(self.ctx.output_dir, event.row, self.ctx.storage_options, self.state)
                elif self.state is not None:
                    self.state.n_trials += 1
            elif event.kind == STOPPED:
                self.unfinished.append(event.row)
            if event.kind == FINISHED and event.row.get("status") == "completed":
                self.replan()
                self.keep_best_fold_models(event.row)
        for sink in self.sinks:
            sink.on_event(event)

    def replan(self) -> None:
        """Keep back the time after the search that the completed trials predict: the search's
        deadline moves earlier when the run's deadline less that time comes first (never later
        than planned). Logged once when it first moves."""
        if self.post_search is None or self.run_deadline is None or not self.planned_deadline:
            return
        need = self.post_search(self.previous + list(self.rows.values()))
        deadline = min(self.planned_deadline, self.run_deadline - need)
        early = self.planned_deadline - max(deadline, time.time())  # search time given up
        if early > 1.0 and not self.clock.get("ended_early_s"):
            log.info("search ends %.0f s early: the best trial so far predicts %.0f s for the refit on all rows, "
                     "the ensemble and the report (selection/timeplan.py)", early, need)
        self.clock = {"post_search_predicted_s": round(need, 2), "ended_early_s": round(max(0.0, early), 2)}
        self.deadline = deadline
        self.ctx.search_deadline = deadline

    def keep_best_fold_models(self, row: Dict[str, Any]) -> None:
        """Holdout trials keep their fitted fold model (search/trial.py): only the best trial's so
        far stays in the run folder (the select stage's fallback, selection/timeplan.py)."""
        if not (self.ctx.keep_fold_models and self.ctx.output_dir):
            return
        tid, obj = str(row["trial_id"]), float(row["objective"])
        best = self._best_kept
        better = best is None or (obj > best[1] if self.spec.greater_is_better else obj < best[1])
        loser = (best[0] if best else None) if better else tid
        if better:
            self._best_kept = (tid, obj)
        if loser:
            drop_fold_models(self.ctx.output_dir, loser, self.ctx.storage_options)

    def searcher(self) -> Tuple[Any, Any]:
        """The Optuna study the loop asks and tells, and the space an asked trial samples from
        (built once: earlier trials fed, warm-start points queued)."""
        if self._searcher is None:
            self._searcher = self.spec.study()
        return self._searcher

    def ask_tell(self, pool: TrialPool) -> None:
        """Ask the searcher, submit to ``pool``, tell it the results, until the trial count or
        the deadline; trials still running at the end are the pool's to stop."""
        study, space = self.searcher()
        pending: Dict[str, Any] = {}  # trial_id -> (Optuna trial, config)
        launched = 0
        try:
            while True:
                while (len(pending) < pool.slots and launched < self.remaining
                       and self.deadline - time.time() > pool.min_start_s):
                    opt_trial = study.ask()
                    space(opt_trial)
                    trial_id, config = uuid.uuid4().hex[:8], dict(opt_trial.params)
                    pending[trial_id] = (opt_trial, config)
                    launched += 1
                    self.emit(TrialEvent(STARTED, trial_id, config, running=len(pending)))
                    pool.submit(trial_id, config)
                if not pending:
                    break
                for trial_id, result in pool.poll():
                    opt_trial, config = pending.pop(trial_id)
                    study.tell(opt_trial, float(result["objective"]))
                    self.emit(TrialEvent(FINISHED, trial_id, config, self.row(trial_id, config, result),
                                         running=len(pending)))
        finally:
            pool.stop()
