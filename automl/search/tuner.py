"""Run every candidate in one Ray Tune experiment.

The candidate is itself a searched parameter with conditional sub-spaces (Optuna
define-by-run). Warm-start portfolio points run first; then TPE (or random search) explores.
Trials get 1 CPU each, reuse their actors, and read the data from Ray's object store.
Each trial runs under a watchdog (search/watchdog.py) and every finished trial is persisted
as it finishes (search/resume.py), so a crash loses no finished work and one bad trial never
sinks the run. On a cluster, automl's code reaches the workers through the runtime environment.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

from ray.tune import Callback

from automl.candidates.generate import Candidate
from automl.search.resume import (RunState, feed_study, persist_row, read_result, result_row,
                                  write_result)
from automl.search.searcher import DefineByRun, make_sampler, warm_points
from automl.search.deadline import DeadlineStopper
from automl.search.trial import PACKAGE_DIR, WORKER_DIED, TrialContext, evaluate, expiry, placement
from automl.search.watchdog import TrialWatchdog

log = logging.getLogger(__name__)

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


_FORWARDED_ENV_PREFIXES = ("AWS_", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "AZURE_STORAGE_",
                           "FSSPEC_", "RAY_AUTH_MODE")
_PACKAGE_EXCLUDES = ["__pycache__", "*.pyc", "*.pyo", "*.so.dSYM"]


def cluster_runtime_env(extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """What a cluster's workers need from the driver: automl's own code (so an install on the
    driver alone is enough) and the storage environment variables (so trials can write the
    run's output_dir, e.g. s3://)."""
    env_vars = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_ENV_PREFIXES)}
    runtime_env: Dict[str, Any] = {"py_modules": [PACKAGE_DIR],
                                   "excludes": list(_PACKAGE_EXCLUDES)}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    for key, value in (extra or {}).items():
        if key == "env_vars":
            runtime_env.setdefault("env_vars", {}).update(value)
        elif key == "py_modules":
            runtime_env["py_modules"] = runtime_env["py_modules"] + list(value)
        else:
            runtime_env[key] = value
    return runtime_env


def _private_ray_temp_dir(keep_logs: bool) -> Optional[str]:
    """Where a local Ray started by this process keeps its sessions: Ray's default (its logs kept)
    with ``keep_logs``, else a fresh temporary folder removed when this process ends."""
    if keep_logs:
        root = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or tempfile.gettempdir()
        log.info("Ray keeps its session logs under %s (verbose=true)", os.path.join(root, "ray"))
        return None
    temp_dir = tempfile.mkdtemp(prefix="automl-ray-")

    def remove() -> None:  # after Ray has stopped: its processes write there until then
        import ray

        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)

    atexit.register(remove)
    return temp_dir


def init_ray(address: Optional[str], num_cpus: Optional[int], runtime_env: Optional[Dict[str, Any]] = None,
             keep_logs: bool = False) -> int:
    """Start or join Ray once per process; returns the number of CPUs available to trials.

    Joining a cluster (``address``) ships automl's package and the storage environment to the
    workers through the runtime environment; nothing assumes the workers share this disk. A local
    Ray keeps its session folder (logs, sockets) in a temporary folder removed at exit, unless
    ``keep_logs`` (``verbose=true``).
    """
    import ray

    if not ray.is_initialized():
        kwargs: Dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                      logging_level=logging.WARNING, configure_logging=False)
        if address:
            env = cluster_runtime_env(runtime_env)
            log.info("joining the Ray cluster at %s (shipping automl's code to its workers)", address)
            ray.init(address=address, runtime_env=env, **kwargs)
        else:
            # A private, local cluster started by this process: no token prompt needed.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            temp_dir = _private_ray_temp_dir(keep_logs)
            if temp_dir:
                kwargs["_temp_dir"] = temp_dir
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, runtime_env=runtime_env, **kwargs)
    return int(ray.cluster_resources().get("CPU", 1))


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
    result.update(_placement())
    tune.report(result)


def _searcher(candidates: List[Candidate], problem_type: str, greater_is_better: bool, searcher: str,
              seed: int, n_startup: int, warm_start: bool, previous: Optional[List[Dict[str, Any]]] = None):
    from ray.tune.search.optuna import OptunaSearch

    sampler = make_sampler(searcher, seed, n_startup, len(previous or []))
    points = warm_points(candidates, problem_type, warm_start, previous)
    alg = OptunaSearch(space=DefineByRun({c.name: c.space for c in candidates}, problem_type), metric="objective",
                       mode="max" if greater_is_better else "min", points_to_evaluate=points or None,
                       sampler=sampler)
    if previous:
        added = feed_study(alg._ot_study, previous, candidates, problem_type)
        log.info("searcher continues from %d earlier trial(s)", added)
    return alg


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
    if any(s in low for s in ("actordied", "actor died", "workercrashed", "worker crashed", "exited unexpectedly",
                              "sigkill", "killed", "unexpected system error", "node died")):
        return WORKER_DIED
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "the trial crashed without an error message")[:500]


class TrialRecorder(Callback):
    """A Tune callback (driver side) that persists every finished trial as it finishes and keeps
    the rows for the leaderboard: completed, failed, timed out, crashed or stopped."""

    def __init__(self, run: SearchRun, state: Optional[RunState]):
        self.run = run
        self.state = state
        self.started: Dict[str, Dict[str, Any]] = {}
        self.rows: Dict[str, Dict[str, Any]] = {}
        self.partial: Dict[str, Dict[str, Any]] = {}

    def _persist(self, row: Dict[str, Any]) -> None:
        self.rows[row["trial_id"]] = row
        persist_row(self.run.output_dir, row, self.run.storage_options, self.state)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = dict(trial.config or {})

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "status" not in result:  # an intermediate (per-fold) report
            self.partial[trial.trial_id] = result
            return
        if trial.trial_id in self.rows:
            return
        self._persist(result_row(trial.trial_id, trial.config, result, self.run.run_id))

    def on_trial_error(self, iteration, trials, trial, **info):
        if trial.trial_id in self.rows:
            return
        saved = None
        if self.run.output_dir:  # a watchdog persists its timeout before ending the worker
            saved = read_result(self.run.output_dir, trial.trial_id, self.run.storage_options)
        if saved and saved.get("run_id") == self.run.run_id:
            self.rows[trial.trial_id] = saved
            if self.state is not None:
                self.state.n_trials += 1
            return
        config = dict(trial.config or {})
        self._persist(result_row(trial.trial_id, config, {
            "candidate": config.get("candidate"), "status": "failed", "error": _crash_reason(trial)},
            self.run.run_id))

    def _pruned_row(self, tid: str, cfg: Dict[str, Any]) -> Dict[str, Any]:
        part = self.partial[tid]
        return result_row(tid, cfg, {"candidate": cfg.get("candidate"), "status": "pruned",
                                     "error": f"stopped early by ASHA after {part.get('folds_done')} fold(s) "
                                              f"(score so far {part.get('objective'):.5g})"}, self.run.run_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        # A trial stopped after some folds: persisted too, so a resumed run keeps it.
        if trial.trial_id not in self.rows and trial.trial_id in self.partial:
            self._persist(self._pruned_row(trial.trial_id, dict(trial.config or {})))

    def unfinished(self) -> List[Dict[str, Any]]:
        """Trials that started but never finished: stopped early by the multi-fidelity scheduler
        (they reported some folds) or by the time budget."""
        out = []
        for tid, cfg in self.started.items():
            if tid in self.rows:
                continue
            if tid in self.partial:
                out.append(self._pruned_row(tid, cfg))
            else:
                out.append({"trial_id": tid, "config": cfg, "candidate": cfg.get("candidate"), "status": "stopped",
                            "error": "stopped by the run's time budget before it reported"})
        return out


class _Forward(Callback):
    """A plain progress object (search/progress.py, search/live.py) as a Tune callback."""

    def __init__(self, target: Any):
        self.target = target

    def _call(self, hook: str, *args, **info) -> None:
        fn = getattr(self.target, hook, None)
        if fn is not None:
            fn(*args, **info)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._call("on_trial_start", iteration, trials, trial, **info)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._call("on_trial_result", iteration, trials, trial, result, **info)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._call("on_trial_error", iteration, trials, trial, **info)

    def on_step_end(self, iteration, trials, **info):
        self._call("on_step_end", iteration, trials, **info)

    def on_experiment_end(self, trials, **info):
        self._call("on_experiment_end", trials, **info)


@contextlib.contextmanager
def _quiet_tune() -> Iterator[None]:
    """Tune logs a full traceback per crashed trial; automl logs one line per trial instead."""
    quiet = [logging.getLogger(n) for n in ("ray.tune", "ray.air", "ray.train")]
    levels = [q.level for q in quiet]
    if not logging.getLogger("automl").isEnabledFor(logging.DEBUG):
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
    callbacks: Optional[List[Any]] = None,
    storage_path: Optional[str] = None,
    state: Optional[RunState] = None,
) -> List[Dict[str, Any]]:
    """Run the experiment; return one row per trial (completed, failed, timed out or stopped).

    With ``state`` (see search/resume.py) every finished trial is persisted as it finishes, and
    the trials of earlier attempts are returned first, counted against ``max_trials``.
    """
    import ray
    from ray import tune

    previous = list(state.previous_rows) if state is not None else []
    remaining = max_trials - len(previous)
    if remaining <= 0 or time_budget_s < 1:
        log.info("search: nothing left to run (%d of %d trials done, %.0f s of search budget left)",
                 len(previous), max_trials, max(0.0, time_budget_s))
        return previous
    total_cpus = int(ray.cluster_resources().get("CPU", 1))
    parallel = max(1, int(total_cpus // cpus_per_trial))
    alg = _searcher(candidates, ctx.problem_type, greater_is_better, searcher, ctx.seed,
                    n_startup_trials, warm_start, previous)
    run = SearchRun(ctx.output_dir, dict(ctx.storage_options or {}), state.run_id if state is not None else "")
    deadline = time.time() + max(1.0, time_budget_s)
    ctx.search_deadline = deadline  # trials stop themselves there (see _trainable)
    recorder = TrialRecorder(run, state)
    trainable = tune.with_resources(tune.with_parameters(_trainable, ctx=ctx, run=run), {"cpu": cpus_per_trial})
    # Tune's own experiment folder: every finished trial is already in the run folder, so a
    # temporary one does, removed however the search ends (also on Ctrl-C).
    with _tune_storage(storage_path) as storage:
        scheduler = None
        if ctx.multi_fidelity and len(ctx.folds) > 1:
            from ray.tune.schedulers import ASHAScheduler

            # Successive halving on folds: a trial whose first folds lag behind is stopped early.
            scheduler = ASHAScheduler(time_attr="training_iteration", metric="objective",
                                      mode="max" if greater_is_better else "min", max_t=len(ctx.folds),
                                      grace_period=1, reduction_factor=2)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=alg, num_samples=remaining, max_concurrent_trials=parallel, scheduler=scheduler,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(name="search", storage_path=storage, verbose=0,
                                      stop=DeadlineStopper(deadline),
                                      callbacks=[recorder] + [c if isinstance(c, Callback) else _Forward(c)
                                                              for c in callbacks or []]),
        )
        log.info("search: %d candidate(s), up to %d trials%s, %d in parallel, %.0f s budget",
                 len(candidates), remaining, f" (after {len(previous)} earlier)" if previous else "",
                 parallel, time_budget_s)
        started = time.time()
        if state is not None:
            state.start_heartbeat()
        try:
            with _quiet_tune():
                tuner.fit()
        finally:
            if state is not None:
                state.stop_heartbeat()
        rows = list(recorder.rows.values()) + recorder.unfinished()
        log.info("search finished: %d trial(s) in %.1f s", len(rows), time.time() - started)
        return previous + rows


_RESULT_KEYS = {"candidate", "params_json", "status", "error", "objective", "fit_s", "predict_ms_per_row",
                "latency_ms_single_row", "model_size_bytes", "trial_id", "threshold", "refit_params_json"}
