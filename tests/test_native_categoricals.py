"""processing.categorical: native: CatBoost gets the categoricals' strings and splits on them itself
(issue 16: "CatBoost handles categorical columns natively"); before, it only saw ordinal codes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from automl.candidates.candidate import Candidate
from automl.candidates.pipeline import build_pipeline, predict_matrix
from automl.errors import ConfigError
from automl.explain import BASE_COLUMN, Explainer
from automl.model import ModelBundle
from automl.rundir.modelfile import dump_model, load_model_bytes
from automl.search.trial import fit_fold

pytest.importorskip("catboost")

TYPES = {"x1": "numeric", "city": "categorical", "x2": "numeric", "plan": "categorical"}
NATIVE = Candidate("dpp8-catboost", "catboost", {"categorical": "native", "scale": "none"},
                   {"params": {}, "fixed": {"model.n_estimators": 200}})


def _frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    city = rng.choice([f"c{i}" for i in range(40)], n)  # many levels: only the category says who is positive
    df = pd.DataFrame({"x1": rng.normal(size=n), "city": city, "x2": rng.normal(size=n),
                       "plan": rng.choice(["a", "b", None], n)})
    y = ((np.isin(city, [f"c{i}" for i in range(0, 40, 3)]) * 2 + df["x1"] + rng.normal(scale=0.5, size=n)) > 1)
    return df, y.astype(int).to_numpy()


def test_the_categoricals_reach_catboost_as_strings_in_the_first_columns():
    df, y = _frame()
    pipe = build_pipeline(NATIVE, {}, TYPES, "binary", 0)
    assert pipe.steps[-1][1].get_params()["cat_features"] == (0, 1)
    clone(pipe)  # scikit-learn can clone it (CatBoost copies a list, which clone refuses)
    fitted, rounds = fit_fold(pipe, "catboost", df.iloc[:300], y[:300], df.iloc[300:], y[300:])
    Xt = fitted[:-1].transform(df.iloc[:3])
    assert [type(v) for v in Xt[0, :2]] == [str, str] and rounds > 0
    assert list(fitted.steps[-1][1].get_cat_feature_indices()) == [0, 1]
    unseen = df.iloc[:2].assign(city=["nowhere", None])  # a new level and a missing one
    assert np.isfinite(predict_matrix(fitted, unseen, "binary", 2)).all()


def test_a_native_model_saves_loads_and_is_explained_in_its_input_columns_exactly():
    df, y = _frame()
    pipe = build_pipeline(NATIVE, {"model.n_estimators": 60}, TYPES, "binary", 0).fit(df, y)
    again = load_model_bytes(dump_model(pipe), "model.skops")
    np.testing.assert_array_equal(again.predict_proba(df.iloc[:50]), pipe.predict_proba(df.iloc[:50]))
    bundle = ModelBundle(pipeline=pipe, problem_type="binary", target="y", feature_columns=list(TYPES),
                         column_types=TYPES, classes=[0, 1], positive_class=1)
    table = Explainer(bundle).frame(df.iloc[:20])
    raw = pipe.steps[-1][1].predict(pipe[:-1].transform(df.iloc[:20]), prediction_type="RawFormulaVal")
    np.testing.assert_allclose(table[BASE_COLUMN] + table[list(TYPES)].sum(axis=1), raw, rtol=0, atol=1e-6)


def test_native_categoricals_for_an_algorithm_without_them_is_one_line():
    xgb = Candidate("dpp0-xgboost", "xgboost", {"categorical": "native"}, {"params": {}, "fixed": {}})
    with pytest.raises(ConfigError, match="categorical=native needs an algorithm that splits on categories"):
        build_pipeline(xgb, {}, TYPES, "binary", 0)
