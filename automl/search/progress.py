"""Trial progress in automl's own words, for logs, pipes and CI (off a terminal).

A sink of the search loop's trial events (search/events.py), whichever executor ran the
trials, so showing progress never imports Ray. Off a terminal the search stays quiet: a line on
each new best score, otherwise a line only when something changed, plus each distinct error once.
Lines come at most every ``LINE_EVERY_S`` seconds; on longer budgets less often (``line_gaps``:
a quarter of the budget between plain lines, half that before a new best is shown), so the demo's
whole output fits on a screen (issue 17). Trials stopped by the clock or by ASHA are counted apart from failed ones
(``events.outcome``)."""
from __future__ import annotations

import logging
import math
import time
from collections import Counter
from typing import Callable, Dict, Optional, Set, Tuple

from automl.search.events import CRASHED, FINISHED, PRUNED, STARTED, STOPPED, TICK, TrialEvent, outcome

log = logging.getLogger("automl.progress")

LINE_EVERY_S = 5.0  # off a terminal, at most one progress line this often (a new best always gets one)
LINES_PER_BUDGET = 4  # on long budgets, plain progress lines at most this many times per budget


def line_gaps(budget_s: float) -> Tuple[float, float]:
    """(seconds between plain progress lines, seconds after a line before a new best gets its own)."""
    every = max(LINE_EVERY_S, budget_s / LINES_PER_BUDGET)
    return every, max(LINE_EVERY_S, every / 2)
_ENDED_KINDS = (FINISHED, CRASHED, PRUNED, STOPPED)


class Tally:
    """What the search has done so far, each trial counted once (its first report wins):
    completed, stopped and failed trials, trials running, the best score and its candidate."""

    def __init__(self, greater_is_better: bool):
        self.sign = 1 if greater_is_better else -1
        self.ended: Dict[str, str] = {}  # trial id -> completed | stopped | failed
        self.running = 0
        self.best: Optional[float] = None
        self.best_candidate = ""

    def count(self, kind: str) -> int:
        return Counter(self.ended.values())[kind]

    @property
    def done(self) -> int:
        return len(self.ended)

    def add(self, event: TrialEvent) -> Tuple[str, bool]:
        """Count ``event``. Returns how its trial counted (``""`` when the event ends no new trial)
        and whether it brought a new best score."""
        if event.kind in (STARTED, TICK, FINISHED, CRASHED, PRUNED):
            self.running = event.running
        if event.kind not in _ENDED_KINDS or event.trial_id in self.ended:
            return "", False
        row = event.row or {}
        kind = outcome(row.get("status") or ("failed" if event.kind == CRASHED else event.kind))
        self.ended[event.trial_id] = kind
        if kind != "completed":
            return kind, False
        score = float(row.get("objective", math.nan))
        if not math.isfinite(score) or (self.best is not None and self.sign * score <= self.sign * self.best):
            return kind, False
        self.best, self.best_candidate = score, str(row.get("candidate", ""))
        return kind, True

    def best_text(self) -> str:
        return f"{self.best:.5f} ({self.best_candidate})" if self.best is not None else "-"


def error_of(event: TrialEvent) -> str:
    """A failed trial's error, in one line."""
    text = event.reason or str((event.row or {}).get("error", "")) or "no error message"
    return text.strip().splitlines()[0] if text.strip() else "no error message"


class ProgressLogger:
    """Log lines off a terminal: counts, best so far, elapsed against the budget; see the module doc."""

    def __init__(self, max_trials: int, budget_s: float, metric: str, greater_is_better: bool,
                 clock: Callable[[], float] = time.time):
        self.max_trials = max_trials
        self.budget_s = budget_s
        self.metric = metric
        self.clock = clock
        self.started = clock()
        self.tally = Tally(greater_is_better)
        self.last_line: Optional[float] = None  # when the last progress line was written
        self.changed = False  # a trial ended since then
        self.best_waiting = False  # a new best not yet shown
        self.errors: Set[Tuple[str, str]] = set()  # (candidate, error) already shown
        self.every_s, self.best_gap_s = line_gaps(budget_s)

    def on_event(self, event: TrialEvent) -> None:
        """A line on a new best (``best_gap_s`` after the last line at the soonest); else one when
        something changed, ``every_s`` after the last; each new error once."""
        kind, new_best = self.tally.add(event)
        if kind:
            self.changed = True
        if kind == "failed":
            self._error(event)
        self.best_waiting = self.best_waiting or new_best
        now = self.clock()
        since = math.inf if self.last_line is None else now - self.last_line
        if (self.best_waiting and since >= self.best_gap_s) or (self.changed and since >= self.every_s):
            self.line(now)

    def _error(self, event: TrialEvent) -> None:
        candidate = str((event.row or {}).get("candidate") or event.config.get("candidate") or "?")
        error = error_of(event)
        if (candidate, error[:80]) not in self.errors:  # a broken candidate is named once, then counted
            self.errors.add((candidate, error[:80]))
            log.info("trial %s (%s) failed: %s", event.trial_id, candidate, error[:160])

    def line(self, now: Optional[float] = None) -> None:
        now = self.clock() if now is None else now
        t = self.tally
        log.info("trials: %d done, %d stopped, %d failed, %d running | best %s %s | %.0f/%.0f s",
                 t.count("completed"), t.count("stopped"), t.count("failed"), t.running, self.metric,
                 t.best_text(), now - self.started, self.budget_s)
        self.last_line, self.changed, self.best_waiting = now, False, False

    def close(self) -> None:
        """Nothing to release (the search loop's last line gives the final counts)."""
