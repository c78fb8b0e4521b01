"""Data analysis: summary, target, columns, prediction power and the insights it must raise."""
from __future__ import annotations

import numpy as np
import pandas as pd

from automl import analysis
from automl.analysis.insights import disguised_missing
from automl.data.types import infer_column_types


def planted_frame(n: int = 400, seed: int = 1) -> pd.DataFrame:
    """A binary problem with a leak (target copy, 1% flipped), an ID column and -999 as 'missing'."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(0, 10, size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    y = np.where(1.5 * x1 - 0.3 * x2 + rng.normal(scale=0.5, size=n) > -1.5, "yes", "no")
    leak = y.copy()
    flip = rng.choice(n, n // 100, replace=False)
    leak[flip] = np.where(leak[flip] == "yes", "no", "yes")
    x3 = rng.uniform(0, 100, size=n)
    x3[rng.choice(n, 20, replace=False)] = -999
    return pd.DataFrame({"row_id": np.arange(5000, 5000 + n), "x1": x1, "x2": x2, "x3": x3, "color": color,
                         "leak": leak, "y": y})


def _types(df, target):
    return infer_column_types(df.drop(columns=[target]))


def test_planted_leak_id_and_disguised_missing_are_flagged():
    df = planted_frame()
    types = _types(df, "y")
    power = analysis.prediction_power(df, "y", "binary", types)
    assert power.between(0, 1).all()
    assert power.index[0] == "leak" and power["leak"] >= 0.95
    assert power["x1"] > power["color"]  # the real signal ranks above noise
    ins = analysis.find_insights(df, "y", "binary", types, power)
    flagged = {(r.issue, r.columns) for r in ins.itertuples()}
    assert ("possible target leakage", "leak") in flagged
    assert ("ID-like column", "row_id") in flagged
    assert ("number disguised as missing", "x3") in flagged
    assert not any(col in ("x1", "x2", "color") for _, col in flagged)
    leak_row = ins[ins["issue"] == "possible target leakage"].iloc[0]
    assert leak_row["severity"] == "high" and "data.drop" in leak_row["action"]
    assert list(ins["severity"]) == sorted(ins["severity"], key=["high", "medium", "low"].index)


def test_disguised_missing_needs_a_value_far_outside_the_rest():
    rng = np.random.default_rng(0)
    age = pd.Series(rng.integers(18, 90, 500).astype(float))
    assert disguised_missing(age) is None
    age[:10] = 999
    assert disguised_missing(age) == (999.0, 10)
    # 999 inside the normal range of a column is a real value, not a code for "unknown"
    big = pd.Series(rng.uniform(0, 5000, 500))
    big[:10] = 999
    assert disguised_missing(big) is None


def test_regression_target_duplicates_constant_and_rare_categories():
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({"x": rng.normal(size=n), "k": 1,
                       "c": ["a"] * 150 + ["b"] * 145 + ["r1", "r2", "r3", "r4", "r5"]})
    df["t"] = np.exp(2.5 * rng.normal(size=n))
    df = pd.concat([df, df.iloc[:40]], ignore_index=True)
    types = _types(df, "t")
    a = analysis.analyse(df, "t", "regression", "real-valued", types)
    issues = set(a.insights["issue"])
    assert {"skewed or heavy-tailed target", "duplicate rows", "constant column", "rare categories"} <= issues
    assert "skew" in a.target.stats and a.target.stats["skew"] > 1
    assert a.summary.loc["duplicate rows", "value"].startswith("40 ")
    assert set(a.columns.loc["x", ["type", "missing %", "distinct", "mean", "median"]].index) == {
        "type", "missing %", "distinct", "mean", "median"}


def test_classification_target_and_too_few_rows_per_class():
    rng = np.random.default_rng(0)
    y = np.array(["a"] * 200 + ["b"] * 90 + ["c"] * 3)
    df = pd.DataFrame({"x": rng.normal(size=len(y)), "y": y})
    a = analysis.analyse(df, "y", "multiclass")
    assert list(a.target.table.index) == ["a", "b", "c"]
    assert a.target.table["rows"].tolist() == [200, 90, 3]
    few = a.insights[a.insights["issue"] == "too few rows per class"]
    assert len(few) == 1 and few.iloc[0]["severity"] == "high"
    assert "imbalanced classes" in set(a.insights["issue"])


def test_summary_counts_types_and_missing():
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0] * 10, "b": list("xyzw") * 10, "y": [0, 1] * 20})
    s = analysis.dataset_summary(df, "y", "binary", "two values")
    assert s.loc["rows", "value"] == "40"
    assert s.loc["missing cells", "value"] == "12.5%"
    assert s.loc["numeric columns", "value"] == "1" and s.loc["categorical columns", "value"] == "1"
    assert s.loc["why", "value"] == "two values"


def test_prediction_power_subsamples_large_data():
    n_rows = 12_000  # above prediction_power's 5,000-row sample
    rng = np.random.default_rng(0)
    x = rng.normal(size=n_rows)
    df = pd.DataFrame({"x": x, "noise": rng.normal(size=n_rows), "y": 3 * x + rng.normal(scale=0.1, size=n_rows)})
    power = analysis.prediction_power(df, "y", "regression", {"x": "numeric", "noise": "numeric"})
    assert power["x"] > 0.9 and power["noise"] < 0.05
    corr = analysis.top_correlations(df, power, {"x": "numeric", "noise": "numeric"})
    assert corr.shape == (2, 2)
