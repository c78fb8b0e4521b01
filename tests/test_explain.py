"""Explanations (issue 19): per-feature contributions in the input columns, additive to the model's
raw output, for XGBoost, forests, linear models, ensembles and the model-agnostic estimate;
run.explain; the report's SHAP section in headless Chromium; the notebook cell."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from automl.candidates.algorithms import make_estimator
from automl.candidates.estimators import TargetTransformRegressor
from automl.candidates.processing import build_preprocessor
from automl.ensemble import WeightedEnsemble
from automl.explain import BASE_COLUMN, CLASS_COLUMN, ExplainError, Explainer
from automl.model import ModelBundle
from conftest import make_binary_frame

TYPES = {"x1": "numeric", "x2": "numeric", "color": "categorical"}
FEATURES = list(TYPES)
TOL = 1e-6  # additivity of exact methods: base + sum = the raw output


def fitted(algorithm: str, df: pd.DataFrame, y: np.ndarray, problem_type: str, params=None, scale: str = "none",
           wrap: bool = False) -> Pipeline:
    """An automl pipeline (caster, column blocks, model) fitted as the search builds it."""
    pre = build_preprocessor(TYPES, {"scale": scale}, problem_type)
    model = make_estimator(algorithm, problem_type, params or {}, 0)
    if wrap:
        model = TargetTransformRegressor(model, transform="none", standardize=True)
    return Pipeline(pre.steps + [("model", model)]).fit(df[FEATURES], y)


def bundle(pipeline, problem_type: str, classes=None) -> ModelBundle:
    classes = list(classes or [])
    return ModelBundle(pipeline=pipeline, problem_type=problem_type, target="y", feature_columns=FEATURES,
                       column_types=TYPES, classes=classes, positive_class=classes[-1] if len(classes) == 2 else None)


def margin(pipe: Pipeline, X: pd.DataFrame) -> np.ndarray:
    """The final step's raw output, computed by the library itself (no automl.explain code)."""
    Xt, model = pipe[:-1].transform(X), pipe.steps[-1][1]
    if hasattr(model, "get_booster"):
        return np.asarray(model.predict(Xt, output_margin=True), dtype=float)
    return np.asarray(model.decision_function(Xt), dtype=float)


@pytest.fixture(scope="module")
def data():
    df = make_binary_frame(240, seed=1)
    y2 = (df["y"] == "yes").to_numpy(dtype=int)
    y3 = np.digitize(df["x1"] + (df["color"] == "red"), [-0.3, 0.8])  # three classes
    return df, y2, y3, df[FEATURES].iloc[:40]


def test_xgboost_binary_contributions_add_up_to_the_margin(data):
    df, y2, _, rows = data
    pipe = fitted("xgboost", df, y2, "binary", {"n_estimators": 30, "max_depth": 3})
    table = Explainer(bundle(pipe, "binary", ["no", "yes"])).frame(rows)
    assert list(table.columns) == FEATURES + [BASE_COLUMN, CLASS_COLUMN]
    assert (table[CLASS_COLUMN] == "yes").all() and table.attrs["space"] == "margin" and table.attrs["exact"]
    total = table[BASE_COLUMN] + table[FEATURES].sum(axis=1)
    np.testing.assert_allclose(total, margin(pipe, rows), rtol=0, atol=TOL)
    # the negative class is the same log-odds, negated
    neg = Explainer(bundle(pipe, "binary", ["no", "yes"])).frame(rows, target_class="no")
    np.testing.assert_allclose(neg[FEATURES].to_numpy(), -table[FEATURES].to_numpy())


def test_xgboost_multiclass_contributions_add_up_per_class(data):
    df, _, y3, rows = data
    pipe = fitted("xgboost", df, y3, "multiclass", {"n_estimators": 20, "max_depth": 3})
    c = Explainer(bundle(pipe, "multiclass", ["a", "b", "c"])).contributions(rows)
    assert c.values.shape == (len(rows), 3, len(FEATURES))
    np.testing.assert_allclose(c.output(), margin(pipe, rows), rtol=0, atol=TOL)
    table = Explainer(bundle(pipe, "multiclass", ["a", "b", "c"])).frame(rows)  # the predicted class
    predicted = np.asarray(["a", "b", "c"])[np.argmax(margin(pipe, rows), axis=1)]
    assert list(table[CLASS_COLUMN]) == list(predicted)


def test_a_one_hot_encoded_categorical_gets_exactly_one_contribution(data):
    """color becomes several one-hot columns and x2 a value plus a missing indicator; each input
    column still gets exactly one value: the sum of its processed columns' contributions."""
    import xgboost as xgb

    df, y2, _, rows = data
    pipe = fitted("xgboost", df, y2, "binary", {"n_estimators": 30, "max_depth": 3})
    Xt = pipe[:-1].transform(rows)
    assert Xt.shape[1] >= 5  # x1, x2, x2's missing indicator, and at least two one-hot columns of color
    raw = pipe.steps[-1][1].get_booster().predict(xgb.DMatrix(Xt), pred_contribs=True)
    table = Explainer(bundle(pipe, "binary", ["no", "yes"])).frame(rows)
    assert list(table.columns[:3]) == ["x1", "x2", "color"]
    # the numeric block comes first (x1, x2, then x2's indicator), the one-hot columns of color after it
    np.testing.assert_allclose(table["x1"], raw[:, 0], atol=1e-6)
    np.testing.assert_allclose(table["x2"], raw[:, 1] + raw[:, 2], atol=1e-6)
    np.testing.assert_allclose(table["color"], raw[:, 3:-1].sum(axis=1), atol=1e-6)


def test_linear_model_is_explained_exactly_from_its_coefficients(data):
    df, y2, _, rows = data
    pipe = fitted("linear", df, y2, "binary", scale="standard")
    background = df[FEATURES].iloc[100:200]
    table = Explainer(bundle(pipe, "binary", ["no", "yes"]), background=background).frame(rows)
    assert table.attrs["method"].startswith("exact (linear") and table.attrs["space"] == "margin"
    np.testing.assert_allclose(table[BASE_COLUMN] + table[FEATURES].sum(axis=1), margin(pipe, rows), atol=1e-9)
    # the base value is the output at the background's mean processed row
    lr = pipe.steps[-1][1]
    mean = pipe[:-1].transform(background).mean(axis=0)
    np.testing.assert_allclose(table[BASE_COLUMN], lr.intercept_[0] + lr.coef_[0] @ mean, atol=1e-9)


def test_standardised_regression_target_is_explained_in_the_target_s_units(data):
    df, _, _, rows = data
    y = 3.0 * df["x1"].to_numpy() + 40.0
    pipe = fitted("linear", df, y, "regression", scale="standard", wrap=True)
    table = Explainer(bundle(pipe, "regression"), background=df[FEATURES]).frame(rows)
    assert list(table.columns) == FEATURES + [BASE_COLUMN] and table.attrs["space"] == "value"
    np.testing.assert_allclose(table[BASE_COLUMN] + table[FEATURES].sum(axis=1), pipe.predict(rows[FEATURES]),
                               atol=1e-9)
    assert table["x1"].abs().mean() > 10 * table["x2"].abs().mean()  # the target is x1's alone


def test_random_forest_is_explained_by_treeshap_in_probability(data):
    pytest.importorskip("shap", reason="forests use shap's TreeExplainer: pip install 'automl[explain]'")
    df, y2, _, rows = data
    pipe = fitted("random_forest", df, y2, "binary", {"n_estimators": 25, "max_depth": 6})
    c = Explainer(bundle(pipe, "binary", ["no", "yes"])).contributions(rows)
    assert c.exact and c.space == "probability" and "TreeSHAP" in c.method
    np.testing.assert_allclose(c.output(), pipe.predict_proba(rows), rtol=0, atol=TOL)


def test_ensemble_of_margin_members_is_their_weighted_sum(data):
    """XGBoost and a logistic regression (each with its own processing): margin space, base + sum =
    the weighted mean of the members' margins."""
    df, y2, _, rows = data
    members = [fitted("xgboost", df, y2, "binary", {"n_estimators": 20, "max_depth": 3}),
               fitted("linear", df, y2, "binary", scale="standard")]
    weights = [0.6, 0.4]
    ens = WeightedEnsemble(members, weights, "binary", 2)
    c = Explainer(bundle(ens, "binary", ["no", "yes"]), background=df[FEATURES]).contributions(rows)
    assert c.exact and c.space == "margin" and c.method.startswith("weighted sum of 2 members")
    expected = sum(w * margin(m, rows) for w, m in zip(weights, members))
    np.testing.assert_allclose(c.output()[:, 1], expected, rtol=0, atol=TOL)


def test_ensemble_of_forests_adds_up_to_its_probabilities(data):
    pytest.importorskip("shap", reason="forests use shap's TreeExplainer: pip install 'automl[explain]'")
    df, _, y3, rows = data
    members = [fitted("random_forest", df, y3, "multiclass", {"n_estimators": 15, "max_depth": 5}),
               fitted("extra_trees", df, y3, "multiclass", {"n_estimators": 15, "max_depth": 5})]
    ens = WeightedEnsemble(members, [0.75, 0.25], "multiclass", 3)
    c = Explainer(bundle(ens, "multiclass", ["a", "b", "c"])).contributions(rows)
    assert c.exact and c.space == "probability"
    np.testing.assert_allclose(c.output(), ens.predict_proba(rows[FEATURES]), rtol=0, atol=TOL)


def test_an_ensemble_of_exact_members_in_different_spaces_is_not_affordable_near_the_deadline(data):
    """XGBoost (margin) and a forest (probability) each have an exact method, but not in one space:
    the ensemble falls back to the agnostic estimate, so near the deadline it must not be started
    (hotel_rates at 60 s: a 5 s attribution baseline began after the refit had used the budget)."""
    import time

    pytest.importorskip("shap", reason="forests use shap's TreeExplainer: pip install 'automl[explain]'")
    df, y2, _, rows = data
    members = [fitted("xgboost", df, y2, "binary", {"n_estimators": 20, "max_depth": 3}),
               fitted("random_forest", df, y2, "binary", {"n_estimators": 15, "max_depth": 5})]
    ex = Explainer(bundle(WeightedEnsemble(members, [0.5, 0.5], "binary", 2), "binary", ["no", "yes"]),
                   background=df[FEATURES])
    assert not ex.exact_available()
    assert not ex.affordable(time.time() + 1.0) and ex.affordable(None)
    assert not ex.contributions(rows.iloc[:2]).exact  # what exact_available foretold


@pytest.fixture(scope="module")
def slow_forest():
    """Extra trees grown to one row per leaf on noise labels, 4 classes: TreeSHAP takes ~50 ms a row
    here (a fitted run's forest on hpc ~0.1 s: 500 training rows are a minute of attribution)."""
    pytest.importorskip("shap", reason="forests use shap's TreeExplainer: pip install 'automl[explain]'")
    df = make_binary_frame(1500, seed=3)
    y = np.random.default_rng(0).integers(0, 4, len(df))
    pipe = fitted("extra_trees", df, y, "multiclass", {"n_estimators": 300, "min_samples_leaf": 1, "max_features": 1.0})
    return bundle(pipe, "multiclass", ["a", "b", "c", "d"]), df[FEATURES]


def test_the_attribution_baseline_of_a_slow_exact_model_is_skipped_past_the_deadline(slow_forest, tmp_path):
    """An exact method is not always cheap: past the deadline, a forest whose TreeSHAP cannot explain
    enough rows in the grace left is not explained at fit time (kershaw, leaf, hpc at 60 s: 6-14 s
    between summary.json and the exit with an extra-trees model); `automl monitor` builds the file."""
    import time

    from automl.monitor.attribution import ATTRIBUTION_ROWS, write_attribution_baseline
    from automl.rundir.layout import ATTRIBUTIONS_FILE

    model, X = slow_forest
    assert not write_attribution_baseline(str(tmp_path), {}, model, X, deadline=time.time() - 1.0)
    assert not (tmp_path / ATTRIBUTIONS_FILE).exists()
    # sized to the time: fewer rows than asked when each costs tens of milliseconds, all with no limit
    ex = Explainer(model, background=X)
    assert 1 <= ex.rows_within_budget(X, ATTRIBUTION_ROWS, exact_budget_s=1.0) < ATTRIBUTION_ROWS
    assert ex.rows_within_budget(X, ATTRIBUTION_ROWS) == ATTRIBUTION_ROWS


def test_the_attribution_baseline_leaves_the_report_its_share_of_the_budget(slow_forest, tmp_path, monkeypatch):
    """leaf at 30 s: the baseline's TreeSHAP ran until 2 s before the deadline, then the report (3.8 s,
    its reserve 4 s at 30 s) ended the run 1.9 s late. The baseline now stops ``report_s`` early."""
    import time

    from automl.monitor.attribution import write_attribution_baseline
    from automl.stages.search import report_share_s

    budgets = []

    def record(self, df, max_rows, exact_budget_s=None):
        budgets.append(exact_budget_s)
        return 0  # explain nothing: only the budget it was given matters here

    monkeypatch.setattr(Explainer, "rows_within_budget", record)
    model, X = slow_forest
    write_attribution_baseline(str(tmp_path), {}, model, X, deadline=time.time() + 10.0, report_s=report_share_s(30))
    assert report_share_s(30) == 4.0 and 5.5 < budgets[0] <= 6.0


def test_sizing_an_exact_explanation_stops_when_one_row_already_took_the_time(slow_forest):
    """hotel_rates at 60 s: a 3-member ensemble with a deep regression forest needed seconds per row,
    so timing one more row and a probe of several to size the baseline would itself run far past
    the deadline: when the first row (with the explainers' set-up) already took the budget, no row
    more is explained."""
    model, X = slow_forest
    explained = []

    class Counting(Explainer):
        def contributions(self, df):
            explained.append(len(df))
            return super().contributions(df)

    assert Counting(model, background=X).rows_within_budget(X, 500, exact_budget_s=1e-9) == 1
    assert explained == [1]


def test_the_report_skips_explanations_of_a_slow_exact_model_past_the_deadline(slow_forest, tmp_path):
    """The report's SHAP section explains its summary rows and three local rows: with a model at tens
    of milliseconds a row (seconds for hotel_rates' forest) and the deadline passed, it says so
    instead of running on past the budget."""
    import time

    from automl.report.context import ReportContext
    from automl.report.explain import _explanations_body

    model, X = slow_forest
    df = X.assign(y=np.random.default_rng(1).choice(["a", "b", "c", "d"], len(X)))
    summary = {"target": "y", "metric": "accuracy", "problem_type": "multiclass", "classes": ["a", "b", "c", "d"],
               "best": {"trial_id": "t1"}}
    ctx = ReportContext(str(tmp_path), {}, summary, pd.DataFrame(), df, model, 0, time.time() - 1.0)
    assert "skipped to keep the run within its budget" in _explanations_body(ctx, lambda fig, alt: "")


def test_a_cheap_exact_model_still_gets_its_attribution_baseline_past_the_deadline(data, tmp_path):
    import json
    import time

    from automl.monitor.attribution import EXACT_MIN_ROWS, write_attribution_baseline
    from automl.rundir.layout import ATTRIBUTIONS_FILE

    df, y2, _, _ = data
    pipe = fitted("xgboost", df, y2, "binary", {"n_estimators": 30, "max_depth": 3})
    assert write_attribution_baseline(str(tmp_path), {}, bundle(pipe, "binary", ["no", "yes"]), df[FEATURES],
                                      deadline=time.time() - 1.0)
    doc = json.loads((tmp_path / ATTRIBUTIONS_FILE).read_text())
    # ~30 ms a call and well under 1 ms a row: the grace's 0.5 s covers the 240 rows (timing noise of
    # the probe, e.g. XGBoost's threads spinning, may trim a few; never under the minimum)
    assert doc["exact"] and EXACT_MIN_ROWS <= doc["n_rows"] <= len(df)


def test_other_models_get_the_agnostic_estimate_whose_additivity_is_exact(data):
    df, y2, _, rows = data
    pipe = fitted("knn", df, y2, "binary", {"n_neighbors": 7}, scale="standard")
    explainer = Explainer(bundle(pipe, "binary", ["no", "yes"]), background=df[FEATURES])
    c = explainer.contributions(rows.iloc[:5])
    assert not c.exact and c.space == "probability" and c.method.startswith("permutation sampling")
    np.testing.assert_allclose(c.output(), pipe.predict_proba(rows.iloc[:5]), rtol=0, atol=1e-9)
    # the same rows explained one at a time or together: the same values (permutations fixed by the seed)
    alone = explainer.contributions(rows.iloc[2:3])
    np.testing.assert_allclose(alone.values[0], c.values[2], atol=1e-12)
    with pytest.raises(ExplainError, match="background"):
        Explainer(bundle(pipe, "binary", ["no", "yes"])).contributions(rows.iloc[:1])


def test_agnostic_estimate_is_exact_for_a_model_additive_in_its_inputs(data):
    """A ridge model on per-column processing is additive in the input columns: every order of the
    permutation estimate gives the exact Shapley values, coef * (x - background mean)."""
    from automl.explain.agnostic import permutation_shap

    df, _, _, rows = data
    y = 2.0 * df["x1"].to_numpy() - 0.5 * df["x2"].fillna(5).to_numpy() + (df["color"] == "red")
    pipe = fitted("linear", df, y, "regression", scale="standard")
    background = df[FEATURES].iloc[:16]
    exact = Explainer(bundle(pipe, "regression"), background=background).contributions(rows)
    values, base = permutation_shap(lambda f: pipe.predict(f).reshape(-1, 1), rows, background, FEATURES)
    np.testing.assert_allclose(values, exact.values, atol=1e-9)
    np.testing.assert_allclose(base, exact.base, atol=1e-9)


def test_run_explain_on_a_finished_run(tiny_run):
    rows = make_binary_frame(30, seed=5)
    table = tiny_run.explain(rows)
    features = list(tiny_run.model.feature_columns)
    assert list(table.columns) == features + [BASE_COLUMN, CLASS_COLUMN] and len(table) == 30
    assert table.index.equals(rows.index)
    assert table.attrs["space"] in ("margin", "probability") and table.attrs["method"]
    assert (table[CLASS_COLUMN] == tiny_run.model.positive_class).all()
    # an unknown class is a one-line error naming the classes
    with pytest.raises(ExplainError, match="'maybe' is not a class of the model; classes: "):
        tiny_run.explain(rows, target_class="maybe")
    # the fit wrote the attribution baseline of the same model
    import json

    doc = json.loads((Path(tiny_run.run_dir) / "baseline" / "attributions.json").read_text())
    assert set(doc["features"]) == set(features) and doc["trial_id"] == str(tiny_run.model.trial_id)
    assert doc["n_rows"] > 0 and doc["method"] == table.attrs["method"]


def test_the_candidate_notebook_reproduces_the_explanations(tiny_run, monkeypatch):
    """The notebook's explain cell, run in the finished run folder as a user runs it."""
    import matplotlib
    import nbformat

    matplotlib.use("Agg")
    nb = nbformat.read(Path(tiny_run.run_dir) / "candidate_definitions.ipynb", as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "run.explain(" in c.source]
    assert len(cells) == 1
    monkeypatch.chdir(tiny_run.run_dir)
    shown: list = []
    ns = {"df": pd.read_parquet("data/train.parquet"), "summary": dict(tiny_run.summary), "display": shown.append}
    exec(compile(cells[0], "explain-cell", "exec"), ns)  # noqa: S102 - the notebook's own cell
    assert BASE_COLUMN in shown[0].columns and len(shown[0]) == 5


@pytest.mark.slow
def test_report_shows_the_shap_summary_in_headless_chromium(tiny_run, chromium):
    from automl.report import REPORT_FILE

    page = Path(tiny_run.run_dir) / REPORT_FILE
    assert ">Explanations</h2>" in page.read_text()
    dt = chromium
    for domain in ("Runtime", "Log", "Page"):
        dt.call(f"{domain}.enable")
    dt.call("Page.navigate", url=page.as_uri())
    dt.wait_event("Page.loadEventFired")
    plots = dt.evaluate("""Array.from(document.querySelectorAll('#explanations img.plot')).map(function(i){
        var r=i.getBoundingClientRect();
        return {alt:i.alt, complete:i.complete, nw:i.naturalWidth, w:r.width, h:r.height};})""")
    alts = [p["alt"] for p in plots]
    assert alts[0] == "shap summary" and "local explanation 1" in alts, alts
    for p in plots:
        assert p["complete"] and p["nw"] > 0 and p["w"] > 0 and p["h"] > 0, p
    caption = dt.evaluate("document.querySelector('#explanations figcaption').textContent")
    assert "Mean |contribution|" in caption and "training rows" in caption
    assert dt.errors() == []


from test_report import chromium  # noqa: E402,F401 - the headless Chromium fixture of the report test
