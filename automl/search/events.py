"""The search's trial events, in automl's own words.

Whatever runs the trials (Ray Tune or forked workers, see search/loop.py), the search loop
turns what happens into these events. Persistence (search/resume.py, through the loop) and
the progress display (search/live.py, search/progress.py) consume them; neither knows which
executor ran the trial.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Optional, Protocol

STARTED = "started"    # a trial began running
FINISHED = "finished"  # a trial reported its result: ``row`` is its leaderboard row
CRASHED = "crashed"    # a trial's worker raised outside the trial code or died: ``reason``, ``row``
PRUNED = "pruned"      # the multi-fidelity scheduler stopped a trial after some folds: ``row``
STOPPED = "stopped"    # still unfinished when the search ended (never persisted): ``row``
TICK = "tick"          # the executor's periodic step (a live view may redraw)
ENDED = "ended"        # the search is over

# Kinds whose row is persisted (once per trial) and counted in the run state.
PERSISTED_KINDS = (FINISHED, CRASHED, PRUNED)

# How the progress display counts an ended trial: completed; stopped by the clock or the scheduler
# (the search deadline, its own budget.trial_time_limit_s, or ASHA after its first folds); or failed
# (an error, or a worker that died). summary.json keeps every status apart.
STOPPED_STATUSES = ("stopped", "timeout", "pruned")


def outcome(status: object) -> str:
    """``completed``, ``stopped`` or ``failed``: how a trial with ``status`` is counted."""
    if status == "completed":
        return "completed"
    return "stopped" if status in STOPPED_STATUSES else "failed"


def outcome_text(statuses: Iterable[object]) -> str:
    """``"N completed, N stopped, N failed"`` for the trials with these statuses."""
    counts = Counter(outcome(s) for s in statuses)
    return ", ".join(f"{counts[k]} {k}" for k in ("completed", "stopped", "failed"))


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
