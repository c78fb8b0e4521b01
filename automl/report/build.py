"""``report.html``: one self-contained page about a finished run (opens offline, no server).

The page leads with the decision and ends with the data's profile. Its sections are the
functions in ``SECTIONS``, in page order: each takes the ``ReportContext`` (context.py: the run
folder read once) and returns its HTML ("" leaves it out). To add a section, write such a
function in its own module and add it to ``SECTIONS``; nothing else changes.

1. Decision (decision.py): the chosen model, its validation and test scores, the best trial of
   each candidate with its latency and size, Pareto-optimal rows marked.
2. Chosen model (sections.py): per-class metrics, confusion matrix, calibration curve, ROC and
   precision-recall (or actual against predicted and residuals), permutation importance.
3. Search: objective by trial, scores by candidate, the Pareto fronts of score against latency and size.
4. Leaderboard (sortable), 5. every trial's hyperparameters and metrics, 6. the data's profile.
"""
from __future__ import annotations

import io
import logging
import time
from typing import Any, Callable, Dict, List, Optional

import pandas as pd

from automl import artifacts as art
from automl.report.bias import bias_section
from automl.report.context import ReportContext
from automl.report.decision import decision_section
from automl.report.explain import explanations_section
from automl.report.html import page
from automl.report.sections import (MIN_IMPORTANCE_S, data_section, leaderboard_section,  # noqa: F401
                                     model_section, search_section, trials_section)
from automl.rundir.layout import LEADERBOARD_FILE, REPORT_FILE, SUMMARY_FILE, TRAIN_DATA_FILE

log = logging.getLogger(__name__)

Section = Callable[[ReportContext], str]

# The page, top to bottom: one place to add, remove or reorder a section.
SECTIONS: List[Section] = [
    decision_section,
    model_section,
    explanations_section,  # explain.py: SHAP summary and local explanations
    bias_section,  # bias.py: CI, DPL and DPPL of explain.facet (bias.json)
    search_section,
    leaderboard_section,
    trials_section,
    data_section,
]


def header_facts(ctx: ReportContext) -> List[tuple[str, str]]:
    """The header's one-line facts about the run."""
    summary, best = ctx.summary, ctx.best
    facts = [("problem", f"{summary['problem_type']} on {summary['target']!r}"), ("metric", summary["metric"]),
             ("rows", f"{summary.get('n_rows', len(ctx.df)):,}"),
             ("chosen", f"{best.get('candidate')} ({best.get('score', float('nan')):.5f})" if best.get("score") is not None
              else f"{best.get('candidate')} (fallback: no trial finished)" if best else "-"),
             ("trials", f"{summary.get('n_trials_completed', 0)} completed, {summary.get('n_trials_failed', 0)} failed"
              + (f", {summary['n_trials_stopped']} stopped" if summary.get("n_trials_stopped") else ""))]
    if summary.get("test_score") is not None:
        facts.append(("test", f"{summary['metric']} {summary['test_score']:.5f} on {summary.get('n_test_rows')} rows"))
    if summary.get("wall_time_s") is not None:
        facts.append(("wall time", f"{summary['wall_time_s']} s"))
    return facts


def read_context(out: str, so: Optional[Dict[str, Any]] = None, summary: Optional[Dict[str, Any]] = None,
                 bundle: Any = None, seed: int = 0, deadline: Optional[float] = None) -> ReportContext:
    """The run folder's summary, leaderboard, training rows and model, read once."""
    so = so or {}
    summary = summary or art.read_json(art.join(out, SUMMARY_FILE), so)
    df = pd.read_parquet(io.BytesIO(art.read_bytes(art.join(out, TRAIN_DATA_FILE), so)))
    lb = pd.read_csv(io.StringIO(art.read_text(art.join(out, LEADERBOARD_FILE), so)), dtype={"trial_id": str})
    if bundle is None and summary.get("best"):
        from automl.rundir.run import Run

        bundle = Run(out, so).model
    return ReportContext(out, so, summary, lb, df, bundle, seed, deadline)


def build_report(out: str, so: Optional[Dict[str, Any]] = None, summary: Optional[Dict[str, Any]] = None,
                 bundle: Any = None, seed: int = 0, deadline: Optional[float] = None) -> str:
    """Write ``report.html`` into the run folder ``out``; returns its URL.

    ``deadline`` (a ``time.time()`` value): when less than ``MIN_IMPORTANCE_S`` is left, the
    permutation importance (the one costly part) is skipped, and the page says so.
    """
    ctx = read_context(out, so, summary, bundle, seed, deadline)
    sections = [html for html in (build(ctx) for build in SECTIONS) if html]
    url = art.join(out, REPORT_FILE)
    art.write_text(url, page(f"automl report: {out.rstrip('/').rsplit('/', 1)[-1]}", header_facts(ctx), sections),
                   ctx.so)
    return url


def write_report(out: str, so: Optional[Dict[str, Any]] = None, summary: Optional[Dict[str, Any]] = None,
                 bundle: Any = None, seed: int = 0, deadline: Optional[float] = None,
                 strict: bool = False) -> Optional[str]:
    """``build_report`` for the runner: logs the time taken; a failure is a warning, not an error."""
    started = time.time()
    try:
        url = build_report(out, so, summary, bundle, seed, deadline)
    except Exception as exc:
        if strict:
            raise
        log.warning("report.html not written (%s: %s); the run goes on", type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return None
    log.info("wrote %s in %.1f s", REPORT_FILE, time.time() - started)
    return url
