"""The per-trial time limit, enforced inside the trial.

Tune's stoppers act only when a trial reports, and a trial reports once, at its end; a fit
stuck in native code (XGBoost, BLAS) cannot be interrupted from Python either. So each trial
runs under a watchdog timer thread: if the trial is still running ``grace_s`` after its limit
(the fold loop in ``evaluate`` stops cooperatively at the limit first), the watchdog persists
the trial as ``timeout`` with the reason and ends the worker process. Tune then records an
actor failure, the driver reads the persisted reason, and Ray starts a fresh worker for the
next trial. The cheap path costs one timer thread per trial (started and cancelled; about
0.15 ms median on the shared 2-core dev machine, measured by benchmarks/watchdog_overhead.py).
"""
from __future__ import annotations

import faulthandler
import logging
import os
import threading
from typing import Callable, Optional

log = logging.getLogger(__name__)

EXIT_CODE = 124  # like timeout(1)
BACKSTOP_S = 10.0


def grace_s(limit_s: float) -> float:
    """How long past its limit a trial may run before the watchdog ends it."""
    return max(2.0, 0.1 * float(limit_s))


class TrialWatchdog:
    """Context manager: ``on_expire`` runs (then the process exits) if the block outlives the limit."""

    def __init__(self, limit_s: Optional[float], on_expire: Callable[[], None], grace: Optional[float] = None):
        self.limit_s = limit_s
        self.on_expire = on_expire
        self.grace = grace  # None: grace_s(limit_s)
        self._lock = threading.Lock()
        self._done = False
        self._timer: Optional[threading.Timer] = None

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            try:
                self.on_expire()
            except Exception as exc:  # still end the process: the trial must not run on
                log.warning("trial watchdog could not record the timeout: %s", exc)
            finally:
                os._exit(EXIT_CODE)

    def __enter__(self) -> "TrialWatchdog":
        if self.limit_s and self.limit_s > 0:
            hard = float(self.limit_s) + (grace_s(self.limit_s) if self.grace is None else self.grace)
            self._timer = threading.Timer(hard, self._fire)
            self._timer.daemon = True
            self._timer.start()
            # Backstop for native code that never releases the GIL (so the timer thread cannot
            # run): faulthandler's C watchdog dumps the stack and exits without needing the GIL.
            faulthandler.dump_traceback_later(hard + BACKSTOP_S, exit=True)
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()
            faulthandler.cancel_dump_traceback_later()
