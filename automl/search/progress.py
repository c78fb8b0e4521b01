"""Trial progress in automl's own words.

A sink of the search loop's trial events (search/events.py), whichever executor ran the
trials, so showing progress never imports Ray."""
from __future__ import annotations

import logging
import time
from typing import Optional

from automl.search.events import CRASHED, FINISHED, TrialEvent

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

    def on_event(self, event: TrialEvent) -> None:
        """One line per finished or crashed trial; other events say nothing."""
        if event.kind == FINISHED:
            self._finished(event.row or {}, event.running)
        elif event.kind == CRASHED:
            self.failed += 1
            log.info("trial %s crashed: %s", event.trial_id, event.reason[:160])

    def _finished(self, result: dict, running: int) -> None:
        status = result.get("status")
        if status == "completed":
            self.completed += 1
            score = result.get("objective")
            if self.best is None or self.sign * score > self.sign * self.best:
                self.best, self.best_candidate = score, result.get("candidate", "")
        else:
            self.failed += 1
        best = f"{self.best:.5f} ({self.best_candidate})" if self.best is not None else "-"
        extra = f" [{result.get('candidate')} {status}: {result.get('error', '')[:80]}]" if status != "completed" else ""
        log.info("trials: %d done, %d failed, %d running | best %s %s | %.0f/%.0f s%s",
                 self.completed, self.failed, running, self.metric, best,
                 time.time() - self.started, self.budget_s, extra)
