"""Re-ranking the search's best configurations on more cross-validation splits (search/rerank.py)."""
import json
import time

import numpy as np
import pandas as pd
import pytest

from automl.candidates.generate import Candidate
from automl.selection.rerank import RerankSpec, rerank, repeat_folds, score_spread, split_scores
from automl.search.trial import TrialContext, evaluate, make_folds

KNN = Candidate("dpp6-knn", "knn", {"categorical": "onehot", "scale": "standard"}, {"params": {}, "fixed": {}})


def _regression_ctx(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    y = X["a"] * 2 + np.sin(3 * X["b"]) + rng.normal(scale=0.8, size=n)
    return TrialContext(X=X, y=y.to_numpy(), folds=make_folds(y.to_numpy(), "regression", 5, 50_000, 0.2, seed),
                        column_types={c: "numeric" for c in X}, candidates={KNN.name: KNN},
                        problem_type="regression", metric="rmse", seed=seed)


def _row(tid, k, objective, status="completed"):
    return {"trial_id": tid, "candidate": KNN.name, "status": status, "objective": objective, "fit_s": 0.05,
            "params_json": json.dumps({"model.n_neighbors": k, "model.weights": "uniform"})}


def test_split_scores_reproduce_the_trials_score_on_its_own_folds():
    ctx = _regression_ctx()
    res = evaluate({"candidate": KNN.name, f"{KNN.name}:model.n_neighbors": 7,
                    f"{KNN.name}:model.weights": "uniform"}, ctx)
    assert res["status"] == "completed", res
    again = split_scores(ctx, KNN.name, json.loads(res["params_json"]), [ctx.folds])
    assert again == [pytest.approx(res["objective"], rel=1e-9)]
    # New splits are new: same size, other rows in each fold.
    other = repeat_folds(ctx, 2)
    assert len(other) == 2 and all(len(f) == 5 for f in other)
    assert not np.array_equal(other[0][0][1], ctx.folds[0][1])
    assert not np.array_equal(other[0][0][1], other[1][0][1])


def test_rerank_orders_the_plausible_best_by_their_mean_over_more_splits():
    ctx = _regression_ctx()
    # The search's scores say 1-NN (noisy) is best by a hair; on more splits 15-NN is clearly better.
    rows = [_row("a", 1, 0.90), _row("b", 15, 0.91), _row("c", 3, 5.0), _row("d", 2, np.nan, "failed")]
    lb = pd.DataFrame(rows)
    out, done = rerank(ctx, lb, rows, greater_is_better=False, spec=RerankSpec(top=10, repeats=2),
                       until=time.time() + 60, band=0.5)
    assert list(out["trial_id"]) == ["b", "a", "c", "d"]  # c is outside the band: not re-scored, kept below
    assert out.loc[0, "rerank_splits"] == 3 and out.loc[1, "rerank_splits"] == 3
    assert out.loc[0, "rerank_objective"] < out.loc[1, "rerank_objective"]
    assert np.isnan(out.loc[2, "rerank_objective"]) and np.isnan(out.loc[3, "rerank_objective"])
    assert list(out["objective"].iloc[:2]) == [0.91, 0.90]  # the search's scores are kept as they were
    assert done["best_before"] == "a" and done["best_after"] == "b" and done["n_configurations"] == 2


def test_rerank_does_nothing_without_time_or_rivals():
    ctx = _regression_ctx()
    rows = [_row("a", 1, 0.90), _row("b", 15, 0.91)]
    lb = pd.DataFrame(rows)
    spec = RerankSpec(top=10, repeats=2)
    out, done = rerank(ctx, lb, rows, False, spec, until=time.time() - 1.0, band=0.5)
    assert done is None and out is lb  # nothing fits before the deadline: the search's order stands
    out, done = rerank(ctx, lb, rows, False, spec, until=time.time() + 60, band=0.001)
    assert done is None and out is lb  # no other configuration is within the band
    holdout = TrialContext(**{**ctx.__dict__, "folds": make_folds(ctx.y, "regression", 5, 100, 0.2, 0)})
    assert len(holdout.folds) == 1
    assert rerank(holdout, lb, rows, False, spec, time.time() + 60, 0.5)[1] is None  # one holdout: not re-ranked


def test_score_spread_matches_the_binomial_standard_error_for_accuracy():
    rng = np.random.default_rng(0)
    n, p = 2000, 0.9
    y = rng.integers(0, 3, n)
    right = rng.random(n) < p
    pred = np.full((n, 3), 0.1)
    labels = np.where(right, y, (y + 1) % 3)
    pred[np.arange(n), labels] = 0.8
    ctx = TrialContext(X=pd.DataFrame({"x": np.zeros(n)}), y=y, folds=[], column_types={}, candidates={},
                       problem_type="multiclass", metric="accuracy", n_classes=3)
    se = score_spread(ctx, pred, n_boot=200)
    assert se == pytest.approx(np.sqrt(p * (1 - p) / n), rel=0.3)


def test_finalize_refits_the_re_ranked_best_and_says_so(tmp_path):
    """The plumbing: with the ensemble off, finalize re-ranks, refits the new first and reports it."""
    from automl.finalize import finalize
    from automl.problem import ProblemInfo
    from automl.runner import _leaderboard

    ctx = _regression_ctx()
    ctx.output_dir = str(tmp_path)
    rows = []
    for i, k in enumerate([1, 2, 15, 12]):
        config = {"candidate": KNN.name, f"{KNN.name}:model.n_neighbors": k, f"{KNN.name}:model.weights": "uniform"}
        res = evaluate(config, ctx, trial_id=f"t{i}")
        rows.append({**res, "trial_id": f"t{i}", "config": config})
    info = ProblemInfo("regression", "rmse", False, "test")
    lb = _leaderboard(rows, ctx.candidates, info)
    model, chosen, _, out = finalize(ctx, lb, rows, info, time.time() + 60, str(tmp_path), {}, ensemble=False,
                                     rerank_spec=RerankSpec(top=10, repeats=2, seconds=30))
    first = out[out["status"] == "completed"].iloc[0]
    assert chosen["trial_id"] == first["trial_id"] and chosen["rerank"]["n_configurations"] >= 2
    assert chosen["score"] == pytest.approx(first["rerank_objective"])
    assert first["rerank_splits"] == 3
    assert model.steps[-1][1].get_params()["n_neighbors"] in (12, 15)  # the refit is the re-ranked first


def test_rerank_gives_up_at_its_time_limit_when_fits_are_slower_than_estimated():
    """The estimates come from the trials' fit_s; when the fits are slower than that (a loaded core,
    kershaw at 60 s: 9.9 s against a 4.6 s estimate), the re-rank stops at ``until`` after at most
    one more fold, instead of running on into the refit's time."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, 2)), columns=["a", "b"])
    y = (X["a"] > 0).to_numpy().astype(int)
    slow = Candidate("dpp9-slow", "clock_memory_algorithms:slow_per_row", {"categorical": "onehot", "scale": "standard"},
                     {"params": {}, "fixed": {"model.seconds_per_row": 0.0005}})  # 0.16 s a fold of 320 rows
    ctx = TrialContext(X=X, y=y, folds=make_folds(y, "binary", 5, 50_000, 0.2, 0), column_types={c: "numeric" for c in X},
                       candidates={slow.name: slow}, problem_type="binary", metric="auc", n_classes=2, pos_index=1)
    rows = [{"trial_id": t, "candidate": slow.name, "status": "completed", "objective": 0.9, "fit_s": 0.01,
             "params_json": "{}"} for t in ("a", "b")]  # fit_s says 0.01 s; each split really takes 0.8 s
    t0 = time.time()
    out, done = rerank(ctx, pd.DataFrame(rows), rows, True, RerankSpec(top=10, repeats=3), until=t0 + 0.5, band=1.0)
    took = time.time() - t0
    assert done is None  # neither configuration finished its splits in time: the search's order stands
    assert took < 0.5 + 0.6, took  # stopped within about one fold (0.16 s) of the limit, not after 2.4 s
