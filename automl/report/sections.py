"""The sections of report.html after the decision (decision.py), each a function of the
``ReportContext`` returning HTML; build.py's ``SECTIONS`` lists them in page order."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from automl.report import figures as F
from automl.report.context import ENSEMBLE_ID, ReportContext
from automl.report.html import esc, figures, section, table

MIN_IMPORTANCE_S = 8.0  # time left in the run's budget below which permutation importance is skipped
HIDDEN = {"params_json", "refit_params_json", "error"}
COSTS = ("fit_s", "predict_ms_per_row", "latency_ms_single_row", "model_size_bytes")


def _severity(value) -> str:
    return f"sev-{value}"


def per_class_metrics(y: np.ndarray, labels: np.ndarray, classes: list) -> pd.DataFrame:
    """Precision, recall, f1 and support of each class (rows: the classes, in the model's order)."""
    from sklearn.metrics import precision_recall_fscore_support

    k = len(classes)
    p, r, f, n = precision_recall_fscore_support(y, labels, labels=np.arange(k), zero_division=0)
    return pd.DataFrame({"class": [str(c) for c in classes], "precision": p, "recall": r, "f1": f,
                         "support": n.astype(int)})


def _classification_figures(ctx: ReportContext) -> tuple[str, list]:
    """Per-class metrics (HTML), and the confusion matrix, calibration curve, ROC and precision-recall."""
    info, best = ctx.info, ctx.best
    yy, pp, labels = ctx.y[ctx.covered], ctx.oof[ctx.covered], ctx.oof_labels
    threshold = best.get("threshold")
    body = "<h3>Per-class metrics</h3>" + table(per_class_metrics(yy, labels, info.classes), index=False,
                                                 table_id="per-class-table")
    figs = [(F.img(F.confusion(yy, labels, info.classes), "confusion matrix"),
             "Confusion matrix" + (f" at threshold {threshold:.3f}" if threshold is not None else ""))]
    cal = best.get("calibration") or {}
    if cal.get("reliability"):
        rel = cal["reliability"]
        figs.append((F.img(F.reliability(rel.get("none"), rel.get("calibrated"), cal.get("method", "none")),
                           "calibration curve"),
                     "Calibration (reliability diagram): accuracy against the top class's probability, in 15 "
                     f"bins; kept: {cal.get('method')} ({cal.get('reason', '')}). Calibrated values are "
                     "cross-fitted over the out-of-fold rows."))
    else:
        body += ('<p class="note">No calibration record: this run was written before select.calibration '
                 "existed, or its model has no out-of-fold predictions.</p>")
    if ctx.problem_type == "binary":
        pos = info.pos_index
        y_pos = (yy == pos).astype(int)
        figs += [(F.img(F.roc(y_pos, pp[:, pos]), "roc"), f"ROC, positive class {info.positive_class!s}."),
                 (F.img(F.precision_recall(y_pos, pp[:, pos]), "precision recall"), "Precision against recall.")]
    return body, figs


def _importance(ctx: ReportContext) -> tuple[str, list]:
    from automl.report.explain import permutation

    if ctx.bundle is None:
        return "", []
    if ctx.deadline is not None and ctx.deadline - time.time() < MIN_IMPORTANCE_S:
        return ('<p class="note">Feature importance skipped: the run\'s time budget was used up '
                "(raise budget.time_limit_s to get it).</p>", [])
    try:
        imp, facts = permutation(ctx.bundle, ctx.df, ctx.y, ctx.metric, ctx.info.pos_index, seed=ctx.seed)
    except Exception as exc:  # importance is a nice-to-have; say why it is missing
        return f'<p class="note">Feature importance not computed: {esc(type(exc).__name__)}: {esc(exc)}</p>', []
    return "", [(F.img(F.importance(imp, ctx.metric), "feature importance"),
                 f"Importance of {facts['model']}: refit on {facts['fit_rows']:,} training rows, features shuffled "
                 f"{facts['repeats']}x on {facts['eval_rows']:,} held-out rows (baseline {ctx.metric} "
                 f"{facts['baseline']:.4f}).")]


def model_section(ctx: ReportContext) -> str:
    """The chosen model on validation data: per-class metrics, confusion matrix, calibration
    curve, ROC and precision-recall (or actual against predicted and residuals), importance."""
    body = ('<p class="note">Out-of-fold predictions: each row predicted by a model that did not train on '
            "it.</p>")
    figs: list = []
    if ctx.oof is None:
        body += '<p class="note">No out-of-fold predictions were saved for the chosen model.</p>'
    elif ctx.problem_type == "regression":
        yy, pp = ctx.y[ctx.covered], ctx.oof[ctx.covered]
        figs += [(F.img(F.actual_vs_predicted(yy, pp), "actual vs predicted"), "Actual against predicted."),
                 (F.img(F.residuals(yy, pp), "residuals"), "Residuals against predicted.")]
    else:
        more, figs = _classification_figures(ctx)
        body += more
    note, imp = _importance(ctx)
    return section("Chosen model", body + note + figures(figs + imp), "model")


def search_section(ctx: ReportContext) -> str:
    lb, metric, gib, chosen = ctx.lb, ctx.metric, ctx.greater_is_better, ctx.chosen
    bounds = ctx.best.get("constraints") or {}  # select.max_latency_ms / max_size_mb
    size_bound = bounds["max_size_mb"] * 1e6 if bounds.get("max_size_mb") is not None else None
    trials = lb[lb["trial_id"].astype(str) != ENSEMBLE_ID] if "trial_id" in lb else lb
    figs = [
        (F.img(F.objective_by_trial(trials, metric, gib), "objective by trial"),
         "Validation score of each trial in the order they ran; the line is the best so far."),
        (F.img(F.scores_by_candidate(trials, metric, gib), "scores by candidate"),
         "Spread of each candidate's trial scores."),
        (F.img(F.pareto(lb, "latency_ms_single_row", "predict latency (ms, one row)", metric, gib, chosen,
                        bounds.get("max_latency_ms")), "pareto latency"),
         "Score against the time to predict one row; trials on the line are not beaten on both."),
        (F.img(F.pareto(lb, "model_size_bytes", "model size (bytes)", metric, gib, chosen, size_bound),
               "pareto size"),
         "Score against model size: a lighter model may be worth a small loss."),
    ]
    return section("Search", figures(figs), "search")


def leaderboard_section(ctx: ReportContext) -> str:
    from automl.metrics import METRICS

    lb = ctx.lb
    metrics = [m for m in METRICS[ctx.problem_type] if m in lb.columns]
    cols = [c for c in ["trial_id", "candidate", "algorithm", "status", "objective", "rerank_objective", *metrics,
                        *COSTS] if c in lb]
    view = lb[cols].copy()
    view.insert(0, "rank", np.arange(1, len(view) + 1))
    body = ('<p class="note">Click a column header to sort. The chosen model is highlighted. '
            f"Objective: validation {esc(ctx.metric)}."
            + (" rerank_objective: the mean over the search's split and more cross-validation splits, for the "
               "configurations re-ranked before the final choice (they come first)." if "rerank_objective" in lb else "")
            + "</p>")
    body += table(view, sortable=True, index=False, highlight=ctx.chosen, highlight_col="trial_id",
                  table_id="leaderboard-table")
    return section("Leaderboard", body, "leaderboard")


def trials_section(ctx: ReportContext) -> str:
    lb = ctx.lb
    cols = [c for c in lb.columns if c not in HIDDEN]
    if "error" in lb and lb["error"].fillna("").astype(str).str.len().any():
        cols.append("error")
    view = lb[cols].sort_values("trial_number") if "trial_number" in lb else lb[cols]
    body = ('<p class="note">Every trial: all hyperparameters (columns named by pipeline step, e.g. '
            "<code>model.max_depth</code>) and all metrics. Click a header to sort.</p>")
    body += table(view, sortable=True, index=False, table_id="trials-table")
    return section("Every trial", body, "trials")


def data_section(ctx: ReportContext) -> str:
    """The data's profile (summary, target, insights, prediction power, columns): last."""
    from automl import analysis
    from automl.analysis import plots

    df, summary = ctx.df, ctx.summary
    target, problem_type = summary["target"], summary["problem_type"]
    types = analysis.resolve_types(df, target, summary.get("column_types"))
    power = analysis.prediction_power(df, target, problem_type, types)
    insights = analysis.find_insights(df, target, problem_type, types, power, validation=summary.get("validation"))
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
