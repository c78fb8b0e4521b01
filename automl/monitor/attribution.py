"""The attribution baseline, ``baseline/attributions.json``, and a live batch's attributions, for
``attribution_drift_check`` (automl/monitor/checks.py).

At fit time the final model's mean |contribution| (SHAP, automl/explain) of each feature is taken
over up to ``ATTRIBUTION_ROWS`` training rows; `automl monitor` takes the same over up to
``monitoring.attribution_drift_check.max_rows`` rows of each batch and compares the rankings.
A run without the file (an earlier release's, or a fit where it failed) gets it from its training
rows on the first check that needs it.
"""
from __future__ import annotations

import datetime as _dt
import functools
import logging
import time
from typing import Any, Dict, Optional

import pandas as pd

from automl import artifacts as art
from automl.errors import AutoMLError
from automl.explain import Explainer
from automl.monitor.checks import monitoring_config
from automl.rundir.layout import ATTRIBUTIONS_FILE

log = logging.getLogger(__name__)

ATTRIBUTION_ROWS = 500  # training rows (at most; fewer when time is short: Explainer.rows_within_budget)
FORMAT_VERSION = 1
# At fit time an exact method explains as many rows as fit before the deadline less REPORT_S (the
# report comes next), and at least EXACT_GRACE_S (a linear model or XGBoost does 500 rows in
# milliseconds); a baseline of fewer than EXACT_MIN_ROWS rows is not written: `automl monitor`
# builds it unhurried. A deep forest's TreeSHAP takes ~0.1 s a row (hpc, kershaw, leaf at 60 s).
REPORT_S = 2.0
EXACT_GRACE_S = 0.5
EXACT_MIN_ROWS = 50


def exact_budget_s(deadline: Optional[float], reserve_s: float = REPORT_S) -> Optional[float]:
    """Seconds exact attributions may take at fit time (None: no deadline, no limit): until
    ``reserve_s`` before the deadline (the report's share), and at least the grace."""
    return None if deadline is None else max(EXACT_GRACE_S, deadline - time.time() - reserve_s)


def attribution_summary(explainer: Explainer, df: pd.DataFrame, max_rows: int, seed: int = 0,
                        exact_budget: Optional[float] = None) -> Dict[str, Any]:
    """Mean |contribution| per feature over up to ``max_rows`` rows of ``df`` (a seeded sample);
    ``exact_budget``: seconds an exact method may take (:func:`exact_budget_s`)."""
    n = explainer.rows_within_budget(df, max_rows, exact_budget_s=exact_budget)
    rows = df.sample(n=n, random_state=seed) if len(df) > n else df
    table = explainer.frame(rows)
    means = table[explainer.columns].abs().mean()
    return {"features": {str(c): float(means[c]) for c in explainer.columns}, "n_rows": int(len(rows)),
            "space": table.attrs["space"], "method": table.attrs["method"], "exact": bool(table.attrs["exact"])}


def write_attribution_baseline(out: str, so: Dict[str, Any], bundle: Any, X: pd.DataFrame,
                               max_rows: int = ATTRIBUTION_ROWS, deadline: Optional[float] = None,
                               report_s: float = REPORT_S) -> bool:
    """Write ``baseline/attributions.json`` for the model ``bundle`` on training rows ``X``; a
    failure logs a warning and never fails the fit (the monitor then builds the file itself).
    A model without an exact method is explained only when the budget (``deadline``, less the
    ``report_s`` the report after it needs) leaves time."""
    started = time.time()
    try:
        explainer = Explainer(bundle, background=X)
        budget = exact_budget_s(deadline, reserve_s=report_s)
        if not explainer.affordable(deadline) or (
                budget is not None and explainer.rows_within_budget(X, max_rows, exact_budget_s=budget)
                < min(EXACT_MIN_ROWS, max_rows, len(X))):
            log.debug("%s skipped to keep the budget (no exact method, or too slow a one, for the time left); "
                      "`automl monitor` builds it when attribution_drift_check is enabled", ATTRIBUTIONS_FILE)
            return False
        doc = _baseline_doc(explainer, X, max_rows, bundle.trial_id, budget)
        art.write_json(art.join(out, ATTRIBUTIONS_FILE), doc, so)
    except Exception as exc:  # monitoring must never break training
        log.warning("could not write %s (%s: %s); `automl monitor` builds it when attribution_drift_check "
                    "is enabled", ATTRIBUTIONS_FILE, type(exc).__name__, exc)
        return False
    log.debug("attribution baseline (%s, %d rows) written to %s in %.2f s", doc["method"], doc["n_rows"],
             ATTRIBUTIONS_FILE, time.time() - started)
    return True


def _baseline_doc(explainer: Explainer, X: pd.DataFrame, max_rows: int, trial_id: Any,
                  exact_budget: Optional[float] = None) -> Dict[str, Any]:
    return {"version": FORMAT_VERSION, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "trial_id": str(trial_id), **attribution_summary(explainer, X, max_rows, exact_budget=exact_budget)}


def read_attribution_baseline(run_dir: str, so: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """``baseline/attributions.json`` of a run, or None when it has none."""
    url = art.join(run_dir, ATTRIBUTIONS_FILE)
    return art.read_json(url, so or {}) if art.exists(url, so or {}) else None


@functools.lru_cache(maxsize=4)
def _run(run_dir: str) -> Any:
    from automl.rundir.run import load

    return load(run_dir)


def live_attributions(run_dir: str, constraints: Dict[str, Any], df: pd.DataFrame,
                      so: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """The baseline's and the batch's mean |SHAP| per feature (``check_batch``'s ``attributions``);
    None when attribution_drift_check is off or the batch cannot be explained (logged)."""
    check = monitoring_config(constraints)["attribution_drift_check"]
    if not check["enabled"]:
        return None
    run = _run(run_dir)
    explainer = run.explainer()
    baseline = read_attribution_baseline(run_dir, so)
    if baseline is None:
        baseline = _baseline_doc(Explainer(run.model, background=run.training_rows()),
                                 run.training_rows(), ATTRIBUTION_ROWS, run.best_trial_id)
        art.write_json(art.join(run_dir, ATTRIBUTIONS_FILE), baseline, so or {})
        log.info("the run had no %s; built it from its training rows", ATTRIBUTIONS_FILE)
    try:
        live = attribution_summary(explainer, df, int(check["max_rows"]))
    except (AutoMLError, KeyError, TypeError, ValueError) as exc:
        log.warning("attribution_drift_check skipped: the batch cannot be explained (%s: %s)", type(exc).__name__, exc)
        return None
    return {"baseline": baseline["features"], "live": live["features"], "n_rows": live["n_rows"]}
