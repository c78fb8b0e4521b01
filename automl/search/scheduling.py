"""Fitting a list of items in threads before a deadline, the measured time correcting the estimates.

Used by the final refit (ensemble members) and by the re-rank (its extra cross-validation).
"""
from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, Callable, Dict, List, Optional


def refit_within(fit_one: Callable[[int], Any], estimates: List[float], deadline: float,
                 workers: int = 1, first_always: bool = True, after: Optional[List[float]] = None) -> Dict[int, Any]:
    """Fit items ``0..n-1`` in order, ``workers`` at a time in threads of this process (XGBoost
    and scikit-learn's trees release the GIL): item 0 always (unless not ``first_always``),
    every other one only if its estimated time fits before ``deadline``. Estimates are scaled by what the fits so far
    actually took against their estimates (measured, not assumed: the trials' fold times
    over- or under-state a refit by up to 2x). ``after[i]`` is time item ``i`` costs once fitted,
    outside ``fit_one`` (writing a large model to the run folder): an item starts only if its fit
    and the ``after`` of every item started so far still end before ``deadline``.
    Returns ``{index: fitted}`` of the items fitted.
    """
    fitted: Dict[int, Any] = {}
    after = list(after or [0.0] * len(estimates))
    committed = after[0] if first_always and estimates else 0.0
    queue = list(range(1 if first_always else 0, len(estimates)))
    running: Dict[Any, tuple] = {}
    spent = estimated = 0.0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        if first_always and estimates:
            running[pool.submit(fit_one, 0)] = (0, time.time())
        while True:
            ratio = spent / estimated if estimated > 0 else 1.0
            for i in list(queue):
                if len(running) >= max(1, workers):
                    break
                if time.time() + estimates[i] * ratio + committed + after[i] <= deadline:
                    queue.remove(i)
                    committed += after[i]
                    running[pool.submit(fit_one, i)] = (i, time.time())
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                i, started = running.pop(future)
                fitted[i] = future.result()
                spent += time.time() - started
                estimated += max(estimates[i], 1e-3)
    return fitted
