"""``preprocess.scale=spline``: a linear model on a standardised term plus a B-spline basis per
numeric column (an additive model). It must fit a curve a straight line cannot, keep flags linear,
stay flat outside the training range, explain exactly in input columns and save to the trusted
model file."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import cross_val_score

from automl.candidates.candidate import Candidate
from automl.candidates.processing import SplineExpand
from automl.explain import BASE_COLUMN, Explainer
from automl.model import ModelBundle
from automl.rundir.modelfile import dump_model, load_model_bytes, untrusted_types
from automl.search.trial import build_pipeline

TYPES = {"x": "numeric", "flag": "numeric", "color": "categorical"}
FEATURES = list(TYPES)
LINEAR = Candidate("dpp1-linear", "linear", {"categorical": "onehot", "scale": "standard"}, {})


def frame(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, n)
    flag = rng.integers(0, 2, n).astype(float)
    color = rng.choice(["red", "blue"], n)
    y = x ** 2 + 0.5 * flag + (color == "red") + rng.normal(scale=0.3, size=n)  # a bend no line fits
    X = pd.DataFrame({"x": x, "flag": flag, "color": color})
    X.loc[rng.choice(n, 10, replace=False), "x"] = np.nan
    return X, y


def pipeline(scale: str):
    return build_pipeline(LINEAR, {"model.alpha": 0.1, "preprocess.scale": scale}, TYPES, "regression", 0)


def test_the_spline_basis_fits_a_curve_that_standard_scaling_cannot():
    X, y = frame()
    r2 = {s: cross_val_score(pipeline(s), X, y, cv=5, scoring="r2").mean() for s in ("standard", "spline")}
    assert r2["standard"] < 0.3 < 0.9 < r2["spline"], r2


def test_flags_keep_only_the_linear_term_and_new_extremes_are_flat():
    rng = np.random.default_rng(1)
    X = np.c_[rng.normal(size=300), rng.integers(0, 2, 300), np.full(300, 4.0)]
    t = SplineExpand().fit(X)
    assert t.spline_columns_ == [0]  # the flag and the constant column get no basis
    Z = t.transform(X)
    assert Z.shape == (300, 3 + 7) and list(t.input_index_) == [0, 1, 2] + [0] * 7
    np.testing.assert_allclose(Z[:, :3], (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1))
    np.testing.assert_allclose(Z[:, 3:].sum(axis=1), 1.0)  # a partition of unity inside the range
    edge = np.array([[X[:, 0].max(), 0, 4.0], [X[:, 0].max() + 50, 0, 4.0]])
    basis = t.transform(edge)[:, 3:]
    np.testing.assert_allclose(basis[1], basis[0])  # constant beyond the last knot: no blow-up


def test_a_spline_model_is_explained_exactly_in_its_input_columns():
    X, y = frame()
    pipe = pipeline("spline").fit(X, y)
    model = ModelBundle(pipeline=pipe, problem_type="regression", target="y", feature_columns=FEATURES,
                        column_types=TYPES, classes=[], positive_class=None)
    rows = X.iloc[:30]
    table = Explainer(model, background=X.iloc[100:300]).frame(rows)
    assert table.attrs["method"].startswith("exact (linear")
    assert list(table.columns) == FEATURES + [BASE_COLUMN]
    np.testing.assert_allclose(table[BASE_COLUMN] + table[FEATURES].sum(axis=1), pipe.predict(rows), atol=1e-8)
    assert table["x"].abs().mean() > 3 * table["flag"].abs().mean()  # the curve's column carries the most


def test_a_spline_model_saves_to_the_trusted_model_file_and_predicts_the_same():
    X, y = frame()
    pipe = pipeline("spline").fit(X, y)
    data = dump_model(pipe)
    assert untrusted_types(data) == []  # knots only: no scipy BSpline objects in the file
    loaded = load_model_bytes(data, "test")
    np.testing.assert_allclose(loaded.predict(X), pipe.predict(X), rtol=1e-12)


def test_a_basis_too_large_for_memory_is_refused_at_fit_with_the_reason(monkeypatch):
    monkeypatch.setattr(SplineExpand, "max_cells", 1000)
    X = np.random.default_rng(2).normal(size=(200, 2))
    with pytest.raises(ValueError, match="spline basis would hold 3,200 values.*preprocess.scale=standard"):
        SplineExpand().fit(X)
