"""``report.html``: one self-contained page about a finished run (opens offline, no server).

Data summary and insights, a sortable leaderboard, every trial's hyperparameters and metrics,
objective against trial number, scores by candidate, the Pareto fronts of score against predict
latency and model size, and the chosen model on validation data (confusion matrix, ROC and
precision-recall; or actual against predicted and residuals) with permutation importance.
"""
from __future__ import annotations

import io
import logging
import time
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from automl import artifacts as art
from automl.report import figures as F
from automl.report.html import esc, figures, page, section, table
from automl.rundir.layout import REPORT_FILE, TRAIN_DATA_FILE

log = logging.getLogger(__name__)

MIN_IMPORTANCE_S = 8.0  # time left in the run's budget below which permutation importance is skipped
_HIDDEN = {"params_json", "refit_params_json", "error"}
_COSTS = ("fit_s", "predict_ms_per_row", "latency_ms_single_row", "model_size_bytes")


def _severity(value: Any) -> str:
    return f"sev-{value}"


def _data_section(df: pd.DataFrame, summary: Dict[str, Any]) -> str:
    from automl import analysis
    from automl.analysis import plots

    target, problem_type = summary["target"], summary["problem_type"]
    types = analysis.resolve_types(df, target, summary.get("column_types"))
    power = analysis.prediction_power(df, target, problem_type, types)
    insights = analysis.find_insights(df, target, problem_type, types, power)
    body = '<div class="figs"><div>' + table(analysis.dataset_summary(
        df, target, problem_type, summary.get("problem_type_reason", ""), types)) + "</div>"
    body += "<div>" + table(analysis.target_analysis(df[target], problem_type).table) + "</div></div>"
    body += "<h3>Insights</h3>"
    body += (table(insights, index=False, classes={"severity": _severity}) if len(insights)
             else '<p class="note">No problems found.</p>')
    figs = [(F.img(plots.plot_target(df[target], problem_type), "target"),
             "The target: class frequencies or distribution.")]
    if len(power):
        figs.append((F.img(plots.plot_power(power), "prediction power"),
                     "Each feature on its own: a shallow tree, 0 = chance, 1 = perfect."))
    body += "<h3>Target and prediction power</h3>" + figures(figs)
    body += "<h3>Columns</h3>" + table(analysis.column_table(df.drop(columns=[target]), types), sortable=True)
    return section("Data", body, "data")


def _search_section(lb: pd.DataFrame, summary: Dict[str, Any]) -> str:
    metric, gib = summary["metric"], bool(summary.get("greater_is_better", True))
    chosen = (summary.get("best") or {}).get("trial_id")
    trials = lb[lb["trial_id"].astype(str) != "ensemble"] if "trial_id" in lb else lb
    figs = [
        (F.img(F.objective_by_trial(trials, metric, gib), "objective by trial"),
         "Validation score of each trial in the order they ran; the line is the best so far."),
        (F.img(F.scores_by_candidate(trials, metric), "scores by candidate"),
         "Spread of each candidate's trial scores."),
        (F.img(F.pareto(lb, "latency_ms_single_row", "predict latency (ms, one row)", metric, gib, chosen),
               "pareto latency"),
         "Score against the time to predict one row; trials on the line are not beaten on both."),
        (F.img(F.pareto(lb, "model_size_bytes", "model size (bytes)", metric, gib, chosen), "pareto size"),
         "Score against model size: a lighter model may be worth a small loss."),
    ]
    return section("Search", figures(figs), "search")


def _leaderboard_section(lb: pd.DataFrame, summary: Dict[str, Any]) -> str:
    from automl.metrics import METRICS

    metrics = [m for m in METRICS[summary["problem_type"]] if m in lb.columns]
    cols = [c for c in ["trial_id", "candidate", "algorithm", "status", "objective", "rerank_objective", *metrics,
                        *_COSTS] if c in lb]
    view = lb[cols].copy()
    view.insert(0, "rank", np.arange(1, len(view) + 1))
    chosen = (summary.get("best") or {}).get("trial_id")
    body = ('<p class="note">Click a column header to sort. The chosen model is highlighted. '
            f"Objective: validation {esc(summary['metric'])}."
            + (" rerank_objective: the mean over the search's split and more cross-validation splits, for the "
               "configurations re-ranked before the final choice (they come first)." if "rerank_objective" in lb else "")
            + "</p>")
    body += table(view, sortable=True, index=False, highlight=chosen, highlight_col="trial_id",
                  table_id="leaderboard-table")
    return section("Leaderboard", body, "leaderboard")


def _trials_section(lb: pd.DataFrame, summary: Dict[str, Any]) -> str:
    cols = [c for c in lb.columns if c not in _HIDDEN]
    if "error" in lb and lb["error"].fillna("").astype(str).str.len().any():
        cols.append("error")
    view = lb[cols].sort_values("trial_number") if "trial_number" in lb else lb[cols]
    body = ('<p class="note">Every trial: all hyperparameters (columns named by pipeline step, e.g. '
            "<code>model.max_depth</code>) and all metrics. Click a header to sort.</p>")
    body += table(view, sortable=True, index=False, table_id="trials-table")
    return section("Every trial", body, "trials")


def _model_section(out: str, so: Dict[str, Any], df: pd.DataFrame, summary: Dict[str, Any], bundle: Any,
                   seed: int, deadline: Optional[float] = None) -> str:
    from automl.problem import ProblemInfo, encode_target
    from automl.report.explain import load_oof, permutation

    best = summary.get("best") or {}
    problem_type = summary["problem_type"]
    info = ProblemInfo(problem_type, summary["metric"], bool(summary.get("greater_is_better", True)), "",
                       classes=list(summary.get("classes") or []), positive_class=summary.get("positive_class"))
    y = encode_target(df[summary["target"]], info)
    score = f"{best['score']:.5f}" if best.get("score") is not None else "-"
    body = (f"<p>Chosen: <b>{esc(best.get('candidate'))}</b> (trial {esc(best.get('trial_id'))}), validation "
            f"{esc(summary['metric'])} {score}. "
            "Plots use out-of-fold predictions: each row predicted by a model that did not train on it.</p>")
    figs = []
    oof = load_oof(out, so, best)
    if oof is not None and len(oof) == len(y):
        covered = ~np.isnan(oof if oof.ndim == 1 else oof[:, 0])
        yy, pp = y[covered], oof[covered]
        if problem_type == "regression":
            figs += [(F.img(F.actual_vs_predicted(yy, pp), "actual vs predicted"), "Actual against predicted."),
                     (F.img(F.residuals(yy, pp), "residuals"), "Residuals against predicted.")]
        else:
            threshold = best.get("threshold")
            pos = info.pos_index
            if problem_type == "binary" and threshold is not None:
                labels = np.where(pp[:, pos] >= threshold, pos, 1 - pos)
            else:
                labels = np.argmax(pp, axis=1)
            figs.append((F.img(F.confusion(yy, labels, info.classes), "confusion matrix"),
                         "Confusion matrix" + (f" at threshold {threshold:.3f}" if threshold is not None else "")))
            if problem_type == "binary":
                y_pos = (yy == pos).astype(int)
                figs += [(F.img(F.roc(y_pos, pp[:, pos]), "roc"), f"ROC, positive class {info.positive_class!s}."),
                         (F.img(F.precision_recall(y_pos, pp[:, pos]), "precision recall"),
                          "Precision against recall.")]
    else:
        body += '<p class="note">No out-of-fold predictions were saved for the chosen model.</p>'
    if bundle is not None and deadline is not None and deadline - time.time() < MIN_IMPORTANCE_S:
        body += ('<p class="note">Feature importance skipped: the run\'s time budget was used up '
                 "(raise budget.time_limit_s to get it).</p>")
    elif bundle is not None:
        try:
            imp, facts = permutation(bundle, df, y, summary["metric"], info.pos_index, seed=seed)
            figs.append((F.img(F.importance(imp, summary["metric"]), "feature importance"),
                         f"Importance of {facts['model']}: refit on {facts['fit_rows']:,} training rows, features shuffled {facts['repeats']}x on "
                         f"{facts['eval_rows']:,} held-out rows (baseline {summary['metric']} {facts['baseline']:.4f})."))
        except Exception as exc:  # importance is a nice-to-have; say why it is missing
            body += f'<p class="note">Feature importance not computed: {esc(type(exc).__name__)}: {esc(exc)}</p>'
    return section("Chosen model", body + figures(figs), "model")


def build_report(out: str, so: Optional[Dict[str, Any]] = None, summary: Optional[Dict[str, Any]] = None,
                 bundle: Any = None, seed: int = 0, deadline: Optional[float] = None) -> str:
    """Write ``report.html`` into the run folder ``out``; returns its URL.

    ``deadline`` (a ``time.time()`` value): when less than ``MIN_IMPORTANCE_S`` is left, the
    permutation importance (the one costly part) is skipped, and the page says so.
    """
    so = so or {}
    summary = summary or art.read_json(art.join(out, art.SUMMARY_FILE), so)
    df = pd.read_parquet(io.BytesIO(art.read_bytes(art.join(out, TRAIN_DATA_FILE), so)))
    lb = pd.read_csv(io.StringIO(art.read_text(art.join(out, art.LEADERBOARD_FILE), so)), dtype={"trial_id": str})
    if bundle is None and summary.get("best"):
        from automl.run import Run

        bundle = Run(out, so).model
    best = summary.get("best") or {}
    facts = [("problem", f"{summary['problem_type']} on {summary['target']!r}"), ("metric", summary["metric"]),
             ("rows", f"{summary.get('n_rows', len(df)):,}"),
             ("chosen", f"{best.get('candidate')} ({best.get('score', float('nan')):.5f})" if best else "-"),
             ("trials", f"{summary.get('n_trials_completed', 0)} completed, {summary.get('n_trials_failed', 0)} failed")]
    if summary.get("test_score") is not None:
        facts.append(("test", f"{summary['metric']} {summary['test_score']:.5f} on {summary.get('n_test_rows')} rows"))
    if summary.get("wall_time_s") is not None:
        facts.append(("wall time", f"{summary['wall_time_s']} s"))
    sections: List[str] = [
        _data_section(df, summary),
        _leaderboard_section(lb, summary),
        _search_section(lb, summary),
        _model_section(out, so, df, summary, bundle, seed, deadline),
        _trials_section(lb, summary),
    ]
    url = art.join(out, REPORT_FILE)
    art.write_text(url, page(f"automl report: {out.rstrip('/').rsplit('/', 1)[-1]}", facts, sections), so)
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
