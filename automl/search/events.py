"""The search's trial events, in automl's own words.

Whatever runs the trials (Ray Tune or forked workers, see search/loop.py), the search loop
turns what happens into these events. Persistence (search/resume.py, through the loop) and
the progress display (search/live.py, search/progress.py) consume them; neither knows which
executor ran the trial.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Protocol

STARTED = "started"    # a trial began running
FINISHED = "finished"  # a trial reported its result: ``row`` is its leaderboard row
CRASHED = "crashed"    # a trial's worker raised outside the trial code or died: ``reason``, ``row``
PRUNED = "pruned"      # the multi-fidelity scheduler stopped a trial after some folds: ``row``
STOPPED = "stopped"    # still unfinished when the search ended (never persisted): ``row``
TICK = "tick"          # the executor's periodic step (a live view may redraw)
ENDED = "ended"        # the search is over

# Kinds whose row is persisted (once per trial) and counted in the run state.
PERSISTED_KINDS = (FINISHED, CRASHED, PRUNED)


@dataclass(frozen=True)
class TrialEvent:
    """One thing that happened to one trial (or to the search, for TICK and ENDED)."""

    kind: str
    trial_id: str = ""
    config: Dict[str, Any] = field(default_factory=dict)
    row: Optional[Dict[str, Any]] = None
    reason: str = ""
    running: int = 0  # trials running as the event happens
    persisted: bool = False  # the row is already in the run folder (a trial's watchdog wrote it)


class EventSink(Protocol):
    """Anything that follows the search: the live view, the progress log, a test."""

    def on_event(self, event: TrialEvent) -> None: ...
