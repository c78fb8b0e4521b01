"""Crash-safe search state: every finished trial is persisted as it completes, so a killed
driver loses no finished work and ``automl fit ... resume=true`` continues the same run.

The run folder (any fsspec URL, local or ``s3://``) holds:

* ``run_state.json``: the run's id, the wall time spent so far (a heartbeat rewrites it every
  few seconds while the search runs) and the number of finished trials;
* ``trials/<trial_id>/result.json``: one finished trial (completed, failed or timed out): its
  config, metrics, status, error and where it ran. The driver writes it when the trial
  reports; a trial's watchdog writes it itself before ending a trial that ran out of time.

On resume, results with the run's id are loaded back, count against ``budget.max_trials`` and
(with the spent time) ``budget.time_limit_s``, are added to the Optuna study so TPE continues
informed, and their warm-start points are not run again.

``resume=true`` on a *finished* run (its fit published: ``run_state.json`` says finished and
``manifest.json`` is there) continues it: ``budget.time_limit_s`` and ``budget.max_trials`` are
that much more, the earlier trials warm-start the searcher and stay on the leaderboard, and the
selection and publishing run again. The new attempt is built in a staging folder (rundir/staging.py)
with the earlier trials copied in and swapped in when complete, so a failed continuation leaves
the earlier run as it was. ``history.json`` (and summary.json's ``attempts``) records every
attempt that published.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from typing import Any, Dict, List, Optional

import fsspec

from automl import artifacts as art
from automl.rundir.manifest import TRIAL_ID_PATTERN, check_trial_id
from automl.rundir.history import is_finished_run, read_history, write_history  # noqa: F401 (runner reads it here)
from automl.rundir.layout import STATE_FILE, TRIAL_RESULT_FILE as RESULT_FILE, TRIALS_DIR, trial_result_file
from automl.search.continuation import carry_over, check_same_data

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
# Tune's bookkeeping keys that a persisted trial row does not need.
_TUNE_KEYS = {"timestamp", "done", "training_iteration", "time_this_iter_s", "time_total_s", "date",
              "time_since_restore", "iterations_since_restore", "timesteps_since_restore", "timesteps_total",
              "episodes_total", "checkpoint_dir_name", "experiment_tag", "should_checkpoint", "config"}


def result_url(output_dir: str, trial_id: str) -> str:
    return art.join(output_dir, trial_result_file(check_trial_id(trial_id, "trial_id")))  # no path parts


def write_result(output_dir: str, row: Dict[str, Any], storage_options: Optional[Dict[str, Any]] = None) -> None:
    """Persist one finished trial's row (atomic enough: one small object write)."""
    art.write_json(result_url(output_dir, row["trial_id"]), row, storage_options)


def persist_row(output_dir: Optional[str], row: Dict[str, Any], storage_options: Optional[Dict[str, Any]],
                state: Optional["RunState"]) -> None:
    """Persist a finished trial as it finishes and count it in the run state; a storage error
    only logs a warning (the leaderboard still gets the row)."""
    if output_dir:
        try:
            write_result(output_dir, row, storage_options)
        except Exception as exc:
            log.warning("could not persist trial %s: %s", row["trial_id"], exc)
    if state is not None:
        state.n_trials += 1
        state.save()


def read_result(output_dir: str, trial_id: str, storage_options: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    url = result_url(output_dir, trial_id)
    try:
        if not art.exists(url, storage_options):
            return None
        return json.loads(art.read_text(url, storage_options))
    except Exception as exc:  # a half-written file from a killed process counts as absent
        log.debug("ignoring unreadable %s: %s", url, exc)
        return None


class RunState:
    """The run's id, time spent across attempts, and the trials kept from earlier attempts."""

    def __init__(self, output_dir: str, storage_options: Dict[str, Any], run_id: str, spent_before_s: float,
                 previous_rows: List[Dict[str, Any]], started: float, resumed: bool):
        self.output_dir = output_dir
        self.storage_options = storage_options
        self.run_id = run_id
        self.spent_before_s = spent_before_s
        self.previous_rows = previous_rows
        self.started = started
        self.resumed = resumed
        self.n_trials = len(previous_rows)
        self.source: Optional[str] = None  # the finished run this attempt continues (None: not a continuation)
        self.history: List[Dict[str, Any]] = []  # the attempts that published before this one
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __getstate__(self) -> Dict[str, Any]:  # Tune pickles its callbacks; locks do not pickle
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_stop", "_thread")}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock, self._stop, self._thread = threading.Lock(), threading.Event(), None

    @property
    def spent_s(self) -> float:
        return self.spent_before_s + (time.time() - self.started)

    @property
    def continued(self) -> bool:
        """This attempt continues a finished run with more budget (``resume=true`` on it)."""
        return self.source is not None

    @property
    def budget_spent_s(self) -> float:
        """What earlier attempts spent of this attempt's ``budget.time_limit_s``: all of it after a
        crash, nothing for a continuation (the time limit is the *more* time)."""
        return 0.0 if self.continued else self.spent_before_s

    def trial_budget(self, max_trials: int) -> int:
        """``budget.max_trials`` as the search loop counts it (earlier trials included): after a
        crash the earlier trials count against it; a continuation runs that many more."""
        return max_trials + len(self.previous_rows) if self.continued else max_trials

    def begin(self, df, target: str, candidates: List[str]) -> None:
        """Once everything is read and checked: refuse other data than the earlier trials saw,
        leave out earlier trials of candidates no longer planned, save run_state.json, and for a
        continuation copy the earlier trials (and monitoring/) into the folder being written."""
        if self.previous_rows:
            check_same_data(self.source or self.output_dir, self.storage_options, df, target)
            keep = [r for r in self.previous_rows if (r.get("config") or {}).get("candidate", r.get("candidate"))
                    in candidates]
            if len(keep) < len(self.previous_rows):
                log.info("%d earlier trial(s) of candidates not in this attempt's plan are left out",
                         len(self.previous_rows) - len(keep))
            self.previous_rows[:] = keep
            self.n_trials = len(keep)
        self.save()
        if self.continued:
            carry_over(self.source, self.output_dir, self.storage_options, self.previous_rows)

    def record_attempt(self, summary: Dict[str, Any], time_limit_s: float) -> List[Dict[str, Any]]:
        """This attempt appended to the run's history, written to history.json; returns the list."""
        best = summary.get("best") or {}
        kind = "continued" if self.continued else "resumed" if self.resumed else "first"
        record = {"attempt": len(self.history) + 1, "kind": kind,
                  "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                  "time_limit_s": float(time_limit_s), "n_trials_before": len(self.previous_rows),
                  "n_trials": int(summary.get("n_trials", 0)) - len(self.previous_rows),
                  "wall_time_s": summary.get("wall_time_s"), "best_trial_id": best.get("trial_id"),
                  "best_candidate": best.get("candidate"), "best_score": best.get("score"),
                  "test_score": summary.get("test_score")}
        history = [*self.history, record]
        write_history(self.output_dir, self.storage_options, history)
        return history

    def save(self, status: str = "running") -> None:
        body = {"run_id": self.run_id, "spent_s": round(self.spent_s, 2), "n_trials": self.n_trials,
                "status": status, "updated": time.time()}
        with self._lock:
            try:
                art.write_json(art.join(self.output_dir, STATE_FILE), body, self.storage_options)
            except Exception as exc:  # never let bookkeeping sink the run
                log.warning("could not update %s: %s", STATE_FILE, exc)

    def start_heartbeat(self, interval_s: float = HEARTBEAT_S) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def beat():
            while not self._stop.wait(interval_s):
                self.save()

        self._thread = threading.Thread(target=beat, name="automl-run-state", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread = None
        self.save()


def _load_previous(output_dir: str, run_id: str, so: Dict[str, Any]) -> List[Dict[str, Any]]:
    fs, root = fsspec.core.url_to_fs(output_dir, **so)
    root = root.rstrip("/")
    try:
        fs.invalidate_cache()
    except Exception:  # pragma: no cover
        pass
    paths = sorted(fs.glob(f"{root}/{TRIALS_DIR}/*/{RESULT_FILE}"))
    rows: Dict[str, Dict[str, Any]] = {}
    if not paths:
        return []
    for path, blob in fs.cat(paths, on_error="omit").items():
        try:
            row = json.loads(blob)
        except ValueError:
            log.warning("ignoring a half-written trial result: %s", path)
            continue
        if row.get("run_id") == run_id and TRIAL_ID_PATTERN.match(str(row.get("trial_id") or "")):
            rows.setdefault(str(row["trial_id"]), row)
    return sorted(rows.values(), key=lambda r: r.get("finished_at", 0))


def begin_run(cfg, output_dir: str, storage_options: Dict[str, Any], started: float,
              source: Optional[str] = None) -> RunState:
    """Start a new run state, or (``resume=true``) load the one in ``source`` (default:
    ``output_dir``). A finished run in a ``source`` other than ``output_dir`` (the staging folder
    the continuation is built in) is continued. Reads only: the caller calls ``begin`` once the
    new input is validated (nothing of a run is rewritten before that)."""
    so = dict(storage_options or {})
    source = source or output_dir
    state_url = art.join(source, STATE_FILE)
    existing = art.read_json(state_url, so) if art.exists(state_url, so) else None
    if bool(cfg.get("resume", False)):
        if existing and existing.get("run_id"):
            rows = _load_previous(source, existing["run_id"], so)
            spent = float(existing.get("spent_s", 0.0))
            counts: Dict[str, int] = {}
            for r in rows:
                counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
            state = RunState(output_dir, so, existing["run_id"], spent, rows, started, resumed=True)
            kept = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"
            if source != output_dir and existing.get("status") == "finished":
                state.source = source
                state.history = read_history(source, so)
                log.info("continuing the finished run %s: %d earlier trial(s) (%s) warm-start the search, for "
                         "budget.time_limit_s=%g s and budget.max_trials=%d more", source, len(rows), kept,
                         float(cfg.budget.time_limit_s), int(cfg.budget.max_trials))
                return state
            state.history = read_history(source, so)
            log.info("resuming run %s: %d finished trial(s) kept (%s), %.0f s already spent",
                     output_dir, len(rows), kept, spent)
            return state
        log.warning("resume=true but %s holds no %s; starting a new run there", output_dir, STATE_FILE)
    return RunState(output_dir, so, uuid.uuid4().hex, 0.0, [], started, resumed=False)


def result_row(trial_id: str, config: Dict[str, Any], result: Dict[str, Any], run_id: str) -> Dict[str, Any]:
    """A trial's persisted row from its reported result (Tune's bookkeeping removed)."""
    row = {k: v for k, v in result.items() if k not in _TUNE_KEYS}
    row.update({"trial_id": str(trial_id), "config": dict(config or {}), "run_id": run_id,
                "finished_at": time.time()})
    return row


def _same_point(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    for k, v in a.items():
        w = b[k]
        if isinstance(v, float) or isinstance(w, float):
            try:
                if not math.isclose(float(v), float(w), rel_tol=1e-9, abs_tol=1e-12):
                    return False
            except (TypeError, ValueError):
                return False
        elif v != w:
            return False
    return True


def unevaluated(points: List[Dict[str, Any]], previous: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Warm-start points that no earlier trial of this run has evaluated."""
    done = [r.get("config") or {} for r in previous]
    return [p for p in points if not any(_same_point(p, c) for c in done)]


def _distribution(spec: Dict[str, Any]):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if spec["type"] == "int":
        return IntDistribution(int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
    if spec["type"] == "float":
        return FloatDistribution(float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return CategoricalDistribution(list(spec["choices"]))


def feed_study(study, previous: List[Dict[str, Any]], candidates, problem_type: str) -> int:
    """Add earlier trials to an Optuna study (completed with their objective, others as failed)."""
    import optuna

    from automl.candidates.space import SEP, applicable

    spaces = {c.name: c.space for c in candidates}
    names = list(spaces)
    added = 0
    for row in previous:
        config = row.get("config") or {}
        name = config.get("candidate")
        if name not in spaces:
            continue
        params: Dict[str, Any] = {"candidate": name}
        dists: Dict[str, Any] = {"candidate": optuna.distributions.CategoricalDistribution(names)}
        try:
            for pname, spec in spaces[name]["params"].items():
                if not applicable(spec, problem_type):
                    continue
                key = f"{name}{SEP}{pname}"
                if key not in config:
                    raise KeyError(key)
                dists[key] = _distribution(spec)
                params[key] = config[key]
            objective = row.get("objective")
            ok = row.get("status") == "completed" and objective is not None and math.isfinite(float(objective))
            trial = optuna.trial.create_trial(
                params=params, distributions=dists, value=float(objective) if ok else None,
                state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL)
            study.add_trial(trial)
            added += 1
        except Exception as exc:  # the space changed since: that trial just does not inform TPE
            log.debug("trial %s not added to the study: %s", row.get("trial_id"), exc)
    return added
