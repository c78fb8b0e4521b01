"""automl from Python as scikit-learn estimators (automl/estimator.py), and ``automl.fit(X, y)``.

Every fit is a real `automl fit` flow (tiny budgets: one or two linear trials on forked workers);
the estimators go through scikit-learn's own clone, Pipeline, cross_val_score and a selection of
its estimator checks (the rest are listed in SKIPPED with the reason, as in docs/python.md).
"""
from __future__ import annotations

import gc
import io
import logging
import os
import pickle
import sys
from functools import partial
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from nbclient import NotebookClient
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (check_methods_sample_order_invariance, check_methods_subset_invariance,
                                            estimator_checks_generator)

import automl
from automl import AutoMLClassifier, AutoMLRegressor, ConfigError
from automl.search.events import ENDED, FINISHED, STOPPED, TrialEvent
from conftest import make_binary_frame

ROOT = Path(__file__).resolve().parents[1]
OTHER_CANDIDATES = [name for name in yaml.safe_load((ROOT / "conf" / "candidates" / "default.yaml").read_text())
                    if name != "dpp1-linear"]


def tiny(**extra):
    """Keywords for a fit of a second or two: the linear candidate, 2 trials, forked workers, 2 folds,
    no report.html and no notebooks."""
    return {"budget": {"max_trials": 2, "time_limit_s": 20},
            "search": {"executor": "local", "ensemble": False},
            "validation": {"n_folds": 2, "rerank_top": 0},
            "candidates": {name: {"enabled": False} for name in OTHER_CANDIDATES},
            "report": False, "notebooks": False, **extra}


@pytest.fixture(scope="module")
def labelled():
    """A mixed-type frame (numbers with gaps, a category, an ID) with string labels 'no'/'yes'."""
    df = make_binary_frame(n=160, seed=3)
    return df.drop(columns=["y"]), df["y"].rename("answer")


@pytest.fixture(scope="module")
def fitted(labelled):
    """A classifier fitted on ``labelled`` (weighted) with nothing configured in logging:
    (estimator, what it wrote on stderr)."""
    X, y = labelled
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(logging.getLogger(), "handlers", [])  # as in a plain script or a notebook
        automl_logger = logging.getLogger("automl")  # earlier in-process CLI calls may have set it up
        mp.setattr(automl_logger, "handlers", [])
        mp.setattr(automl_logger, "level", logging.NOTSET)
        mp.setattr(sys, "stderr", stderr)
        clf = AutoMLClassifier(**tiny()).fit(X, y, sample_weight=np.where(y == "yes", 2.0, 1.0))
    return clf, stderr.getvalue()


@pytest.mark.slow
def test_classifier_keeps_string_labels_in_classes_predict_and_proba(fitted, labelled):
    clf, _ = fitted
    X, y = labelled
    assert list(clf.classes_) == ["no", "yes"]
    assert clf.n_features_in_ == 4 and list(clf.feature_names_in_) == list(X.columns)
    pred = clf.predict(X)
    assert pred.shape == (len(X),) and set(pred) <= {"no", "yes"}
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.allclose(proba.sum(axis=1), 1)
    assert clf.score(X, y) == pytest.approx(accuracy_score(y, pred)) and clf.score(X, y) > 0.7
    # the run behind it: the table's own target name, its summary and leaderboard
    assert clf.run_.summary["target"] == "answer" and clf.run_.summary["problem_type"] == "binary"
    assert (clf.run_.leaderboard["candidate"] == "dpp1-linear").all()
    # sample_weight became the run's weight column (never a feature)
    weights = clf.run_.summary["sample_weights"]
    assert weights["column"] == "sample_weight" and weights["sum"] == float(np.where(y == "yes", 2, 1).sum())
    assert "sample_weight" not in clf.run_.model.feature_columns


@pytest.mark.slow
def test_a_fit_from_python_logs_its_progress_when_logging_is_not_configured(fitted):
    _, stderr = fitted
    lines = stderr.splitlines()
    assert any(line.startswith("[automl] problem: binary") for line in lines), stderr
    assert any(line.startswith("[automl] trials:") for line in lines), stderr


@pytest.mark.slow
def test_fitted_estimator_pickles_and_predicts_without_its_run_folder(fitted, labelled):
    clf, _ = fitted
    X, _ = labelled
    copy = pickle.loads(pickle.dumps(clf))
    assert not hasattr(copy, "_cleanup")  # the copy does not own (or remove) the original's folder
    assert (copy.predict(X) == clf.predict(X)).all()
    np.testing.assert_allclose(copy.predict_proba(X), clf.predict_proba(X))
    # numpy rows go to the model by position, under the names seen in fit
    assert (clf.predict(X.to_numpy()) == clf.predict(X)).all()


@pytest.mark.slow
def test_clone_and_cross_val_score_in_two_processes():
    X, y = make_classification(n_samples=120, n_features=5, n_informative=3, class_sep=2, random_state=0)
    est = AutoMLClassifier(**tiny(seed=1))
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params() and not hasattr(twin, "run_")
    scores = cross_val_score(est, X, y, cv=2, n_jobs=2)  # pickled into two worker processes
    assert scores.shape == (2,) and (scores > 0.8).all(), scores


@pytest.mark.slow
def test_pipeline_with_a_scaler_in_front_names_array_columns_x0_to_xn():
    X, y = make_classification(n_samples=100, n_features=4, n_informative=3, n_redundant=0, random_state=2)
    pipe = Pipeline([("scale", StandardScaler()), ("automl", AutoMLClassifier(**tiny()))])
    pipe.fit(X, y)
    automl_step = pipe.named_steps["automl"]
    assert list(automl_step.classes_) == [0, 1] and automl_step.n_features_in_ == 4
    assert not hasattr(automl_step, "feature_names_in_")
    assert set(automl_step.run_.model.feature_columns) <= {"x0", "x1", "x2", "x3"}
    assert pipe.predict(X).dtype == y.dtype and pipe.score(X, y) > 0.7


def test_get_params_and_set_params_round_trip_and_leave_the_callers_dicts_alone():
    budget = {"max_trials": 3, "time_limit_s": 30}
    est = AutoMLClassifier(budget=budget, metric="auc", seed=5)
    params = est.get_params()
    assert params["budget"] is budget and params["metric"] == "auc" and params["seed"] == 5
    assert params["validation"] is None and "problem_type" not in params and "mode" not in params
    est.set_params(budget__time_limit_s=12, search__executor="local", metric="accuracy")
    assert est.budget == {"max_trials": 3, "time_limit_s": 12} and budget["time_limit_s"] == 30
    assert est.search == {"executor": "local"} and est.metric == "accuracy"
    assert clone(est).get_params() == est.get_params()
    assert AutoMLRegressor(budget__time_limit_s=9).budget == {"time_limit_s": 9}


def test_unknown_keywords_name_the_closest_key():
    with pytest.raises(ConfigError, match=r"unknown parameter 'budgt' for AutoMLClassifier \(did you mean 'budget'\?\)"):
        AutoMLClassifier(budgt={"time_limit_s": 5})
    with pytest.raises(ConfigError, match="takes no 'problem_type' parameter"):
        AutoMLRegressor(problem_type="binary")
    X, y = make_classification(n_samples=30, n_features=3, n_informative=2, n_redundant=0, random_state=0)
    with pytest.raises(ConfigError, match=r"unknown key 'budget.time_limt_s'.*did you mean 'budget.time_limit_s'"):
        AutoMLClassifier(budget={"time_limt_s": 5}).fit(X, y)  # before any data is read or written
    with pytest.raises(ConfigError, match="data.target comes from fit"):
        AutoMLClassifier(data={"target": "y"}).fit(X, y)


@pytest.mark.slow
def test_regressor_scores_r2_and_its_temporary_run_folder_goes_with_it():
    X, y = make_regression(n_samples=120, n_features=4, noise=5.0, random_state=0)
    reg = AutoMLRegressor(**tiny()).fit(pd.DataFrame(X, columns=list("abcd")), y)
    frame = pd.DataFrame(X, columns=list("abcd"))
    assert reg.score(frame, y) == pytest.approx(r2_score(y, reg.predict(frame))) and reg.score(frame, y) > 0.9
    assert reg.run_.summary["problem_type"] == "regression"
    folder = reg.run_.run_dir
    assert Path(folder, "model.skops").exists()
    del reg
    gc.collect()
    assert not os.path.exists(folder)


@pytest.mark.slow
def test_automl_fit_takes_X_and_y(tmp_path):
    X, y = make_classification(n_samples=80, n_features=3, n_informative=2, n_redundant=0, random_state=4)
    run = automl.fit(X, pd.Series(y, name="label"), output_dir=str(tmp_path / "run"), **tiny())
    assert run.summary["target"] == "label" and set(run.model.feature_columns) <= {"x0", "x1", "x2"}
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2"])
    assert accuracy_score(y, run.predict(frame).astype(int)) > 0.7


# -- scikit-learn's estimator checks -------------------------------------------------------------
# Checks that do not apply, and why (docs/python.md lists them too); skipped.
_ONE_ROW_CLASS = ("its 20-row data holds a class of one row; automl needs 2 rows of every class (one to train "
                  "on, one to validate) and says so in a DataError")
_REPEATS = ("a row repeated is not a row of weight 2 for automl: the folds (and so the search and the "
            "calibration) see the repeats as rows")
NOT_APPLICABLE = {
    AutoMLClassifier: {"check_dont_overwrite_parameters": _ONE_ROW_CLASS, "check_dict_unchanged": _ONE_ROW_CLASS,
                       "check_f_contiguous_array_estimator": _ONE_ROW_CLASS,
                       "check_fit2d_predict1d": _ONE_ROW_CLASS,
                       "check_sample_weight_equivalence_on_dense_data": _REPEATS},
    AutoMLRegressor: {"check_sample_weight_equivalence_on_dense_data": _REPEATS},
}
# The checks that fit a model run here on every test run only when selected below (each fit is a
# whole automl run, a second or two); the others pass too: AUTOML_ESTIMATOR_CHECKS=all runs them.
FITTING_SELECTED = {
    AutoMLClassifier: ("check_estimators_pickle", "check_fit_idempotent", "check_classifiers_classes",
                       "check_n_features_in_after_fitting", "check_estimators_overwrite_params"),
    AutoMLRegressor: ("check_regressors_train",),
}
# The checks that fail (or stop) before any fit: all of them run, quickly.
NO_FIT = ("check_estimator_cloneable", "check_estimator_tags_renamed", "check_valid_tag_types",
          "check_estimator_repr", "check_no_attributes_set_in_init", "check_estimators_unfitted",
          "check_do_not_raise_errors_in_init_or_set_params", "check_mixin_order", "check_complex_data",
          "check_estimators_empty_data_messages", "check_estimator_sparse_tag", "check_estimator_sparse_array",
          "check_estimator_sparse_matrix", "check_classifiers_one_label", "check_classifiers_regression_target",
          "check_supervised_y_no_nan", "check_parameters_default_constructible", "check_fit2d_1sample",
          "check_get_params_invariance", "check_set_params", "check_fit1d", "check_requires_y_none",
          "check_all_zero_sample_weights_error", "check_non_transformer_estimators_n_iter",
          "check_decision_proba_consistency", "check_estimators_partial_fit_n_features")
_ALL = os.environ.get("AUTOML_ESTIMATOR_CHECKS") == "all"


def _check_id(check) -> str:
    """``check_name`` plus its variant's keywords (``check_estimators_pickle(readonly_memmap=True)``)."""
    while hasattr(check, "__wrapped__"):  # a check skipped by expected_failed_checks
        check = check.__wrapped__
    name = getattr(check, "func", check).__name__
    kwargs = ", ".join(f"{k}={v}" for k, v in getattr(check, "keywords", {}).items())
    return f"{name}({kwargs})" if kwargs else name


def _checks():
    for kind in (AutoMLClassifier, AutoMLRegressor):
        est = kind(**tiny(budget={"max_trials": 1, "time_limit_s": 20}))
        # scikit-learn leaves these two out for a non-deterministic estimator (the tag says a
        # time-budgeted search may differ between runs); they check predictions only, so they apply
        # (to the regressor: the classifier's data holds a class of one row, as in _ONE_ROW_CLASS)
        extra = [(est, partial(check, kind.__name__)) for check in (check_methods_sample_order_invariance,
                                                                    check_methods_subset_invariance)
                 if kind is AutoMLRegressor]
        for estimator, check in [*estimator_checks_generator(est, legacy=True, mark="skip",
                                                             expected_failed_checks=NOT_APPLICABLE[kind]), *extra]:
            name = _check_id(check)
            marks = [] if name in NO_FIT or name in NOT_APPLICABLE[kind] else [pytest.mark.slow]
            if name not in NO_FIT + FITTING_SELECTED[kind] + tuple(NOT_APPLICABLE[kind]) and not _ALL:
                marks.append(pytest.mark.skip(reason="passes; not run by default to keep the suite short "
                                                     "(AUTOML_ESTIMATOR_CHECKS=all runs it)"))
            yield pytest.param(estimator, check, id=f"{kind.__name__}-{name}", marks=marks)


@pytest.mark.parametrize("estimator, check", list(_checks()))
def test_scikit_learn_estimator_check(estimator, check):
    check(estimator)


# -- progress in a notebook ----------------------------------------------------------------------
def test_outside_a_notebook_the_search_logs_lines_and_the_bar_counts_trials():
    from automl.search.live import make_progress
    from automl.search.notebook import NotebookProgress, in_notebook
    from automl.search.progress import ProgressLogger

    assert not in_notebook() and isinstance(make_progress(4, 10, "f1", True), ProgressLogger)
    out = io.StringIO()
    bar = NotebookProgress(4, 10, "f1", True, stream=out)  # tqdm's text bar outside a notebook
    bar.on_event(TrialEvent(FINISHED, "1", row={"status": "completed", "objective": 0.8, "candidate": "dpp1-linear"}))
    bar.on_event(TrialEvent(STOPPED, "2", row={"status": "stopped", "candidate": "dpp1-linear"}))
    assert bar.label() == "2/4 trials: 1 completed, 1 stopped, 0 failed | best f1 0.80000 (dpp1-linear)"
    bar.on_event(TrialEvent(ENDED))
    assert bar.bar.n == 10 and "10/10 s, 2/4 trials" in out.getvalue()  # closed, full, with its label


@pytest.mark.slow
def test_a_fit_in_a_notebook_shows_a_progress_bar_widget(tmp_path):
    pytest.importorskip("ipywidgets")
    code = ("import automl\nfrom sklearn.datasets import make_classification\n"
            "X, y = make_classification(n_samples=80, n_features=3, n_informative=2, n_redundant=0, random_state=0)\n"
            f"clf = automl.AutoMLClassifier(**{tiny()!r}).fit(X, y)\n"
            "print('score', clf.score(X, y))")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, outputs  # tqdm's widget bar
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "[automl] problem: binary" in stderr and "[automl] trials:" not in stderr  # the bar replaces those lines
    assert "score" in "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
