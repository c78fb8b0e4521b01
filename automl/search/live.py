"""Trials as they happen, in automl's own words: a sink of the search's trial events (search/events.py).

On a terminal, a compact block is redrawn in place: trials running, completed and failed, the
best score so far and its candidate, elapsed time against the budget, and the last few trials.
When the stream is not a terminal (CI, pipes, files), it degrades to one plain log line per
finished trial (``ProgressLogger``).
"""
from __future__ import annotations

import math
import sys
import time
from typing import List, Optional, TextIO

from automl.search.events import CRASHED, ENDED, FINISHED, STARTED, TICK, TrialEvent
from automl.search.progress import ProgressLogger

_UP_CLEAR = "\x1b[{n}F\x1b[J"  # cursor up n lines to column 0, clear to the end of the screen
REDRAW_EVERY_S = 0.5
RECENT = 3


def _fmt_s(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class LiveView:
    """Redraws a few lines on ``stream`` (a terminal) as trials start and finish."""

    def __init__(self, max_trials: int, budget_s: float, metric: str, greater_is_better: bool,
                 stream: Optional[TextIO] = None):
        self.max_trials = max_trials
        self.budget_s = budget_s
        self.metric = metric
        self.sign = 1 if greater_is_better else -1
        self.stream = stream or sys.stderr
        self.started = time.time()
        self.running = 0
        self.completed = 0
        self.failed = 0
        self.best: Optional[float] = None
        self.best_candidate = ""
        self.recent: List[str] = []
        self._lines = 0
        self._drawn_at = 0.0

    # trial events (search/events.py) ----------------------------------------------------------
    def on_event(self, event: TrialEvent) -> None:
        """Follow the search: redraw when a trial starts, finishes or crashes (now), on the
        executor's periodic step (at most every REDRAW_EVERY_S) and at the end."""
        if event.kind == ENDED:
            self.running = 0
            self.draw(force=True)
            return
        if event.kind == FINISHED:
            self.record(event.row or {})
        elif event.kind == CRASHED:
            self.failed += 1
            self.recent = (self.recent + [f"trial {event.trial_id} crashed: {event.reason[:70]}"])[-RECENT:]
        elif event.kind not in (STARTED, TICK):  # pruned or stopped: no line of their own
            return
        self.running = event.running
        self.draw(force=event.kind != TICK)

    # state and drawing ----------------------------------------------------------------------
    def record(self, result: dict) -> None:
        """Count one finished trial (a result dict from ``automl.search.trial.evaluate``)."""
        status = result.get("status")
        cand = result.get("candidate", "?")
        if status == "completed":
            self.completed += 1
            score = float(result.get("objective", math.nan))
            if self.best is None or self.sign * score > self.sign * self.best:
                self.best, self.best_candidate = score, cand
            line = f"{cand}: {self.metric} {score:.5f} in {float(result.get('fit_s') or 0):.1f} s"
        else:
            self.failed += 1
            line = f"{cand}: {status} - {str(result.get('error', ''))[:70]}"
        self.recent = (self.recent + [line])[-RECENT:]

    def lines(self) -> List[str]:
        done = self.completed + self.failed
        best = f"{self.best:.5f} ({self.best_candidate})" if self.best is not None else "-"
        elapsed = time.time() - self.started
        width = 20
        filled = min(width, int(width * elapsed / self.budget_s)) if self.budget_s > 0 else 0
        bar = "#" * filled + "." * (width - filled)
        out = [
            f"[automl] search  [{bar}] {_fmt_s(elapsed)} / {_fmt_s(self.budget_s)}",
            f"[automl] trials  {self.running} running | {self.completed} completed | {self.failed} failed"
            f" | {done}/{self.max_trials}",
            f"[automl] best    {self.metric} {best}",
        ]
        out += [f"[automl]   {line}" for line in self.recent]
        return out

    def draw(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._drawn_at < REDRAW_EVERY_S:
            return
        self._drawn_at = now
        text = "\n".join(self.lines()) + "\n"
        prefix = _UP_CLEAR.format(n=self._lines) if self._lines else ""
        try:
            self.stream.write(prefix + text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal must not stop the search
            return
        self._lines = text.count("\n")


def is_terminal(stream: Optional[TextIO] = None) -> bool:
    """``stream`` is a terminal; by default both stdout and stderr must be (a pipe or file on
    either, as in CI or ``automl fit > log``, means plain lines)."""
    streams = [stream] if stream is not None else [sys.stdout, sys.stderr]
    try:
        return all(bool(s.isatty()) for s in streams)
    except (AttributeError, ValueError):
        return False


def make_progress(max_trials: int, budget_s: float, metric: str, greater_is_better: bool,
                  stream: Optional[TextIO] = None):
    """The live view on a terminal, plain log lines otherwise."""
    if is_terminal(stream):
        return LiveView(max_trials, budget_s, metric, greater_is_better, stream)
    return ProgressLogger(max_trials, budget_s, metric, greater_is_better)
