"""Ray Tune as the search loop's executor: every candidate in one Tune experiment.

The candidate is itself a searched parameter with conditional sub-spaces (Optuna
define-by-run). Warm-start portfolio points run first; then TPE (or random search) explores.
Trials get 1 CPU each, reuse their actors, and read the data from Ray's object store.
Tune keeps its own scheduling: its Optuna searcher (built from the loop's ``SearchSpec``) and,
on large data, ASHA stopping poor trials after their first folds. Its callback (``TuneEvents``)
turns what Tune reports into automl's trial events, so the search loop (search/loop.py)
persists every finished trial as it finishes (search/resume.py) and shows progress exactly as
for forked workers. Each trial runs under a watchdog (search/watchdog.py), so a crash loses no
finished work and one bad trial never sinks the run. Ray itself starts in automl/raystart.py.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence

from ray.tune import Callback

from automl.candidates.generate import Candidate
from automl.raystart import init_ray  # noqa: F401 (Ray start-up; kept importable from here)
from automl.raystart import ray_messages_captured
from automl.search.deadline import DeadlineStopper
from automl.search.events import CRASHED, FINISHED, PRUNED, STARTED, STOPPED, TICK, EventSink, TrialEvent
from automl.search.loop import SearchLoop
from automl.search.resume import RunState, read_result, result_row, write_result
from automl.search.searcher import SearchSpec
from automl.search.memory import OOM_KILLS
from automl.search.trial import OUT_OF_MEMORY, TrialContext, evaluate, expiry, placement, release_memory
from automl.search.watchdog import TrialWatchdog

log = logging.getLogger(__name__)


@dataclass
class SearchRun:
    """What each trial needs besides the data: where to persist itself, and the run's id."""

    output_dir: Optional[str]
    storage_options: Dict[str, Any]
    run_id: str = ""


def _placement() -> Dict[str, Any]:
    """Where this trial ran, with its Ray node."""
    import ray

    try:
        node_id = ray.get_runtime_context().get_node_id()
    except Exception:  # outside Ray (tests calling the trainable directly)
        node_id = ""
    return placement(node_id)


def _trainable(config: Dict[str, Any], ctx: TrialContext = None, run: Optional[SearchRun] = None) -> None:
    from ray import tune

    from automl.metrics import get_metric, worst_value

    trial_id = tune.get_context().get_trial_id()
    started = time.time()
    limit = ctx.trial_time_limit_s
    # The search deadline caps the trial too: past it, its result could not be used anyway.
    until_deadline = (ctx.search_deadline - started) if ctx.search_deadline else None
    at_deadline = until_deadline is not None and until_deadline < limit
    watch_s = max(0.5, until_deadline) if at_deadline else limit

    def on_expire() -> None:
        # Runs in the watchdog thread just before it ends this worker process.
        status, error = expiry(at_deadline, limit, time.time() - started, "the watchdog")
        row = result_row(trial_id, config, {
            "candidate": config.get("candidate"), "status": status, "error": error,
            "objective": worst_value(get_metric(ctx.metric, ctx.problem_type)),
            "fit_s": time.time() - started, **_placement()}, run.run_id if run else "")
        if run and run.output_dir:
            write_result(run.output_dir, row, run.storage_options)

    def on_fold(step: int, score: float) -> None:  # intermediate: no "status" key
        tune.report({"objective": score, "folds_done": step, "candidate": config.get("candidate")})

    with TrialWatchdog(watch_s, on_expire, grace=0.3 if at_deadline else None):
        result = evaluate(config, ctx, trial_id, on_fold if ctx.multi_fidelity and len(ctx.folds) > 1 else None,
                          deadline=ctx.search_deadline)
    release_memory()  # the worker runs the next trial: free this one's pages (issue 20)
    result.update(_placement())
    tune.report(result)


def _searcher(spec: SearchSpec):
    """Tune's Optuna searcher, made of the same parts as the loop's own study."""
    from ray.tune.search.optuna import OptunaSearch

    sampler = spec.sampler()
    points = spec.points()
    alg = OptunaSearch(space=spec.space(), metric="objective", mode="max" if spec.greater_is_better else "min",
                       points_to_evaluate=points or None, sampler=sampler)
    spec.feed(alg._ot_study)
    return alg


def _asha(ctx: TrialContext, greater_is_better: bool):
    """Successive halving on folds (multi-fidelity): a trial whose first folds lag behind is
    stopped early. None when the data is small or there is one fold."""
    if not (ctx.multi_fidelity and len(ctx.folds) > 1):
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="training_iteration", metric="objective",
                         mode="max" if greater_is_better else "min", max_t=len(ctx.folds),
                         grace_period=1, reduction_factor=2)


def _crash_reason(trial) -> str:
    """One line for a trial whose worker raised outside ``evaluate`` or died."""
    text = ""
    try:  # Tune writes the error to the trial's local folder before calling back
        if trial.error_file and os.path.exists(trial.error_file):
            with open(trial.error_file) as fh:
                text = fh.read()
        else:
            text = str(trial.get_error() or "")
    except Exception:  # no error text: the generic reason below
        pass
    if not text:
        text = str(getattr(trial, "error_msg", "") or "")
    low = text.lower()
    if any(s in low for s in ("outofmemoryerror", "out of memory", "running low on memory", "memoryerror")):
        # Ray's memory monitor killed the worker, or the trial raised MemoryError outside evaluate
        return f"{OUT_OF_MEMORY} (the trial's worker ran out of memory; the run went on without it)"
    if any(s in low for s in ("actordied", "actor died", "workercrashed", "worker crashed", "exited unexpectedly",
                              "sigkill", "killed", "unexpected system error", "node died")):
        return OOM_KILLS.worker_died()  # "out of memory" when the kernel's OOM killer struck (search/memory.py)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "the trial crashed without an error message")[:500]


def _running(trials: list) -> int:
    return sum(1 for t in trials if getattr(t, "status", "") == "RUNNING")


class TuneEvents(Callback):
    """A Tune callback (driver side): what Tune reports, as automl's trial events for the loop,
    which persists every finished trial as it finishes (completed, failed, timed out, crashed
    or pruned) and keeps the rows for the leaderboard."""

    def __init__(self, loop: SearchLoop):
        self.loop = loop
        self.started: Dict[str, Dict[str, Any]] = {}
        self.partial: Dict[str, Dict[str, Any]] = {}

    def __getstate__(self) -> Dict[str, Any]:  # Tune pickles its run config; the loop holds the data
        return {**self.__dict__, "loop": None}

    def on_trial_start(self, iteration, trials, trial, **info):
        config = dict(trial.config or {})
        self.started[trial.trial_id] = config
        self.loop.emit(TrialEvent(STARTED, trial.trial_id, config, running=_running(trials)))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "status" not in result:  # an intermediate (per-fold) report
            self.partial[trial.trial_id] = result
            return
        row = self.loop.row(trial.trial_id, trial.config, result)
        self.loop.emit(TrialEvent(FINISHED, trial.trial_id, dict(trial.config or {}), row, running=_running(trials)))

    def on_trial_error(self, iteration, trials, trial, **info):
        config = dict(trial.config or {})
        row, persisted = None, False
        ctx = self.loop.ctx
        if trial.trial_id not in self.loop.rows and ctx.output_dir:
            # a watchdog persists its timeout before ending the worker
            saved = read_result(ctx.output_dir, trial.trial_id, dict(ctx.storage_options or {}))
            if saved and saved.get("run_id") == self.loop.run_id:
                row, persisted = saved, True
        reason = _crash_reason(trial)
        if row is None and trial.trial_id not in self.loop.rows:
            row = self.loop.row(trial.trial_id, config, {"candidate": config.get("candidate"), "status": "failed",
                                                         "error": reason})
        self.loop.emit(TrialEvent(CRASHED, trial.trial_id, config, row, reason, _running(trials), persisted))

    def _pruned_row(self, tid: str, cfg: Dict[str, Any]) -> Dict[str, Any]:
        part = self.partial[tid]
        return self.loop.row(tid, cfg, {"candidate": cfg.get("candidate"), "status": "pruned",
                                        "error": f"stopped early by ASHA after {part.get('folds_done')} fold(s) "
                                                 f"(score so far {part.get('objective'):.5g})"})

    def on_trial_complete(self, iteration, trials, trial, **info):
        # A trial stopped after some folds: persisted too, so a resumed run keeps it.
        if trial.trial_id not in self.loop.rows and trial.trial_id in self.partial:
            cfg = dict(trial.config or {})
            self.loop.emit(TrialEvent(PRUNED, trial.trial_id, cfg, self._pruned_row(trial.trial_id, cfg),
                                      running=_running(trials)))

    def on_step_end(self, iteration, trials, **info):
        self.loop.emit(TrialEvent(TICK, running=_running(trials)))

    def stop_unfinished(self) -> None:
        """Trials that started but never finished: stopped early by the multi-fidelity scheduler
        (they reported some folds) or by the time budget."""
        for tid, cfg in self.started.items():
            if tid in self.loop.rows:
                continue
            if tid in self.partial:
                row = self._pruned_row(tid, cfg)
            else:
                row = {"trial_id": tid, "config": cfg, "candidate": cfg.get("candidate"), "status": "stopped",
                       "error": "stopped by the run's time budget before it reported"}
            self.loop.emit(TrialEvent(STOPPED, tid, cfg, row))


@contextlib.contextmanager
def _quiet_tune() -> Iterator[None]:
    """Tune logs a full traceback per crashed trial; automl shows each trial's error in one line.
    Tune's messages are silenced unless they go to the run's logs/ray.log (automl/raystart.py) or
    automl logs at debug level (verbose=true)."""
    quiet = [logging.getLogger(n) for n in ("ray.tune", "ray.air", "ray.train")]
    levels = [q.level for q in quiet]
    if not logging.getLogger("automl").isEnabledFor(logging.DEBUG) and not ray_messages_captured():
        for q in quiet:
            q.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)


@contextlib.contextmanager
def _tune_storage(storage_path: Optional[str]) -> Iterator[str]:
    """``storage_path``, or a temporary folder removed when the block ends."""
    if storage_path:
        yield storage_path
        return
    storage = tempfile.mkdtemp(prefix="automl-tune-")
    try:
        yield storage
    finally:
        shutil.rmtree(storage, ignore_errors=True)


class TuneExecutor:
    """The search loop's executor (search/loop.py) on Ray Tune: Tune schedules the trials itself
    (its searcher, ASHA, reused actors); ``TuneEvents`` reports them to the loop."""

    min_budget_s = 1.0
    budget_digits = 0

    def __init__(self, cpus_per_trial: float = 1.0, storage_path: Optional[str] = None):
        self.cpus_per_trial = cpus_per_trial
        self.storage_path = storage_path
        self.events: Optional[TuneEvents] = None
        self.tuner: Any = None

    @contextlib.contextmanager
    def session(self, loop: SearchLoop) -> Iterator[None]:
        """The experiment, built in Tune's own folder: every finished trial is already in the run
        folder, so a temporary one does, removed however the search ends (also on Ctrl-C)."""
        import ray
        from ray import tune

        ctx = loop.ctx
        parallel = max(1, int(int(ray.cluster_resources().get("CPU", 1)) // self.cpus_per_trial))
        alg = _searcher(loop.spec)
        run = SearchRun(ctx.output_dir, dict(ctx.storage_options or {}), loop.run_id)
        self.events = TuneEvents(loop)
        trainable = tune.with_resources(tune.with_parameters(_trainable, ctx=ctx, run=run),
                                        {"cpu": self.cpus_per_trial})
        with _tune_storage(self.storage_path) as storage:
            self.tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=alg, num_samples=loop.remaining, max_concurrent_trials=parallel,
                    scheduler=_asha(ctx, loop.spec.greater_is_better), reuse_actors=True,
                ),
                run_config=tune.RunConfig(name="search", storage_path=storage, verbose=0,
                                          stop=DeadlineStopper(loop.deadline, lambda: loop.deadline),
                                          callbacks=[self.events]),
            )
            log.info("search: %d candidate(s), up to %d trials%s, %d in parallel, %.0f s budget",
                     len(loop.candidates), loop.remaining,
                     f" (after {len(loop.previous)} earlier)" if loop.previous else "", parallel, loop.time_budget_s)
            try:
                yield
            finally:
                self.tuner = None

    def run(self, loop: SearchLoop) -> None:
        with _quiet_tune():
            self.tuner.fit()
        self.events.stop_unfinished()


def run_search(
    ctx: TrialContext,
    candidates: List[Candidate],
    *,
    greater_is_better: bool,
    max_trials: int,
    time_budget_s: float,
    searcher: str = "optuna",
    n_startup_trials: int = 8,
    warm_start: bool = True,
    cpus_per_trial: float = 1.0,
    callbacks: Optional[Sequence[EventSink]] = None,
    storage_path: Optional[str] = None,
    state: Optional[RunState] = None,
) -> List[Dict[str, Any]]:
    """Run the experiment; return one row per trial (completed, failed, timed out or stopped).

    With ``state`` (see search/resume.py) every finished trial is persisted as it finishes, and
    the trials of earlier attempts are returned first, counted against ``max_trials``.
    """
    loop = SearchLoop(ctx, candidates, greater_is_better=greater_is_better, max_trials=max_trials,
                      time_budget_s=time_budget_s, searcher=searcher, n_startup_trials=n_startup_trials,
                      warm_start=warm_start, callbacks=callbacks, state=state)
    return loop.run(TuneExecutor(cpus_per_trial, storage_path))
