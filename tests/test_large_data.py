"""Fast checks of the large-data measures (the 1M-row run itself is benchmarks/large_data.py):
the per-fold training-row cap and the compacted feature table."""
from __future__ import annotations

import numpy as np
import pandas as pd

from automl.data.compact import compact_features
from automl.data.types import infer_column_types
from automl.search.sampling import cap_fold_rows
from conftest import make_binary_frame


def test_cap_fold_rows_samples_training_rows_only():
    y = np.array([0] * 900 + [1] * 100)
    idx = np.arange(1000)
    folds = [(idx[:800], idx[800:])]
    rng = np.random.default_rng(0)
    y = rng.permutation(y)
    capped = cap_fold_rows(folds, y, 200, "binary", seed=0)
    tr, va = capped[0]
    assert len(tr) == 200 and set(tr) <= set(idx[:800]) and np.all(np.diff(tr) > 0)
    assert np.array_equal(va, idx[800:])  # every validation row kept
    share = y[tr].mean()
    assert abs(share - y[:800].mean()) < 0.02  # stratified
    assert cap_fold_rows(folds, y, None, "binary", 0) is folds
    assert cap_fold_rows(folds, y, 5000, "binary", 0) is folds
    again = cap_fold_rows(folds, y, 200, "binary", seed=0)
    assert np.array_equal(again[0][0], tr)  # the same sample for every trial


def test_compacted_features_give_the_same_predictions():
    from automl.candidates.generate import Candidate
    from automl.search.trial import build_pipeline

    df = make_binary_frame(400, seed=3)
    df["when"] = pd.date_range("2021-01-01", periods=len(df), freq="D").strftime("%d/%m/%Y")
    X = df.drop(columns=["y", "customer_id"])
    types = infer_column_types(X)
    assert types["when"] == "datetime" and types["color"] == "categorical"
    compact = compact_features(X, types)
    assert isinstance(compact["color"].dtype, pd.CategoricalDtype)
    assert pd.api.types.is_datetime64_any_dtype(compact["when"])
    y = (df["y"] == "yes").astype(int).to_numpy()
    cand = Candidate("dpp1-linear", "linear", {"categorical": "onehot", "scale": "standard"},
                     {"params": {}, "fixed": {}, "portfolio": [{}]})
    on_raw = build_pipeline(cand, {}, types, "binary", 0).fit(X, y)
    on_compact = build_pipeline(cand, {}, types, "binary", 0).fit(compact, y)
    # a model fitted on the compact table predicts raw input exactly like one fitted on raw data
    np.testing.assert_allclose(on_compact.predict_proba(X), on_raw.predict_proba(X), rtol=1e-6, atol=1e-9)
