"""`tracking=mlflow`: after a fit, a parent MLflow run, one nested run per trial with its
parameters and metrics, and the chosen model as a pyfunc model (signature, input example) that
predicts what `automl predict` writes, through `mlflow.pyfunc.load_model` and through a real
`mlflow models serve` on a loopback port. Against a local sqlite tracking store in a temporary
folder."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import automl
from automl.cli import main
from automl.config import compose_config
from conftest import VENV_BIN, free_port, make_binary_frame
from test_serving import wait_ping

EXPERIMENT = "automl-tests"


def cli(*args: str) -> int:
    logger = logging.getLogger("automl")
    saved = list(logger.handlers)
    try:
        return main(list(args))
    finally:
        logger.handlers[:] = saved


def test_tracking_mlflow_without_the_package_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    assert main(["fit", "tracking=mlflow", f"output_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'automl[mlflow]'" in err[0], err
    assert not (tmp_path / "run").exists()  # stopped before any data was read or written


def test_an_unknown_tracking_backend_lists_the_valid_ones(capsys):
    assert main(["fit", "tracking.backend=wandb"]) == 2
    err = capsys.readouterr().err
    assert "tracking.backend must be one of none, mlflow; got 'wandb'" in err


def test_tracking_mlflow_selects_the_config_group():
    pytest.importorskip("mlflow")
    cfg = compose_config(["tracking=mlflow", "tracking.uri=sqlite:///x.db"])
    assert (cfg.tracking.backend, cfg.tracking.uri, cfg.tracking.experiment) == ("mlflow", "sqlite:///x.db", "automl")
    assert compose_config([]).tracking.backend == "none"


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One real fit with tracking to a sqlite store; MLflow's artifacts land in the same folder."""
    pytest.importorskip("mlflow")
    tmp = tmp_path_factory.mktemp("mlflow")
    frame = make_binary_frame(260, seed=4)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    cwd = os.getcwd()
    os.chdir(tmp)  # the experiment's default artifact root, ./mlruns, is taken from the working folder
    try:
        run = automl.fit(frame.iloc[:200], target="y", output_dir=str(tmp / "run"), data__test_fraction=0.2,
                         tracking={"backend": "mlflow", "uri": uri, "experiment": EXPERIMENT},
                         candidates={"dpp2-mlp": {"enabled": False}, "dpp5-svm": {"enabled": False},
                                     "dpp3-random_forest": {"enabled": False}, "dpp4-extra_trees": {"enabled": False}},
                         budget={"time_limit_s": 30, "max_trials": 4}, search={"executor": "local"},
                         validation={"n_folds": 3, "rerank_top": 0})
    finally:
        os.chdir(cwd)
    test = frame.iloc[200:].drop(columns="y").reset_index(drop=True)
    test.to_csv(tmp / "test.csv", index=False)
    assert cli("predict", f"run_dir={run.run_dir}", f"input={tmp / 'test.csv'}", f"output={tmp / 'pred.csv'}") == 0
    return {"run": run, "uri": uri, "tmp": tmp, "test": test, "expected": pd.read_csv(tmp / "pred.csv")}


def _runs(tracked):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracked["uri"])
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


@pytest.mark.slow
def test_a_fit_logs_a_parent_run_and_each_trial_as_a_nested_run(tracked):
    run = tracked["run"]
    parents, children = _runs(tracked)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["automl.run_dir"] == run.run_dir
    metric = run.summary["metric"]
    if run.summary["best"]["score"] is not None:  # None: no trial finished in time (a loaded machine)
        assert parent.data.metrics[f"cv_{metric}"] == pytest.approx(run.summary["best"]["score"])
    assert parent.data.metrics[f"test_{metric}"] == pytest.approx(run.summary["test_score"])
    assert parent.data.params["budget.max_trials"] == "4"
    lb = run.leaderboard
    assert len(children) == len(lb) >= 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    for child in children:
        row = lb[lb["trial_id"] == child.data.tags["automl.trial_id"]].iloc[0]
        assert child.data.params["candidate"] == row["candidate"]
        if isinstance(row["params_json"], str):  # a trial stopped before it started has none
            for key, value in json.loads(row["params_json"]).items():
                assert child.data.params[key] == str(value)
        if row["status"] == "completed":
            assert child.info.status == "FINISHED"
            assert child.data.metrics["objective"] == pytest.approx(row["objective"])
            assert child.data.metrics[metric] == pytest.approx(row[metric])


@pytest.mark.slow
def test_the_logged_pyfunc_model_predicts_what_automl_predict_writes(tracked):
    import mlflow

    parent = _runs(tracked)[0][0]
    mlflow.set_tracking_uri(tracked["uri"])
    uri = f"runs:/{parent.info.run_id}/model"
    model = mlflow.pyfunc.load_model(uri)
    features = tracked["run"].summary["features"]
    assert model.metadata.get_input_schema().input_names() == features
    assert "predicted_label" in model.metadata.get_output_schema().input_names()
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tracked["tmp"] / "model"))
    example = mlflow.models.Model.load(local).load_input_example(local)
    assert list(example.columns) == features and len(example) >= 1
    got = model.predict(tracked["test"][features])
    expected = tracked["expected"]
    assert got["predicted_label"].tolist() == expected["predicted_label"].tolist()
    np.testing.assert_allclose(got["proba_yes"], expected["proba_yes"], rtol=0, atol=1e-12)


@pytest.mark.slow
def test_mlflow_models_serve_answers_like_automl_predict(tracked):
    import requests

    parent = _runs(tracked)[0][0]
    exe = VENV_BIN / "mlflow"
    port = free_port()
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "mlflow"]), "models",
           "serve", "-m", f"runs:/{parent.info.run_id}/model", "--env-manager", "local", "-h", "127.0.0.1",
           "-p", str(port)]
    # as in an activated virtual environment: mlflow starts the server with the `uvicorn` on PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracked["uri"], "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(cmd, env=env, cwd=tracked["tmp"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ping(url, proc, name="mlflow models serve")  # imports and the model's load: a minute under load
        features = tracked["run"].summary["features"]
        body = {"dataframe_split": json.loads(tracked["test"][features].to_json(orient="split", index=False))}
        res = requests.post(f"{url}/invocations", json=body, timeout=30)
        assert res.status_code == 200, res.text[:500]
        got = pd.DataFrame(res.json()["predictions"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    expected = tracked["expected"]
    assert got["predicted_label"].tolist() == expected["predicted_label"].tolist()
    np.testing.assert_allclose(got["proba_yes"], expected["proba_yes"], rtol=0, atol=1e-9)
