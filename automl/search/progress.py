"""Trial progress in automl's own words.

The hooks have Ray Tune's callback signatures; the Ray search wraps them in a Tune callback
(search/tuner.py), the search without Ray (search/local.py) calls them directly, so showing
progress never imports Ray."""
from __future__ import annotations

import logging
import time
from typing import Optional

log = logging.getLogger("automl.progress")


class ProgressLogger:
    """Logs one line per finished trial: counts, best so far, elapsed against budget."""

    def __init__(self, max_trials: int, budget_s: float, metric: str, greater_is_better: bool):
        self.max_trials = max_trials
        self.budget_s = budget_s
        self.metric = metric
        self.sign = 1 if greater_is_better else -1
        self.started = time.time()
        self.completed = 0
        self.failed = 0
        self.best: Optional[float] = None
        self.best_candidate = ""

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "status" not in result:  # an intermediate per-fold report, not a finished trial
            return
        status = result.get("status")
        if status == "completed":
            self.completed += 1
            score = result.get("objective")
            if self.best is None or self.sign * score > self.sign * self.best:
                self.best, self.best_candidate = score, result.get("candidate", "")
        else:
            self.failed += 1
        running = sum(1 for t in trials if t.status == "RUNNING")
        best = f"{self.best:.5f} ({self.best_candidate})" if self.best is not None else "-"
        extra = f" [{result.get('candidate')} {status}: {result.get('error', '')[:80]}]" if status != "completed" else ""
        log.info("trials: %d done, %d failed, %d running | best %s %s | %.0f/%.0f s%s",
                 self.completed, self.failed, running, self.metric, best,
                 time.time() - self.started, self.budget_s, extra)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.failed += 1
        from automl.search.tuner import _crash_reason

        log.info("trial %s crashed: %s", trial.trial_id, _crash_reason(trial)[:160])
