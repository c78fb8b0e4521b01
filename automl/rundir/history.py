"""A run's history of attempts (``history.json``) and whether a run folder holds a finished run.

Every fit that publishes appends its attempt: the first fit, a resume after a crash, or a
continuation of a finished run with more budget (``resume=true`` on it, search/resume.py).
summary.json's ``attempts`` repeats the list. Runs of earlier releases have no history.json:
their summary.json stands for the first attempt.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List

from automl import artifacts as art
from automl.rundir.layout import HISTORY_FILE, MANIFEST_FILE, STATE_FILE, SUMMARY_FILE

log = logging.getLogger(__name__)


def is_finished_run(output_dir: str, storage_options: Dict[str, Any]) -> bool:
    """Whether ``output_dir`` holds a run whose fit published (finished state and a manifest)."""
    so = dict(storage_options or {})
    state_url = art.join(output_dir, STATE_FILE)
    try:
        if not (art.exists(state_url, so) and art.exists(art.join(output_dir, MANIFEST_FILE), so)):
            return False
        return art.read_json(state_url, so).get("status") == "finished"
    except Exception:  # an unreadable state is no finished run: resume=true treats it as a crash
        return False


def read_history(run_dir: str, so: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The attempts recorded in ``run_dir``'s history.json; for a run of an earlier release
    without one, its summary.json as the first attempt; [] when neither is there."""
    url = art.join(run_dir, HISTORY_FILE)
    try:
        if art.exists(url, so):
            return list(art.read_json(url, so))
        summary_url = art.join(run_dir, SUMMARY_FILE)
        if not art.exists(summary_url, so):
            return []
        summary = art.read_json(summary_url, so)
    except Exception as exc:
        log.warning("could not read the history of %s: %s", run_dir, exc)
        return []
    best = summary.get("best") or {}
    return [{"attempt": 1, "kind": "first", "n_trials_before": 0, "n_trials": summary.get("n_trials"),
             "wall_time_s": summary.get("wall_time_s"), "best_trial_id": best.get("trial_id"),
             "best_candidate": best.get("candidate"), "best_score": best.get("score"),
             "test_score": summary.get("test_score")}]


def write_history(run_dir: str, so: Dict[str, Any], history: List[Dict[str, Any]]) -> None:
    """history.json: the attempts, oldest first (a storage error only logs a warning)."""
    try:
        art.write_json(art.join(run_dir, HISTORY_FILE), history, so)
    except Exception as exc:  # never let bookkeeping sink the run
        log.warning("could not write %s: %s", HISTORY_FILE, exc)
