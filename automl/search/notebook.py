"""The search's progress in a Jupyter notebook: a progress bar (tqdm's widget) instead of log lines.

``search.live.make_progress`` picks it when this process is a Jupyter kernel and ipywidgets is
installed (``pip install 'automl[notebook]'``); without ipywidgets a notebook gets the log lines.
The bar runs over the search's time budget (the search ends at its deadline or after
``budget.max_trials``, whichever comes first); its label counts completed, stopped and failed
trials and names the best score so far. A sink of the search's trial events (search/events.py).
"""
from __future__ import annotations

import importlib.util
import sys
import time
from typing import Optional, TextIO

from automl.search.events import ENDED, TrialEvent
from automl.search.progress import Tally


def in_notebook() -> bool:
    """This process is a Jupyter kernel (an IPython shell with a kernel) and ipywidgets, which
    draws the bar, is installed."""
    ipython = sys.modules.get("IPython")  # a kernel has imported it; never imported here
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    return importlib.util.find_spec("ipywidgets") is not None


class NotebookProgress:
    """A tqdm bar over the time budget, with the trial counts and the best score as its label."""

    def __init__(self, max_trials: int, budget_s: float, metric: str, greater_is_better: bool,
                 stream: Optional[TextIO] = None):
        from tqdm.auto import tqdm  # the widget in a notebook; text on ``stream`` elsewhere (tests)

        self.max_trials = max_trials
        self.metric = metric
        self.started = time.time()
        self.tally = Tally(greater_is_better)
        self.bar = tqdm(total=max(1, int(round(budget_s))), desc="automl search", unit="s", file=stream,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s{postfix}")  # postfix: ", label"

    def label(self) -> str:
        t = self.tally
        return (f"{t.done}/{self.max_trials} trials: {t.count('completed')} completed, {t.count('stopped')} "
                f"stopped, {t.count('failed')} failed | best {self.metric} {t.best_text()}")

    def on_event(self, event: TrialEvent) -> None:
        """Move the bar to the time spent and update its label; close it when the search ends."""
        self.tally.add(event)
        total = self.bar.total
        self.bar.n = total if event.kind == ENDED else min(total, int(time.time() - self.started))
        self.bar.set_postfix_str(self.label(), refresh=False)
        self.bar.refresh()
        if event.kind == ENDED:
            self.close()

    def close(self) -> None:
        self.bar.close()
