"""Trials as they happen, in automl's own words: a sink of the search's trial events (search/events.py).

On a terminal, rich draws a compact live block: elapsed time against the budget as a bar, trials
running, completed, failed and stopped (by the clock or ASHA: ``events.outcome``), the best score
so far and its candidate, and the last few trials. automl's own log lines print above the block
while it is shown. When the stream is not a terminal (CI, pipes, files), it is the quiet
``ProgressLogger`` of search/progress.py instead.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Dict, List, Optional, TextIO, Tuple

from automl.search.events import ENDED, FINISHED, STARTED, TrialEvent
from automl.search.notebook import NotebookProgress, in_notebook
from automl.search.progress import ProgressLogger, Tally, error_of

REDRAW_EVERY_S = 0.5  # at most this often on the executor's periodic step; rich refreshes the clock too
RECENT = 3


def _fmt_s(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class LiveView:
    """A live block on ``stream`` (a terminal), drawn by rich, as trials start and end."""

    def __init__(self, max_trials: int, budget_s: float, metric: str, greater_is_better: bool,
                 stream: Optional[TextIO] = None):
        self.max_trials = max_trials
        self.budget_s = budget_s
        self.metric = metric
        self.stream = stream or sys.stderr
        self.started = time.time()
        self.tally = Tally(greater_is_better)
        self.recent: List[str] = []
        self._lock = threading.Lock()  # rich's refresh thread reads what the search thread counts
        self._live: Any = None
        self._moved: List[Tuple[logging.StreamHandler, Any]] = []  # log handlers printing above the block
        self._drawn_at = 0.0

    # trial events (search/events.py) ----------------------------------------------------------
    def on_event(self, event: TrialEvent) -> None:
        """Follow the search: redraw when a trial starts or ends (now), on the executor's periodic
        step (at most every REDRAW_EVERY_S); at the end, draw the last state and let go of the terminal."""
        if event.kind == ENDED:
            with self._lock:
                self.tally.running = 0
            self.close()
            return
        with self._lock:
            kind, _ = self.tally.add(event)
            if kind:
                self._remember(event, kind)
        self.draw(force=bool(kind) or event.kind == STARTED)

    def record(self, result: Dict[str, Any], trial_id: str = "") -> None:
        """Count one ended trial from its result (a dict from ``automl.search.trial.evaluate``)."""
        event = TrialEvent(FINISHED, trial_id or f"#{self.tally.done}", row=result, running=self.tally.running)
        with self._lock:
            kind, _ = self.tally.add(event)
            if kind:
                self._remember(event, kind)

    def _remember(self, event: TrialEvent, kind: str) -> None:
        row = event.row or {}
        cand = row.get("candidate") or event.config.get("candidate") or "?"
        if kind == "completed":
            line = f"{cand}: {self.metric} {float(row.get('objective')):.5f} in {float(row.get('fit_s') or 0):.1f} s"
        else:
            line = f"{cand}: {row.get('status') or kind} - {error_of(event)[:70]}"
        self.recent = (self.recent + [line])[-RECENT:]

    # what is drawn ----------------------------------------------------------------------------
    def lines(self) -> List[str]:
        """The block as plain text (the first line's bar is drawn by rich on the terminal)."""
        t = self.tally
        elapsed = time.time() - self.started
        width = 20
        filled = min(width, int(width * elapsed / self.budget_s)) if self.budget_s > 0 else 0
        bar = "#" * filled + "." * (width - filled)
        out = [
            f"[automl] search  [{bar}] {_fmt_s(elapsed)} / {_fmt_s(self.budget_s)}",
            f"[automl] trials  {t.running} running | {t.count('completed')} completed | {t.count('failed')} failed"
            f" | {t.count('stopped')} stopped | {t.done}/{self.max_trials}",
            f"[automl] best    {self.metric} {t.best_text()}",
        ]
        return out + [f"[automl]   {line}" for line in self.recent]

    def renderable(self):
        """What rich draws: the elapsed-time bar, then the other lines."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            lines = self.lines()
        elapsed = time.time() - self.started
        head = Table.grid(padding=(0, 1))
        head.add_row(Text("[automl] search ", style="bold"),
                     ProgressBar(total=max(self.budget_s, 1e-9), completed=min(elapsed, self.budget_s), width=30),
                     Text(f"{_fmt_s(elapsed)} / {_fmt_s(self.budget_s)}"))
        best = self.tally.best is not None
        rest = [Text(line, style="bold green" if best and line.startswith("[automl] best") else "")
                for line in lines[1:]]
        return Group(head, *rest)

    def draw(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._drawn_at < REDRAW_EVERY_S:
            return
        self._drawn_at = now
        try:
            if self._live is None:
                self._start()
            self._live.refresh()
        except (OSError, ValueError):  # a closed terminal must not stop the search
            return

    def _start(self) -> None:
        from rich.console import Console
        from rich.file_proxy import FileProxy
        from rich.live import Live

        real = self.stream in (sys.__stderr__, sys.__stdout__, sys.stderr, sys.stdout)
        console = Console(file=self.stream, force_terminal=True)
        self._live = Live(get_renderable=self.renderable, console=console, auto_refresh=True,
                          refresh_per_second=1 / REDRAW_EVERY_S, redirect_stdout=real, redirect_stderr=real)
        self._live.start()
        if real and isinstance(sys.stderr, FileProxy):  # automl's log lines print above the block
            for handler in logging.getLogger("automl").handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is self.stream:
                    self._moved.append((handler, handler.setStream(sys.stderr)))

    def close(self) -> None:
        """Draw the last state and give the terminal back (also when the search is interrupted)."""
        live, self._live = self._live, None
        for handler, stream in self._moved:
            handler.setStream(stream)
        self._moved = []
        if live is not None:
            try:
                live.stop()
            except (OSError, ValueError):
                pass


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
    """A progress bar in a Jupyter notebook (search/notebook.py), the live view on a terminal,
    quiet log lines otherwise."""
    if stream is None and in_notebook():
        return NotebookProgress(max_trials, budget_s, metric, greater_is_better)
    if is_terminal(stream):
        return LiveView(max_trials, budget_s, metric, greater_is_better, stream)
    return ProgressLogger(max_trials, budget_s, metric, greater_is_better)
