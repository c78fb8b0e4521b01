"""The chosen model on validation data: its out-of-fold predictions, permutation importance, and
its SHAP explanations (``explanations_section``: mean |contribution| per feature and local
explanations of the rows it gets most wrong).

Plots of the chosen model use the out-of-fold predictions the search saved
(``trials/<id>/oof.npy``; for an ensemble, the weighted sum of its members'), so every row is
predicted by a model that did not see it. Permutation importance needs a fitted model and rows
it did not train on: the chosen model (an ensemble's largest member) is refit on 80% of the
training rows (at most ``MAX_FIT_ROWS``) and features are shuffled on the rest (at most
``MAX_EVAL_ROWS``).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import train_test_split

if TYPE_CHECKING:
    from automl.report.context import ReportContext


MAX_FIT_ROWS = 20_000
MAX_EVAL_ROWS = 1_000
MAX_FEATURES = 60
PREDICT_BUDGET_S = 1.5


def load_oof(out: str, so: Dict[str, Any], best: Dict[str, Any]) -> Optional[np.ndarray]:
    """Out-of-fold predictions of the chosen model (``None`` when the run kept none)."""
    from automl.rundir.trials import load_oof as load_trial_oof

    def one(trial_id: str) -> Optional[np.ndarray]:
        return load_trial_oof(out, str(trial_id), so)

    members = best.get("members")
    if members:
        parts = [(one(m["trial_id"]), float(m["weight"])) for m in members]
        if any(p is None for p, _ in parts):
            return None
        return sum(w * p for p, w in parts)
    return one(best.get("trial_id", ""))


def explained_model(model: Any) -> tuple[Any, str]:
    """The estimator permutation importance refits: the model, or an ensemble's largest member
    (refitting every member would cost as much as the ensemble's refit)."""
    from automl.ensemble import WeightedEnsemble

    if isinstance(model, WeightedEnsemble):
        i = int(np.argmax(model.weights))
        return model.estimators[i], f"the ensemble's largest member (weight {float(model.weights[i]):.2f})"
    return model, "the chosen model"


def permutation(bundle: Any, df: pd.DataFrame, y: np.ndarray, metric: str, pos_index: int,
                seed: int = 0, n_repeats: int = 3) -> tuple[pd.DataFrame, Dict[str, Any]]:
    """Permutation importance of the chosen model on held-out rows.

    Returns (table indexed by feature with ``mean``/``std`` drop of the metric, facts about
    how it was computed).
    """
    from sklearn.inspection import permutation_importance

    from automl.metrics import get_metric
    from automl.candidates.pipeline import predict_matrix

    problem_type = bundle.problem_type
    n_classes = len(bundle.classes)
    features = list(bundle.feature_columns)
    X = df[features]
    strat = y if problem_type != "regression" and np.bincount(y).min() >= 2 else None
    idx_fit, idx_eval = train_test_split(np.arange(len(X)), test_size=0.2, random_state=seed, stratify=strat)
    rng = np.random.default_rng(seed)
    if len(idx_fit) > MAX_FIT_ROWS:
        idx_fit = rng.choice(idx_fit, MAX_FIT_ROWS, replace=False)
    if len(idx_eval) > MAX_EVAL_ROWS:
        idx_eval = rng.choice(idx_eval, MAX_EVAL_ROWS, replace=False)
    template, what = explained_model(bundle.pipeline)
    model = clone(template).fit(X.iloc[idx_fit], y[idx_fit])
    m = get_metric(metric, problem_type)
    sign = 1.0 if m.greater_is_better else -1.0

    def scorer(est, X_, y_):
        return sign * m.fn(y_, predict_matrix(est, X_, problem_type, n_classes), pos_index)

    if len(features) > MAX_FEATURES:
        n_repeats = 2
    # Keep the shuffling within about PREDICT_BUDGET_S: time one scoring pass, then use fewer
    # repeats and rows for slow models (never fewer than 2 repeats and 200 rows).
    t = time.perf_counter()
    baseline = float(scorer(model, X.iloc[idx_eval], y[idx_eval]) * sign)
    per_pass = time.perf_counter() - t
    if per_pass * n_repeats * len(features) > PREDICT_BUDGET_S:
        n_repeats = 2
        share = PREDICT_BUDGET_S / max(1e-9, per_pass * n_repeats * len(features))
        if share < 1:
            keep = max(min(200, len(idx_eval)), int(len(idx_eval) * share))
            idx_eval = rng.choice(idx_eval, keep, replace=False)
    res = permutation_importance(model, X.iloc[idx_eval], y[idx_eval], scoring=scorer, n_repeats=n_repeats,
                                 random_state=seed, n_jobs=1)
    table = pd.DataFrame({"mean": res.importances_mean, "std": res.importances_std}, index=features)
    table = table.sort_values("mean", ascending=False)
    facts = {"model": what, "fit_rows": int(len(idx_fit)), "eval_rows": int(len(idx_eval)), "repeats": int(n_repeats),
             "baseline": baseline}
    return table, facts


# ----------------------------------------------------------------------------- SHAP explanations
MAX_LOCAL_ROWS = 3  # local explanations shown: the worst-predicted training rows
LOCAL_FEATURES = 8  # contributions drawn per local explanation
SUMMARY_FEATURES = 20  # features in the mean |contribution| plot


def _global_attributions(out: str, so: Dict[str, Any], df: pd.DataFrame, bundle: Any, explainer: Any,
                         deadline: Optional[float] = None) -> Dict[str, Any]:
    """Mean |contribution| per feature: the run's ``baseline/attributions.json`` when it is the chosen
    model's, else computed here on the same number of training rows, or as many as ``deadline`` allows."""
    from automl.monitor.attribution import (ATTRIBUTION_ROWS, attribution_summary, exact_budget_s,
                                            read_attribution_baseline)

    doc = read_attribution_baseline(out, so)
    if doc and str(doc.get("trial_id")) == str(bundle.trial_id) and doc.get("features"):
        return doc
    return attribution_summary(explainer, df, ATTRIBUTION_ROWS, exact_budget=exact_budget_s(deadline))


def worst_rows(y: np.ndarray, pred: Optional[np.ndarray], problem_type: str, n: int = MAX_LOCAL_ROWS) -> List[int]:
    """Positions of up to ``n`` rows the model gets most wrong: misclassified rows by the confidence of
    the wrong class, or rows by absolute error (``pred``: out-of-fold predictions; None: none)."""
    if pred is None or len(pred) != len(y):
        return []
    if problem_type == "regression":
        err = np.abs(np.asarray(pred, dtype=float) - y)
        err[~np.isfinite(err)] = -1
        return [int(i) for i in np.argsort(-err, kind="stable")[:n] if err[i] >= 0]
    covered = ~np.isnan(pred[:, 0])
    wrong = covered & (np.argmax(np.nan_to_num(pred), axis=1) != y)
    confidence = np.where(wrong, np.nan_to_num(pred).max(axis=1), -1.0)
    return [int(i) for i in np.argsort(-confidence, kind="stable")[:n] if confidence[i] >= 0]


def summary_figure(means: Dict[str, float], space: str, k: int = SUMMARY_FEATURES):
    """Bar plot of the mean |contribution| of the top ``k`` features."""
    from automl.analysis.plots import pyplot

    plt = pyplot()
    top = sorted(means.items(), key=lambda kv: -kv[1])[:k][::-1]
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.3 * len(top) + 0.9)))
    ax.barh([str(f) for f, _ in top], [v for _, v in top], color="#4c72b0")
    ax.set_xlabel(f"mean |contribution| ({space})")
    ax.set_title("SHAP summary: mean |contribution| per feature")
    return fig


def local_figure(row: pd.Series, contrib: pd.Series, base: float, title: str, space: str, k: int = LOCAL_FEATURES):
    """One row's largest contributions (red raises the output, blue lowers it), each labelled with its value."""
    from automl.analysis.plots import pyplot

    plt = pyplot()
    top = contrib.reindex(contrib.abs().sort_values(ascending=False).index[:k])[::-1]
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.3 * len(top) + 1.0)))
    labels = [f"{f} = {str(row.get(f))[:24]}" for f in top.index]
    ax.barh(labels, top.to_numpy(dtype=float), color=["#c44e52" if v > 0 else "#4c72b0" for v in top])
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(f"contribution to the {space} (base value {base:.4g}, output {base + float(contrib.sum()):.4g})")
    ax.set_title(title, fontsize=10)
    return fig


def explanations_section(ctx: "ReportContext") -> str:
    """The report's "Explanations" section: the SHAP summary and local explanations of the rows the
    model gets most wrong (out of fold). Never fails the report: a problem becomes a note."""
    from automl.report import figures as F
    from automl.report.html import esc, section

    if ctx.bundle is None:
        return ""
    try:
        body = _explanations_body(ctx, F.img)
    except Exception as exc:  # explanations are a nice-to-have; say why they are missing
        body = f'<p class="note">Explanations not computed: {esc(type(exc).__name__)}: {esc(exc)}</p>'
    return section("Explanations", body, "explanations")


def _exact_fits(explainer: Any, df: pd.DataFrame, deadline: Optional[float]) -> bool:
    """Whether an exact method explains ``EXACT_MIN_ROWS`` rows (the summary's least) and the local
    rows before ``deadline`` (or in the grace past it); always true without a deadline and for the
    agnostic estimate (it has its own limits)."""
    from automl.monitor.attribution import EXACT_MIN_ROWS, exact_budget_s

    if deadline is None or not explainer.exact_available():
        return True
    wanted = min(len(df), EXACT_MIN_ROWS + MAX_LOCAL_ROWS)
    budget = exact_budget_s(deadline, reserve_s=0.0)  # the report is what runs now
    return explainer.rows_within_budget(df, wanted, exact_budget_s=budget) >= wanted


def _explanations_body(ctx: "ReportContext", img: Any) -> str:
    from automl.explain import BASE_COLUMN, CLASS_COLUMN, Explainer
    from automl.explain.explainer import SPACES
    from automl.report.html import esc, figures

    bundle, df, oof = ctx.bundle, ctx.df, ctx.oof
    explainer = Explainer(bundle, background=df)
    if not explainer.affordable(ctx.deadline):
        return ('<p class="note">Explanations skipped to keep the run within its budget: this model has no '
                "exact method and the agnostic estimate takes seconds per row. <code>run.explain(df)</code> "
                "computes them; see docs/explain.md.</p>")
    if not _exact_fits(explainer, df, ctx.deadline):
        return ('<p class="note">Explanations skipped to keep the run within its budget: this model\'s exact '
                "method (TreeSHAP of a large forest) takes too long per row for the time left. "
                "<code>run.explain(df)</code> computes them; see docs/explain.md.</p>")
    glob = _global_attributions(ctx.out, ctx.so, df, bundle, explainer, ctx.deadline)
    space = SPACES.get(glob["space"], glob["space"])
    figs = [(img(summary_figure(glob["features"], glob["space"]), "shap summary"),
             f"Mean |contribution| over {glob['n_rows']:,} training rows: {glob['method']}; output space: {space}.")]
    rows = worst_rows(ctx.y, oof, bundle.problem_type)
    table = explainer.frame(df.iloc[rows]) if rows else None
    for n, i in enumerate(rows):
        row = df.iloc[i]
        guess = (f"{float(oof[i]):.4g}" if bundle.problem_type == "regression"
                 else str(bundle.classes[int(np.argmax(oof[i]))]))
        explained = f"; explaining class {table[CLASS_COLUMN].iloc[n]}" if CLASS_COLUMN in table else ""
        title = f"training row {i}: actual {row[bundle.target]}, out-of-fold prediction {guess}{explained}"
        fig = local_figure(row, table[explainer.columns].iloc[n], float(table[BASE_COLUMN].iloc[n]), title,
                           table.attrs["space"])
        figs.append((img(fig, f"local explanation {n + 1}"),
                     "The largest contributions for a row the model gets wrong out of fold"
                     + (" (largest error)." if bundle.problem_type == "regression" else " (misclassified).")))
    note = ('<p class="note">Per-feature contributions (SHAP values) of the chosen model, one per input column '
            "(the one-hot columns and missing indicator of a column summed). A row's base value plus its "
            f"contributions is the model's output ({esc(space)}). <code>run.explain(df)</code> reproduces them; "
            "see docs/explain.md.</p>")
    return note + figures(figs)
