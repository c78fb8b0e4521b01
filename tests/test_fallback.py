"""No trial finished (issue 16, a defect seen under load): the fit ends with a model anyway, marked
in summary.json: the configuration of the trial with the best score on the folds it finished, or,
when no trial finished a fold, the cheapest candidate's default configuration; when every trial
failed with an error, the run still fails with the commonest cause."""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from conftest import automl_cli
from automl.candidates.generate import Candidate
from automl.errors import SearchError
from automl.search.trial import TrialContext, evaluate, make_folds
from automl.selection.fallback import fallback_row
from automl.stages.search import no_trial_finished

XGB = Candidate("dpp0-xgboost", "xgboost", {"categorical": "ordinal"}, {"params": {}, "fixed": {}})
LINEAR = Candidate("dpp1-linear", "linear", {"categorical": "onehot", "scale": "standard"},
                   {"params": {}, "fixed": {}, "portfolio": []})


@pytest.mark.slow
def test_every_trial_stopped_by_its_time_limit_still_ends_with_a_model(tmp_path, binary_frame):
    """budget.trial_time_limit_s=0.01: no trial can finish one cross-validation (before this
    change: "all 4 trial(s) failed; commonest cause: trial would exceed its time limit")."""
    import automl

    binary_frame.to_csv(tmp_path / "train.csv", index=False)
    res = automl_cli("fit", f"data.path={tmp_path}/train.csv", "data.target=y", f"output_dir={tmp_path}/run",
                     "data.test_fraction=0.25", "budget.time_limit_s=20", "budget.max_trials=4",
                     "budget.trial_time_limit_s=0.01", "search.executor=local", cwd=str(tmp_path))
    err = res.stderr
    assert res.returncode == 0, err[-3000:]
    assert "no trial finished within the search budget (0 completed, 4 stopped, 0 failed)" in err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["fallback"] is True and summary["best"]["fallback"] is True
    assert summary["best"]["trial_id"] == "fallback"
    assert summary["best"]["score"] is None and summary["n_trials"] == 4 and summary["n_trials_timeout"] == 4
    assert summary["test_score"] > 0.6  # a real model on the held-out rows
    lb = pd.read_csv(tmp_path / "run" / "leaderboard.csv")
    assert lb.iloc[0]["trial_id"] == "fallback" and lb.iloc[0]["status"] == "fallback"
    # a trial that finished its first fold before the limit stopped it has a score there: the
    # fallback is the best of those; the others (killed inside their first fold) have none
    partial = lb[(lb["status"] == "timeout") & (lb["partial_folds"] >= 1)]
    assert partial["partial_objective"].notna().all()
    assert lb.loc[lb["partial_folds"] == 0, "partial_objective"].isna().all()
    if len(partial):
        best = partial.loc[partial["partial_objective"].idxmax()]
        assert summary["best"]["candidate"] == best["candidate"]
        assert f"trial {best['trial_id']}'s configuration" in err
    else:
        assert summary["best"]["candidate"] == "dpp1-linear" and "default configuration" in err
    run = automl.load(str(tmp_path / "run"))
    assert len(run.predict(binary_frame.drop(columns="y").head(5))) == 5


def test_the_fallback_reason_counts_stopped_trials_and_all_failed_ones_still_fail():
    lb = pd.DataFrame({"status": ["stopped", "timeout", "failed"], "error": ["deadline", "limit", "boom"]})
    assert no_trial_finished(lb) == "no trial finished within the search budget (0 completed, 2 stopped, 1 failed)"
    assert no_trial_finished(lb.iloc[:0]) == "no trial could start within the search budget"
    failed = pd.DataFrame({"status": ["failed"] * 3, "error": ["ValueError: boom", "ValueError: boom", "x"]})
    with pytest.raises(SearchError, match=r"all 3 trial\(s\) failed; commonest cause: ValueError: boom"):
        no_trial_finished(failed)


def _ctx(n=300, seed=0) -> TrialContext:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y", "z"], n)})
    y = ((X["a"] * X["b"] + (X["c"] == "x") + rng.normal(scale=0.5, size=n)) > 0.5).astype(int).to_numpy()
    return TrialContext(X=X, y=y, folds=make_folds(y, "binary", 4, 50_000, 0.2, seed),
                        column_types={"a": "numeric", "b": "numeric", "c": "categorical"},
                        candidates={XGB.name: XGB}, problem_type="binary", metric="auc", n_classes=2, seed=seed)


def test_a_trial_stopped_at_the_deadline_reports_its_score_on_the_folds_it_finished():
    ctx = _ctx()
    config = {"candidate": XGB.name, f"{XGB.name}:model.max_depth": 3}
    full = evaluate(config, ctx)
    assert full["status"] == "completed" and "partial_objective" not in full
    stopped = evaluate(config, ctx, deadline=time.time())  # past already: stops after the first fold
    assert stopped["status"] == "stopped" and stopped["partial_folds"] == 1
    # the same seeded fold model as the full trial's first fold: its AUC on that fold's rows
    from automl.candidates.pipeline import build_pipeline, predict_matrix
    from automl.search.trial import fit_fold

    tr, va = ctx.folds[0]
    pipe, _ = fit_fold(build_pipeline(XGB, {"model.max_depth": 3}, ctx.column_types, "binary", 0), "xgboost",
                       ctx.X.iloc[tr], ctx.y[tr], ctx.X.iloc[va], ctx.y[va])
    expected = roc_auc_score(ctx.y[va], predict_matrix(pipe, ctx.X.iloc[va], "binary", 2)[:, 1])
    assert stopped["partial_objective"] == pytest.approx(expected, abs=1e-12)
    assert json.loads(stopped["refit_params_json"])["model.max_depth"] == 3


def test_the_fallback_is_the_best_partially_validated_trial_else_the_cheapest_default():
    lb = pd.DataFrame({"trial_id": ["t1", "t2", "t3"], "candidate": [LINEAR.name, XGB.name, XGB.name],
                       "status": ["stopped", "stopped", "stopped"],
                       "partial_objective": [0.70, 0.81, np.nan], "partial_folds": [2, 1, 0],
                       "params_json": ['{"model.C": 1.0}', '{"model.max_depth": 4}', '{}'],
                       "refit_params_json": ['{"model.C": 1.0}', '{"model.max_depth": 4, "model.n_estimators": 57}', ""]})
    row = fallback_row([LINEAR, XGB], "binary", "no trial finished", lb, greater_is_better=True)
    assert row["candidate"] == XGB.name and json.loads(row["refit_params_json"])["model.n_estimators"] == 57
    assert row["config"] == {"candidate": XGB.name, f"{XGB.name}:model.max_depth": 4}
    assert "trial t2's configuration" in row["fallback_text"]
    lower = fallback_row([LINEAR, XGB], "regression", "r", lb.assign(partial_objective=[3.0, 5.0, np.nan]), False)
    assert lower["candidate"] == LINEAR.name and "trial t1's" in lower["fallback_text"]
    none = fallback_row([LINEAR, XGB], "binary", "r", lb.assign(partial_objective=[np.nan, -1e12, np.nan]))
    assert none["candidate"] == LINEAR.name and "fallback_text" not in none  # the cheapest default


def _stopped_knn_lb(fit_s: float) -> pd.DataFrame:
    """One k-NN trial stopped after 1 of its 5 folds, which took ``fit_s`` seconds."""
    from test_rerank import KNN

    params = json.dumps({"model.n_neighbors": 5, "model.weights": "uniform"})
    return pd.DataFrame({"trial_id": ["t1"], "candidate": [KNN.name], "status": ["stopped"], "fit_s": [fit_s],
                         "partial_objective": [1.1], "partial_folds": [1], "params_json": [params],
                         "refit_params_json": [params]})


def test_the_fallback_refit_past_the_deadline_uses_the_largest_sample_that_fits():
    """The partial trial's measured fold time predicts the fallback's refit (selection/timeplan.py):
    when all rows would overrun the deadline, it is refit on a sample, recorded as a time plan."""
    from automl.selection.fallback import fit_fallback
    from test_rerank import KNN, _regression_ctx

    ctx = _regression_ctx(n=3000)
    lb = _stopped_knn_lb(fit_s=1000.0)  # one fold took 1,000 s: all 3,000 rows cannot fit in 60 s
    row = fallback_row([KNN], "regression", "no trial finished", lb, greater_is_better=False)
    sel = fit_fallback(ctx, lb, row, "refit", deadline=time.time() + 60)
    plan = sel.final_model["time_plan"]
    assert sel.fallback and plan["predicted_refit_s"] > plan["time_left_s"] and plan["sample_rows"] == 1000
    assert "sample of 1000 of the 3000 rows" in plan["decision"] and "sample of 1000" in sel.final_model["reason"]
    assert sel.model.steps[-1][1].n_samples_fit_ == 1000  # the model really saw 1,000 rows
    ample = fit_fallback(ctx, _stopped_knn_lb(0.01), fallback_row([KNN], "regression", "r", _stopped_knn_lb(0.01),
                                                                    False), "refit", deadline=time.time() + 60)
    assert ample.model.steps[-1][1].n_samples_fit_ == 3000 and "time_plan" not in ample.final_model
