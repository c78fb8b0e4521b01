"""Stacking (selection/stacking.py): a second level fitted on the members' out-of-fold predictions only."""
import time

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge

from automl.ensemble import StackedModel, stack_features
from automl.search.trial import TrialContext, evaluate, make_folds
from automl.selection.stacking import fit_stack


def _binary_oofs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    outs = []
    for scale in (1.0, 2.0):
        s = 1 / (1 + np.exp(-(y * 1.5 - 0.75 + rng.normal(scale=scale, size=n))))
        outs.append(np.c_[1 - s, s])
    return y, outs


def test_the_stack_is_cross_fitted_and_its_final_level_fitted_on_the_oof_rows_only():
    y, oofs = _binary_oofs()
    model2, crossfit, folds = fit_stack(oofs, y, "binary", 2, seed=0)
    Z = stack_features(oofs, "binary")
    # the final level: exactly a logistic regression on the OOF predictions' features
    ref = LogisticRegression(C=1.0, max_iter=1000, random_state=0).fit(Z, y)
    assert np.array_equal(model2.coef_, ref.coef_) and np.array_equal(model2.intercept_, ref.intercept_)
    # each row's stack prediction comes from a level-2 model that never saw that row
    seen = np.zeros(len(y), dtype=int)
    for tr, va in folds:
        assert not set(tr) & set(va)
        part = LogisticRegression(C=1.0, max_iter=1000, random_state=0).fit(Z[tr], y[tr])
        assert np.array_equal(crossfit[va], part.predict_proba(Z[va]))
        seen[va] += 1
    assert (seen == 1).all()


def _linear_ctx(tmp_path, n=300, seed=0):
    from test_rerank import KNN

    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    y = (3 * X["a"] + rng.normal(scale=0.3, size=n)).to_numpy()
    return TrialContext(X=X, y=y, folds=make_folds(y, "regression", 5, 50_000, 0.2, seed),
                        column_types={c: "numeric" for c in X}, candidates={KNN.name: KNN},
                        problem_type="regression", metric="rmse", seed=seed, output_dir=str(tmp_path)), KNN


def test_finalize_stacks_bagged_members_on_their_out_of_fold_predictions_only(tmp_path):
    """KNN members shrink a linear target towards its mean; a ridge second level undoes that, which a
    convex Caruana blend cannot. The kept stack's ridge must be the one fitted on the bagged members'
    OOF predictions (each fold model on its validation rows): fitted on their in-fold predictions
    (the bagged models on the training rows) it would differ."""
    from automl.finalize import finalize
    from automl.problem import ProblemInfo
    from automl.runner import _leaderboard
    from automl.selection import SelectSpec

    ctx, knn = _linear_ctx(tmp_path)
    rows = []
    for i, k in enumerate([2, 10, 40]):
        config = {"candidate": knn.name, f"{knn.name}:model.n_neighbors": k, f"{knn.name}:model.weights": "uniform"}
        rows.append({**evaluate(config, ctx, trial_id=f"t{i}"), "trial_id": f"t{i}", "config": config})
    info = ProblemInfo("regression", "rmse", False, "test")
    lb = _leaderboard(rows, ctx.candidates, info)
    spec = SelectSpec(final_model="bagged", gate="score", stack=True)
    model, chosen, _, out = finalize(ctx, lb, rows, info, time.time() + 60, str(tmp_path), {}, select=spec)
    assert chosen["final_model"]["stack"]["kept"] and chosen["final_model"]["kind"] == "bagged+stack"
    assert isinstance(model, StackedModel)
    oof_cols, infold_cols = [], []
    for bag in model.estimators:
        col = np.zeros(len(ctx.y))
        for est, (_, va) in zip(bag.estimators, ctx.folds):
            col[va] = est.predict(ctx.X.iloc[va])
        oof_cols.append(col)
        infold_cols.append(bag.predict(ctx.X))
    ref = Ridge(alpha=1.0).fit(np.column_stack(oof_cols), ctx.y)
    leak = Ridge(alpha=1.0).fit(np.column_stack(infold_cols), ctx.y)
    np.testing.assert_allclose(model.final_estimator.coef_, ref.coef_, rtol=1e-10)
    assert not np.allclose(model.final_estimator.coef_, leak.coef_, rtol=1e-3)
    # the stack beat the level-1 ensemble on cross-fitted OOF rows, and its prediction is the ridge's
    assert chosen["final_model"]["stack"]["gain"] > 0 and out.iloc[0]["trial_id"] == "ensemble"
    X = ctx.X.iloc[:20]
    expected = model.final_estimator.predict(np.column_stack([b.predict(X) for b in model.estimators]))
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-12)
