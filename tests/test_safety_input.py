"""User mistakes are one-line errors (exit 2), never crashes or silent nonsense: ID-like and
timestamp targets, tiny data, storage and credential failures; corrupt capture lines anywhere."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.cli import main
from automl.problem import resolve_problem
from automl.search.trial import make_folds
from conftest import VENV_BIN, automl_cli, make_binary_frame, start_moto_server


@pytest.fixture(autouse=True)
def fresh_cli_logging():
    """`automl.cli.main` binds its log handler to the sys.stderr of the moment; capsys replaces
    sys.stderr per test, so each test starts without one."""
    import logging

    logger = logging.getLogger("automl")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    yield
    for handler in list(logger.handlers):
        logger.removeHandler(handler)


def _one_line_error(rc: int, err: str) -> str:
    """The single non-log line of a failed command (asserting exit 2, no traceback)."""
    assert rc == 2, err
    assert "Traceback" not in err and "unexpected error" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("[automl]")]
    assert len(lines) == 1, err
    return lines[0]


def _fit(capsys, tmp_path, df: pd.DataFrame, *args: str) -> str:
    df.to_csv(tmp_path / "d.csv", index=False)
    rc = main(["fit", f"data.path={tmp_path}/d.csv", "data.target=y", f"output_dir={tmp_path}/out",
               "budget.time_limit_s=20", *args])
    return _one_line_error(rc, capsys.readouterr().err)


def _features(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.choice(["a", "b", "c"], size=n)})


# ----------------------------------------------------------------------------- bad targets
def test_an_id_like_text_target_stops_instead_of_fitting_one_row_classes(capsys, tmp_path):
    df = _features(200).assign(y=[f"user-{i:05d}" for i in range(200)])
    line = _fit(capsys, tmp_path, df)
    assert "'y'" in line and "looks like an ID" in line and "choose another target" in line, line


def test_a_timestamp_target_stops_and_says_so(capsys, tmp_path):
    stamps = pd.date_range("2024-01-01", periods=200, freq="37min").astype(str)
    line = _fit(capsys, tmp_path, _features(200).assign(y=stamps))
    assert "timestamp" in line and "problem_type=regression" in line, line


def test_a_numeric_target_forced_to_classes_suggests_regression(capsys, tmp_path):
    df = _features(200).assign(y=np.arange(200) * 3 + 1000)
    line = _fit(capsys, tmp_path, df, "problem_type=multiclass")
    assert "looks like an ID" in line and "problem_type=regression" in line, line


def test_nearly_all_distinct_target_is_still_id_like(capsys, tmp_path):
    y = [f"order-{i}" for i in range(180)] + ["order-0"] * 20
    line = _fit(capsys, tmp_path, _features(200).assign(y=y))
    assert "looks like an ID" in line, line


@pytest.mark.parametrize("n_classes, per_class", [(32, 3), (10, 2), (3, 40)])
def test_many_classes_with_few_rows_each_are_legit(n_classes, per_class):
    y = pd.Series([f"c{i}" for i in range(n_classes)] * per_class)
    info = resolve_problem(y, "auto", "auto", "y")
    assert info.problem_type == "multiclass" and len(info.classes) == n_classes


# ----------------------------------------------------------------------------- tiny data
def test_two_rows_is_a_one_line_error(capsys, tmp_path):
    line = _fit(capsys, tmp_path, pd.DataFrame({"x1": [1.0, 2.0], "y": ["a", "b"]}))
    assert "2 rows" in line, line


def test_two_rows_of_regression_is_a_one_line_error(capsys, tmp_path):
    line = _fit(capsys, tmp_path, pd.DataFrame({"x1": [1.0, 2.0], "y": [0.5, 1.5]}), "problem_type=regression")
    assert "2 rows" in line and "at least" in line, line


def test_a_class_with_a_single_row_is_a_one_line_error(capsys, tmp_path):
    df = _features(41).assign(y=["a"] * 20 + ["b"] * 20 + ["rare"])
    line = _fit(capsys, tmp_path, df)
    assert "'rare'" in line and "1 row" in line and "at least 2" in line, line


def test_regression_folds_are_lowered_to_the_rows_there_are():
    folds = make_folds(np.arange(6, dtype=float), "regression", 10, 50_000, 0.2, 0)
    assert len(folds) == 6 and all(len(va) == 1 for _, va in folds)


ONLY_LINEAR = ["candidates.include=[dpp1-linear]"]


@pytest.mark.slow
def test_fewer_rows_in_a_class_than_folds_lowers_the_folds_and_says_so(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b", "c"], 4)
    df = pd.DataFrame({"x1": rng.normal(size=12) + (y == "a") * 3, "y": y})
    df.to_csv(tmp_path / "d.csv", index=False)
    res = automl_cli("fit", f"data.path={tmp_path}/d.csv", "data.target=y", f"output_dir={tmp_path}/out",
                     "budget.time_limit_s=40", "budget.max_trials=1", "search.executor=local", "search.ensemble=false",
                     "validation.rerank_top=0", *ONLY_LINEAR, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "the smallest class ('a') has 4 rows, fewer than validation.n_folds=5: 4-fold cross-validation" \
        in res.stderr, res.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["validation"]["n_folds"] == 4


# ----------------------------------------------------------------------------- storage failures
NO_CREDENTIALS = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
                  "AWS_EC2_METADATA_DISABLED": "true"}


def _env_without_credentials(endpoint: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **NO_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}


def _cli_clean_env(env: dict, *args: str):
    exe = VENV_BIN / "automl"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "automl"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def s3_data(s3_bucket, tmp_path):
    make_binary_frame(60).to_csv(tmp_path / "train.csv", index=False)
    s3_bucket["fs"].put(str(tmp_path / "train.csv"), f"{s3_bucket['bucket']}/train.csv")
    return s3_bucket


def test_s3_data_without_credentials_is_a_one_line_error(s3_data, tmp_path):
    res = _cli_clean_env(_env_without_credentials(s3_data["endpoint"]), "fit",
                         f"data.path=s3://{s3_data['bucket']}/train.csv", "data.target=y", f"output_dir={tmp_path}/o")
    line = _one_line_error(res.returncode, res.stderr)
    assert f"s3://{s3_data['bucket']}/train.csv" in line and "no credentials" in line, line


def test_s3_output_without_credentials_is_a_one_line_error(s3_data, tmp_path):
    make_binary_frame(60).to_csv(tmp_path / "local.csv", index=False)
    res = _cli_clean_env(_env_without_credentials(s3_data["endpoint"]), "fit", f"data.path={tmp_path}/local.csv",
                         "data.target=y", f"output_dir=s3://{s3_data['bucket']}/run")
    line = _one_line_error(res.returncode, res.stderr)
    assert "no credentials" in line, line


def test_a_malformed_s3_url_is_a_one_line_error(s3_data, capsys, tmp_path):
    rc = main(["fit", f"data.path=s3://user:hunter22@{s3_data['bucket']}/train.csv", "data.target=y",
               f"output_dir={tmp_path}/o"])
    line = _one_line_error(rc, capsys.readouterr().err)
    assert "invalid" in line and "s3://" in line and "hunter22" not in line, line


def test_a_missing_bucket_is_a_one_line_error(s3_data, capsys, tmp_path):
    rc = main(["fit", "data.path=s3://no-such-bucket-a1b2/train.csv", "data.target=y", f"output_dir={tmp_path}/o"])
    line = _one_line_error(rc, capsys.readouterr().err)
    assert "not found" in line, line


@pytest.fixture(scope="module")
def strict_s3():
    """A second moto server that checks credentials (unknown keys are refused)."""
    proc, endpoint = start_moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


def test_permission_denied_is_a_one_line_error(strict_s3, tmp_path):
    env = {**_env_without_credentials(strict_s3), "AWS_ACCESS_KEY_ID": "AKIAUNKNOWN00000",
           "AWS_SECRET_ACCESS_KEY": "not-a-real-secret"}
    res = _cli_clean_env(env, "fit", "data.path=s3://somebucket/train.csv", "data.target=y",
                         f"output_dir={tmp_path}/o")
    line = _one_line_error(res.returncode, res.stderr)
    assert "permission denied" in line and "credentials" in line and "not-a-real-secret" not in line, line


# ----------------------------------------------------------------------------- monitor
def test_a_capture_file_whose_first_line_is_corrupt_is_read(tiny_run, tmp_path, capsys, caplog):
    rows = make_binary_frame(30, seed=3)[["customer_id", "x1", "x2", "color"]]
    records = [{"request_id": str(i), "timestamp": "2026-01-01T00:00:00Z", "trial_id": tiny_run.best_trial_id,
                "content_type": "text/csv", "instances": rows.iloc[i * 10:(i + 1) * 10].to_dict("records"),
                "predictions": []} for i in range(3)]
    lines = ['{"request_id": "cut off', json.dumps(records[0]), "not json at all", json.dumps(records[1]),
             json.dumps(records[2])]
    path = tmp_path / "capture-20260101T000000-1-00001.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rc = main(["monitor", f"run_dir={tiny_run.run_dir}", f"data={path}", f"output={tmp_path}/m.json"])
    err = capsys.readouterr().err
    assert rc in (0, 3), err
    assert "skipped 2 capture line(s)" in err + caplog.text, err  # the log goes to either, by test order
