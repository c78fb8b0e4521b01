"""Sample weights (issue 18, point 1): data.weight_column / data.weights=balanced reach every fit,
every metric, the ensemble gate, the re-rank and the summary; the weight column is never a feature."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.base import clone

from automl.config import compose_config
from automl.errors import ConfigError, DataError
from automl.metrics import METRICS, score_all, tune_threshold
from automl.search.trial import TrialContext, evaluate
from automl.selection.gates import gate
from automl.selection.rerank import RerankSpec, rerank
from automl.stages.plan import plan_candidates
from automl.stages.prepare import prepare

KEEP = ("dpp0-xgboost", "dpp1-linear")
# The fit's trials run in forked workers: no XGBoost there, whose OpenMP pool hangs a child forked
# from a process that has used it (as earlier tests in the session have).
E2E = ("dpp1-linear", "dpp3-random_forest")


def flip_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Two segments that follow different rules. The bulk (80%, weight 1) is linear in twelve
    features: a linear model is right, trees on 480 rows are not. The rest (20%, weight 20) is an
    XOR of two features, which trees learn and a linear model cannot. Unweighted, the linear model
    scores best; weighted, the heavy rows decide and trees win."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n, 12))
    heavy = np.arange(n) % 5 == 0
    linear_rule = X.sum(axis=1) > 0
    xor_rule = (X[:, 0] > 0) ^ (X[:, 1] > 0)
    y = np.where(heavy, xor_rule, linear_rule).astype(int)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(12)])
    df["segment"] = heavy.astype(int)
    df["w"] = np.where(heavy, 20.0, 1.0)
    df["y"] = y
    return df


def _cfg(out=None, *overrides, data=None, **values):
    cands = {name: {"enabled": False} for name in compose_config([]).candidates if name not in KEEP}
    base = ["search.executor=local", "budget.max_trials=6", "budget.time_limit_s=12", "validation.rerank_top=0",
            "search.ensemble=false"] + ([f"output_dir={out}"] if out else [])
    return compose_config(base + list(overrides),
                          values={"data": {"target": "y", "path": "<dataframe>", **(data or {})}, "candidates": cands,
                                  **values})


# --- metrics -------------------------------------------------------------------------------------------------


def _sk_labels(p, pos=1, threshold=None):
    return np.where(p[:, pos] >= threshold, pos, 1 - pos) if threshold is not None else np.argmax(p, axis=1)


def test_every_weighted_metric_equals_scikit_learns_with_sample_weight():
    rng = np.random.default_rng(1)
    n = 300
    w = rng.uniform(0, 5, size=n)
    # binary
    y = rng.integers(0, 2, size=n)
    p1 = np.clip(0.6 * y + 0.4 * rng.uniform(size=n), 0.02, 0.98)
    p = np.column_stack([1 - p1, p1])
    got = score_all("binary", y, p, 1, threshold=0.55, sample_weight=w)
    lab = _sk_labels(p, 1, 0.55)
    want = {"f1": skm.f1_score(y, lab, sample_weight=w), "accuracy": skm.accuracy_score(y, lab, sample_weight=w),
            "auc": skm.roc_auc_score(y, p1, sample_weight=w),
            "balanced_accuracy": skm.balanced_accuracy_score(y, lab, sample_weight=w),
            "precision": skm.precision_score(y, lab, sample_weight=w),
            "recall": skm.recall_score(y, lab, sample_weight=w), "logloss": skm.log_loss(y, p, sample_weight=w)}
    assert got == pytest.approx(want, rel=1e-12)
    assert score_all("binary", y, p, 1, threshold=0.55) != pytest.approx(got)  # the weights matter here
    tied = np.round(p, 1)  # AUC with tied scores counts each tied pair half
    assert METRICS["binary"]["auc"].fn(y, tied, 1, w) == pytest.approx(
        skm.roc_auc_score(y, tied[:, 1], sample_weight=w), rel=1e-12)
    # multiclass
    y = rng.integers(0, 3, size=n)
    p = rng.dirichlet([1, 1, 1], size=n)
    p[np.arange(n), y] += 0.5
    p /= p.sum(axis=1, keepdims=True)
    lab = p.argmax(axis=1)
    got = score_all("multiclass", y, p, sample_weight=w)
    want = {"accuracy": skm.accuracy_score(y, lab, sample_weight=w),
            "balanced_accuracy": skm.balanced_accuracy_score(y, lab, sample_weight=w),
            "f1_macro": skm.f1_score(y, lab, average="macro", sample_weight=w),
            "precision_macro": skm.precision_score(y, lab, average="macro", sample_weight=w),
            "recall_macro": skm.recall_score(y, lab, average="macro", sample_weight=w),
            "logloss": skm.log_loss(y, p, sample_weight=w)}
    assert got == pytest.approx(want, rel=1e-12)
    # regression
    y = rng.normal(size=n)
    pred = y + rng.normal(scale=0.5, size=n)
    got = score_all("regression", y, pred, sample_weight=w)
    mse = skm.mean_squared_error(y, pred, sample_weight=w)
    want = {"mse": mse, "rmse": np.sqrt(mse), "mae": skm.mean_absolute_error(y, pred, sample_weight=w),
            "r2": skm.r2_score(y, pred, sample_weight=w)}
    assert got == pytest.approx(want, rel=1e-12)


def test_the_weighted_threshold_is_the_best_of_every_threshold_by_weighted_f1():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=200)
    s = np.round(np.clip(0.3 * y + 0.7 * rng.uniform(size=200), 0, 1), 2)
    p = np.column_stack([1 - s, s])
    w = np.where(y == 1, 4.0, 1.0) * rng.uniform(0.5, 1.5, size=200)
    threshold, value = tune_threshold(y, p, "f1", 1, w)
    brute = {t: skm.f1_score(y, (s >= t).astype(int), sample_weight=w) for t in np.unique(s)}
    assert value == pytest.approx(max(brute.values()), rel=1e-12)
    assert brute[threshold] == pytest.approx(value, rel=1e-12)


def test_the_gate_scores_with_the_weights():
    """An ensemble better only on heavily weighted rows passes the weighted gate and fails the
    unweighted one."""
    y = np.array([0, 1] * 50)
    base = np.column_stack([1 - y, y]).astype(float)  # right on every row ...
    base[:10] = base[:10, ::-1]  # ... but the first ten
    cand = np.column_stack([1 - y, y]).astype(float)
    cand[10:40] = cand[10:40, ::-1]  # right on the first ten, wrong on thirty others
    w = np.r_[np.full(10, 50.0), np.ones(90)]

    def acc(yy, p, ww=None):
        return float(np.average(p.argmax(axis=1) == yy, weights=ww))

    assert not gate(y, cand, base, acc, True, "accuracy", "score").passed
    assert gate(y, cand, base, acc, True, "accuracy", "score", sample_weight=w).passed
    assert gate(y, cand, base, acc, True, "accuracy", "bootstrap", sample_weight=w).passed


# --- the flip -----------------------------------------------------------------------------------------------


def _ctx(df: pd.DataFrame, weights, cfg=None) -> TrialContext:
    cfg = cfg or _cfg()
    prepared = prepare(cfg, df)
    plan = plan_candidates(cfg, prepared)
    return TrialContext(X=prepared.X[prepared.features], y=prepared.y, folds=prepared.folds,
                        column_types=prepared.feature_types, candidates=plan.by_name, problem_type="binary",
                        metric="accuracy", n_classes=2, weights=weights)


def _trial(ctx: TrialContext, name: str) -> dict:
    row = evaluate({"candidate": name}, ctx)
    assert row["status"] == "completed", row["error"]
    return {**row, "trial_id": name}


def test_weights_flip_which_candidate_scores_best_in_the_trials_and_the_rerank():
    """The same folds and configurations: unweighted the linear model wins, weighted the trees do,
    and the re-rank (more splits, weighted fits and scores) agrees with the search."""
    df = flip_frame()
    plain = _ctx(df.drop(columns="w"), None)
    weighted = _ctx(df.drop(columns="w"), df["w"].to_numpy())
    rows = {k: {c: _trial(ctx, c) for c in KEEP} for k, ctx in (("plain", plain), ("weighted", weighted))}
    assert rows["plain"]["dpp1-linear"]["objective"] > rows["plain"]["dpp0-xgboost"]["objective"] + 0.03
    assert rows["weighted"]["dpp0-xgboost"]["objective"] > rows["weighted"]["dpp1-linear"]["objective"] + 0.1
    for kind, ctx in (("plain", plain), ("weighted", weighted)):
        found = sorted(rows[kind].values(), key=lambda r: -r["objective"])
        lb = pd.DataFrame([{"trial_id": r["trial_id"], "candidate": r["candidate"], "status": "completed",
                            "objective": r["objective"], "fit_s": r["fit_s"]} for r in found])
        reranked, done = rerank(ctx, lb, found, True, RerankSpec(top=2, repeats=1), until=1e12, band=1.0)
        assert done["best_after"] == found[0]["trial_id"]
        # the re-rank's own split (the mean's other half) ranks as the search did: weighted fits and scores
        own = {r.trial_id: 2 * r.rerank_objective - r.objective for r in reranked.itertuples()}
        first, second = found[0]["trial_id"], found[1]["trial_id"]
        assert own[first] > own[second] + (0.1 if kind == "weighted" else 0.02), own


@pytest.mark.slow
def test_a_weighted_fit_chooses_the_model_the_weights_favour_and_records_them(tmp_path):
    import automl
    from automl.rundir.layout import trial_oof_file

    df = flip_frame()
    test = flip_frame(n=400, seed=1)
    test_path = tmp_path / "test.csv"
    test.to_csv(test_path, index=False)
    run = automl.fit(df, "y", output_dir=str(tmp_path / "run"), data__weight_column="w",
                     data__test_path=str(test_path), metric="accuracy", search={"executor": "local", "ensemble": False},
                     budget={"max_trials": 2, "time_limit_s": 25, "trial_time_limit_s": 24},
                     validation={"rerank_top": 0},
                     candidates={n: {"enabled": False} for n in compose_config([]).candidates if n not in E2E})
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    lb = pd.read_csv(tmp_path / "run" / "leaderboard.csv")
    assert s["best"]["candidate"] == "dpp3-random_forest", lb[["candidate", "status", "objective", "error"]].to_string()
    assert "w" not in s["features"] and "w" not in s["column_types"]
    assert s["sample_weights"]["column"] == "w" and s["sample_weights"]["sum"] == pytest.approx(df["w"].sum())
    # the leaderboard's objective is scikit-learn's weighted accuracy of the trial's OOF predictions
    best = lb[lb["status"] == "completed"].iloc[0]
    oof = np.load(tmp_path / "run" / trial_oof_file(best["trial_id"]))
    y = df["y"].to_numpy()
    assert best["objective"] == pytest.approx(skm.accuracy_score(y, oof.argmax(axis=1), sample_weight=df["w"]))
    # the refit of another trial from the run folder (predict/serve trial=ID) uses the same weights
    other = lb[lb["candidate"] == "dpp1-linear"].iloc[0]
    refit = run.trial_model(str(other["trial_id"])).pipeline
    X = df[s["features"]]
    weighted = clone(refit).fit(X, y, model__sample_weight=df["w"].to_numpy())
    assert np.allclose(refit.predict_proba(X), weighted.predict_proba(X))
    assert not np.allclose(refit.predict_proba(X), clone(refit).fit(X, y).predict_proba(X))
    # the test score is weighted by the test table's own weight column
    labels = np.asarray(run.predict(test.drop(columns=["y"]))).astype(int)
    assert s["test_score"] == pytest.approx(skm.accuracy_score(test["y"], labels, sample_weight=test["w"]))


# --- bad input, balanced, skipped candidates ----------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, -1.0, "heavy"])
def test_a_missing_negative_or_non_numeric_weight_is_a_one_line_error(bad):
    df = flip_frame(n=60).astype({"w": object})
    df.loc[7, "w"] = bad
    with pytest.raises(DataError, match=r"data.weight_column 'w': 1 of 60 training rows .*row 7"):
        prepare(_cfg(data={"weight_column": "w"}), df)


def test_a_weight_column_that_is_not_in_the_table_names_the_fix():
    with pytest.raises(DataError, match="data.weight_column 'wt' is not a column"):
        prepare(_cfg(data={"weight_column": "wt"}), flip_frame(n=60))
    with pytest.raises(DataError, match="listed in data.drop"):
        prepare(_cfg(data={"weight_column": "w", "drop": ["w"]}), flip_frame(n=60))


def test_the_weight_column_is_never_a_feature_and_weighs_the_rows():
    df = flip_frame(n=100)
    prepared = prepare(_cfg(data={"weight_column": "w"}), df)
    assert "w" not in prepared.X.columns and "w" not in prepared.features and "w" in prepared.df.columns
    assert np.array_equal(prepared.weights, df["w"].to_numpy())


def test_balanced_weights_give_every_class_the_same_total_weight():
    df = flip_frame(n=100)
    df["y"] = (np.arange(100) % 4 == 0).astype(int)  # 25 vs 75
    prepared = prepare(_cfg(data={"weights": "balanced"}), df)
    w, y = prepared.weights, prepared.y
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum()) and w[y == 1][0] == pytest.approx(2.0)
    assert prepared.weighting.record(w)["class_weights"] == {"0": pytest.approx(2 / 3), "1": pytest.approx(2.0)}


def test_balanced_weights_for_regression_and_conflicting_keys_are_errors():
    with pytest.raises(ConfigError, match="data.weights=balanced weighs classes"):
        _cfg(None, "problem_type=regression", data={"weights": "balanced"})
    df = flip_frame(n=60)
    df["y"] = np.linspace(0, 1, 60)  # inferred regression
    with pytest.raises(ConfigError, match="regression problem"):
        prepare(_cfg(data={"weights": "balanced"}), df)
    with pytest.raises(ConfigError, match="pass only one"):
        _cfg(data={"weights": "balanced", "weight_column": "w"})
    with pytest.raises(ConfigError, match="data.weights must be 'balanced'"):
        _cfg(data={"weights": "yes"})
    with pytest.raises(ConfigError, match="is the target"):
        _cfg(data={"weight_column": "y"})


def test_a_candidate_that_cannot_use_weights_is_skipped_with_its_reason():
    cands = {name: {"enabled": False} for name in compose_config([]).candidates
             if name not in ("dpp1-linear", "dpp6-knn")}
    cfg = compose_config(["search.executor=local"], values={"data": {"target": "y", "path": "<dataframe>",
                                                                     "weight_column": "w"}, "candidates": cands})
    plan = plan_candidates(cfg, prepare(cfg, flip_frame(n=100)))
    assert [c.name for c in plan.candidates] == ["dpp1-linear"]
    assert "KNeighborsClassifier.fit takes no sample_weight" in plan.skipped["dpp6-knn"]
    unweighted = compose_config(["search.executor=local"], values={"data": {"target": "y", "path": "<dataframe>"},
                                                                   "candidates": cands})
    assert "dpp6-knn" in plan_candidates(unweighted, prepare(unweighted, flip_frame(n=100))).by_name
