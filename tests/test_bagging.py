"""Bagged fold models (selection/bagging.py): the k fold models of a trial, averaged, as the final model."""
import json
import time

import numpy as np
import pandas as pd
import pytest

from automl.candidates.generate import Candidate
from automl.ensemble import BaggedModel, WeightedEnsemble
from automl.search.trial import TrialContext, evaluate, make_folds
from automl.selection.bagging import bag_within, choose_kind

XGB = Candidate("dpp1-xgboost", "xgboost", {"categorical": "onehot"}, {"params": {}, "fixed": {}})


def _binary_ctx(tmp_path, n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y", "z"], n)})
    y = ((X["a"] + (X["c"] == "x") + rng.normal(scale=0.7, size=n)) > 0.5).astype(int).to_numpy()
    return TrialContext(X=X, y=y, folds=make_folds(y, "binary", 4, 50_000, 0.2, seed),
                        column_types={"a": "numeric", "b": "numeric", "c": "categorical"},
                        candidates={XGB.name: XGB}, problem_type="binary", metric="auc", n_classes=2,
                        seed=seed, output_dir=str(tmp_path))


PARAMS = {"model.n_estimators": 300, "model.learning_rate": 0.1, "model.max_depth": 3}


def test_bagged_prediction_is_the_mean_of_its_fold_models(tmp_path):
    ctx = _binary_ctx(tmp_path)
    bags = bag_within(ctx, [(XGB.name, PARAMS)], [1.0], time.time() + 60, workers=2)
    model, _ = bags[0]
    assert isinstance(model, BaggedModel) and len(model.estimators) == len(ctx.folds)
    X = ctx.X.iloc[:50]
    folds = np.stack([est.predict_proba(X) for est in model.estimators])
    assert np.array_equal(model.predict_proba(X), np.mean(folds, axis=0))
    assert np.array_equal(model.predict(X), np.argmax(np.mean(folds, axis=0), axis=1))
    assert list(model.classes_) == [0, 1]
    # the fold models differ (each saw other rows): the mean is not any one of them
    assert not np.allclose(folds[0], folds[1])


def test_bagged_regression_is_the_mean_of_its_fold_values():
    from test_rerank import KNN, _regression_ctx

    ctx = _regression_ctx(n=200)
    bags = bag_within(ctx, [(KNN.name, {"model.n_neighbors": 5, "model.weights": "uniform"})], [0.1],
                      time.time() + 60, workers=1)
    model, oof = bags[0]
    X = ctx.X.iloc[:30]
    assert np.array_equal(model.predict(X), np.mean([e.predict(X) for e in model.estimators], axis=0))
    assert not np.isnan(oof).any()


def test_bagged_oof_is_the_fold_models_on_their_validation_rows_and_matches_the_trial(tmp_path):
    ctx = _binary_ctx(tmp_path)
    config = {"candidate": XGB.name, **{f"{XGB.name}:{k}": v for k, v in PARAMS.items()}}
    res = evaluate(config, ctx, trial_id="t0")
    assert res["status"] == "completed", res
    params = json.loads(res["params_json"])
    model, oof = bag_within(ctx, [(XGB.name, params)], [res["fit_s"]], time.time() + 60, workers=2)[0]
    for est, (_, va) in zip(model.estimators, ctx.folds):
        assert np.array_equal(oof[va], est.predict_proba(ctx.X.iloc[va]))
    # the same models as the trial's folds: its saved OOF (float32) is these predictions, rounded
    saved = np.load(tmp_path / "trials" / "t0" / "oof.npy")
    np.testing.assert_allclose(oof, saved, atol=1e-6)


def test_bag_within_keeps_only_configurations_whose_folds_all_finish(tmp_path):
    ctx = _binary_ctx(tmp_path)
    # past the deadline only the first item (fold 0 of the first) runs: no configuration has all its folds
    bags = bag_within(ctx, [(XGB.name, PARAMS), (XGB.name, PARAMS)], [1.0, 1.0], time.time() - 1, workers=1)
    assert bags == {}


def test_auto_bags_when_it_fits_in_the_time_left_and_refits_otherwise(tmp_path):
    ctx = _binary_ctx(tmp_path)
    assert choose_kind("auto", ctx, [2.0, 3.0], seconds_left=30.0, workers=2)[0] == "bagged"
    kind, why = choose_kind("auto", ctx, [20.0, 30.0], seconds_left=10.0, workers=2)
    assert kind == "refit" and "more than" in why
    assert choose_kind("refit", ctx, [0.1], 100.0, 2)[0] == "refit"
    assert choose_kind("bagged", ctx, [1e4], 1.0, 2)[0] == "bagged"
    ctx.folds = ctx.folds[:1]  # a holdout split: one fold model, trained on part of the rows
    assert choose_kind("bagged", ctx, [0.1], 100.0, 2)[0] == "refit"


def test_finalize_bags_the_ensemble_and_weighs_it_on_the_bagged_models_oof(tmp_path):
    from automl.finalize import finalize
    from automl.metrics import objective_score
    from automl.problem import ProblemInfo
    from automl.runner import _leaderboard
    from automl.selection import SelectSpec

    from test_rerank import KNN, _regression_ctx

    ctx = _regression_ctx(n=300)
    ctx.output_dir = str(tmp_path)
    rows = []
    for i, k in enumerate([1, 3, 8, 25]):
        config = {"candidate": KNN.name, f"{KNN.name}:model.n_neighbors": k, f"{KNN.name}:model.weights": "uniform"}
        rows.append({**evaluate(config, ctx, trial_id=f"t{i}"), "trial_id": f"t{i}", "config": config})
    info = ProblemInfo("regression", "rmse", False, "test")
    lb = _leaderboard(rows, ctx.candidates, info)
    spec = SelectSpec(final_model="bagged", gate="score")
    model, chosen, _, out = finalize(ctx, lb, rows, info, time.time() + 60, str(tmp_path), {}, select=spec)
    assert chosen["final_model"]["kind"] == "bagged"
    members = model.estimators if isinstance(model, WeightedEnsemble) and not isinstance(model, BaggedModel) \
        else [model]
    assert all(isinstance(m, BaggedModel) for m in members)
    assert chosen["trial_id"] == "ensemble" and len(members) >= 2
    # the weights were chosen on the members' fold models' own OOF predictions: the recorded score is
    # exactly the blend of those predictions
    oof = np.zeros(len(ctx.y))
    for bag, w in zip(members, model.weights):
        for est, (_, va) in zip(bag.estimators, ctx.folds):
            oof[va] += w * est.predict(ctx.X.iloc[va])
    assert chosen["score"] == pytest.approx(objective_score("regression", "rmse", 1, ctx.y, oof), rel=1e-12)
    assert out.iloc[0]["trial_id"] == "ensemble"


@pytest.mark.slow
def test_a_bagged_run_saves_without_pickle_and_its_endpoint_answers_as_predict(tmp_path):
    """A real fit with select.final_model=bagged: model.skops (BaggedModel is a trusted type), summary.json
    says why, and a served request through the fast path gives the saved model's probabilities."""
    import threading

    import requests
    import uvicorn

    import automl
    from automl.serving.app import create_app
    from automl.serving.server import load_endpoint, serve_options
    from conftest import free_port, make_binary_frame

    # 40 s: after OpenMP ran in this pytest process the search goes to Ray (4-6 s to start), and at
    # 25 s its 7-8 s left sometimes finished no trial (the fallback then refits); max_trials ends it early
    run = automl.fit(make_binary_frame(300), target="y", output_dir=str(tmp_path / "run"),
                     budget={"max_trials": 6, "time_limit_s": 40}, search={"executor": "local"},
                     select={"final_model": "bagged"},
                     candidates={"dpp2-mlp": {"enabled": False}, "dpp5-svm": {"enabled": False}})
    assert (tmp_path / "run" / "model.skops").exists()
    best = json.loads((tmp_path / "run" / "summary.json").read_text())["best"]
    assert best["final_model"]["kind"] == "bagged" and best["final_model"]["reason"] == "select.final_model=bagged"
    bundle = run.model
    assert isinstance(bundle.pipeline, WeightedEnsemble)  # a BaggedModel, or an ensemble of them
    endpoint = load_endpoint(serve_options([f"run_dir={tmp_path / 'run'}",
                                            "response_keys=[predicted_label,probabilities]"]))
    fast = endpoint.predictor._fast.pipeline
    outer = fast.groups() if not isinstance(bundle.pipeline, BaggedModel) else [(None, [(0, fast)])]
    for _, members in outer:  # every fold pipeline of every bagged model is on the fast path
        for _, bag in members:
            assert all(pre is not None for pre, _ in bag.groups())
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(endpoint), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        rows = make_binary_frame(20, seed=5)[["x1", "x2", "color"]]
        res = requests.post(f"{url}/invocations", data=rows.to_csv(index=False, header=False),
                            headers={"Content-Type": "text/csv"}, timeout=30)
        assert res.status_code == 200, res.text
        got = [p["probabilities"] for p in res.json()["predictions"]]
        np.testing.assert_allclose(got, bundle.predict_proba(rows).to_numpy(), rtol=1e-12)
    finally:
        srv.should_exit = True
        thread.join(15)
