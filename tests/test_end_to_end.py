"""A small fit end to end through the real CLI and real Ray, then predictions back."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import automl
from conftest import automl_cli, make_binary_frame

pytestmark = pytest.mark.slow
FEW = ["budget.max_trials=4", "budget.time_limit_s=60", "~candidates.dpp2-mlp", "~candidates.dpp5-svm",
       "~candidates.dpp3-random_forest", "~candidates.dpp4-extra_trees", "~candidates.dpp7-lightgbm"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    df = make_binary_frame(240, seed=1)
    df.iloc[:180].to_csv(d / "train.csv", index=False)
    df.iloc[180:].to_parquet(d / "test.parquet", index=False)
    res = automl_cli("fit", f"data.path={d}/train.csv", "data.target=y", f"data.test_path={d}/test.parquet",
                     "metric=auc", f"output_dir={d}/run", *FEW)
    assert res.returncode == 0, res.stderr[-3000:]
    return d, res


def test_fit_leaves_every_artifact(cli_run):
    d, res = cli_run
    run = d / "run"
    for name in ("config.yaml", "leaderboard.csv", "model.skops", "summary.json", "candidates"):
        assert (run / name).exists(), name
    s = json.loads((run / "summary.json").read_text())
    for key in ("problem_type", "metric", "greater_is_better", "target", "n_rows", "n_columns", "best",
                "n_trials_completed", "n_trials_failed", "wall_time_s", "test_score"):
        assert key in s, key
    assert s["problem_type"] == "binary" and s["metric"] == "auc" and s["n_rows"] == 180
    assert s["column_types"]["customer_id"] == "id" and "customer_id" not in s["features"]
    assert {"trial_id", "candidate", "score"} <= set(s["best"])
    assert 0.5 < s["test_score"] <= 1.0
    lb = pd.read_csv(run / "leaderboard.csv")
    lb = lb[lb["trial_id"] != "ensemble"]  # the ensemble, when kept, is a row of its own
    assert len(lb) == s["n_trials_completed"] + s["n_trials_failed"] + s.get("n_trials_timeout", 0) + s.get("n_trials_stopped", 0)
    for col in ("candidate", "objective", "auc", "f1", "logloss", "fit_s", "predict_ms_per_row", "model_size_bytes", "status"):
        assert col in lb.columns, col
    assert set(lb["candidate"]) <= {"dpp0-xgboost", "dpp1-linear", "dpp6-knn"}
    assert any(c.startswith("model.") for c in lb.columns)
    assert "best" in res.stdout


def test_predict_round_trip(cli_run, tmp_path):
    d, _ = cli_run
    frame = pd.read_parquet(d / "test.parquet").drop(columns=["y"])
    frame["unused_extra"] = 1  # extra columns are ignored
    frame.loc[frame.index[:5], "x1"] = np.nan  # missing values are handled
    frame.loc[frame.index[5:8], "color"] = "purple"  # unseen categories are handled
    frame.to_csv(tmp_path / "in.csv", index=False)
    res = automl_cli("predict", f"run_dir={d}/run", f"input={tmp_path}/in.csv", f"output={tmp_path}/out.parquet")
    assert res.returncode == 0, res.stderr[-2000:]
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["predicted_label", "proba_no", "proba_yes"]
    assert len(out) == len(frame) and set(out["predicted_label"]) <= {"no", "yes"}
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].sum(axis=1), 1.0, rtol=1e-6)
    run = automl.load(str(d / "run"))
    np.testing.assert_array_equal(run.predict(frame), out["predicted_label"].to_numpy())
    res = automl_cli("predict", f"run_dir={d}/run", f"input={tmp_path}/in.csv", f"output={tmp_path}/out.csv")
    assert pd.read_csv(tmp_path / "out.csv")["predicted_label"].tolist() == out["predicted_label"].tolist()


def test_predict_names_missing_columns(cli_run, tmp_path):
    d, _ = cli_run
    pd.read_parquet(d / "test.parquet").drop(columns=["y", "color"]).to_csv(tmp_path / "in.csv", index=False)
    res = automl_cli("predict", f"run_dir={d}/run", f"input={tmp_path}/in.csv", f"output={tmp_path}/o.csv")
    assert res.returncode == 2 and "color" in res.stderr and "Traceback" not in res.stderr


def test_python_api_and_load(tiny_run, binary_frame):
    assert isinstance(tiny_run.leaderboard, pd.DataFrame) and len(tiny_run.leaderboard) >= 1
    proba = tiny_run.predict_proba(binary_frame)
    assert list(proba.columns) == ["no", "yes"]
    again = automl.load(tiny_run.run_dir)
    np.testing.assert_array_equal(again.predict(binary_frame), tiny_run.predict(binary_frame))
    assert again.summary == tiny_run.summary
    acc = (tiny_run.predict(binary_frame) == binary_frame["y"]).mean()
    assert acc > 0.75


def test_read_from_s3(s3_bucket, tmp_path):
    fs, bucket = s3_bucket["fs"], s3_bucket["bucket"]
    df = make_binary_frame(160, seed=2)
    with fs.open(f"{bucket}/data/train.csv.gz", "wb", compression="gzip") as fh:
        fh.write(df.to_csv(index=False).encode())
    res = automl_cli("fit", f"data.path=s3://{bucket}/data/train.csv.gz", "data.target=y", f"output_dir={tmp_path}/run",
                     *FEW, env=s3_bucket["env"])
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["n_rows"] == 160 and s["n_trials_completed"] >= 1


def test_sweep_runs_each_in_its_own_folder(tmp_path):
    df = make_binary_frame(120, seed=3)
    df.to_csv(tmp_path / "d.csv", index=False)
    res = automl_cli("fit", "-m", f"data.path={tmp_path}/d.csv", "data.target=y", "metric=accuracy,auc",
                     f"output_dir={tmp_path}/sweep", "budget.max_trials=2", "~candidates.dpp0-xgboost",
                     *FEW[1:])
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = sorted(json.loads((p / "summary.json").read_text())["metric"] for p in (tmp_path / "sweep").iterdir()
                     if p.is_dir())  # beside the run folders: sweep_summary.csv
    assert metrics == ["accuracy", "auc"]
