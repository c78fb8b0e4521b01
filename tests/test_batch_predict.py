"""Batch transform: folders/prefixes on S3 (moto), gzip, chunks, keep_columns, any trial, Ray tasks."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import automl
from automl.errors import ArtifactError, DataError
from automl.manifest import load_verified_model, read_manifest
from automl.predict import batch_predict
from automl.serving.schema import InputSchema
from conftest import automl_cli, make_binary_frame


@pytest.fixture(scope="module")
def batch():
    """Fresh rows with an ID column and no target, as a batch would come."""
    return make_binary_frame(120, seed=11).drop(columns=["y"])


def test_folder_of_gzip_csv_on_s3_keeps_input_order(tiny_run, batch, s3_bucket):
    fs, b = s3_bucket["fs"], s3_bucket["bucket"]
    parts = {"part-00.csv.gz": batch.iloc[:70], "part-01.csv.gz": batch.iloc[70:]}
    for name, part in parts.items():
        fs.pipe(f"{b}/in/{name}", gzip.compress(part.to_csv(index=False).encode()))
    fs.pipe(f"{b}/in/_SUCCESS", b"")  # marker files are skipped
    res = automl_cli("predict", f"run_dir={tiny_run.run_dir}", f"input=s3://{b}/in/", f"output=s3://{b}/out/p.csv",
                     "predict.keep_columns=[customer_id]", "predict.chunk_rows=25", env=s3_bucket["env"])
    assert res.returncode == 0, res.stderr
    assert "wrote 120 predictions" in res.stdout
    out = pd.read_csv(fs.open(f"{b}/out/p.csv"))
    assert list(out.columns) == ["customer_id", "predicted_label", "proba_no", "proba_yes"]
    assert out["customer_id"].tolist() == batch["customer_id"].tolist()
    assert out["predicted_label"].tolist() == list(tiny_run.predict(batch))
    np.testing.assert_allclose(out["proba_yes"], tiny_run.predict_proba(batch)["yes"], rtol=1e-12)


def test_prefix_parquet_chunks_and_a_non_best_trial(tiny_run, batch, tmp_path):
    lb = tiny_run.leaderboard
    other = lb[(lb["status"] == "completed") & (lb["trial_id"] != tiny_run.best_trial_id)].iloc[-1]
    batch.iloc[:50].to_parquet(tmp_path / "day-1.parquet")
    batch.iloc[50:].to_parquet(tmp_path / "day-2.parquet")
    n = batch_predict(tiny_run.run_dir, str(tmp_path / "day-"), str(tmp_path / "out.parquet"), trial=other.trial_id,
                      keep_columns=["customer_id"], chunk_rows=16)
    assert n == len(batch)
    out = pd.read_parquet(tmp_path / "out.parquet")
    model = tiny_run.trial_model(other.trial_id)
    assert model.trial_id == other.trial_id and model.candidate == other.candidate
    assert out["customer_id"].tolist() == batch["customer_id"].tolist()
    assert out["predicted_label"].tolist() == list(model.predict(batch))
    # the refit model is cached in the run folder and listed in its manifest
    assert f"models/{other.trial_id}.skops" in read_manifest(tiny_run.run_dir)["files"]
    # a tampered cache is not loaded: the trial is refit (and cached again)
    cached = Path(tiny_run.run_dir) / "models" / f"{other.trial_id}.skops"
    cached.write_bytes(cached.read_bytes() + b"tampered")
    again = automl.load(tiny_run.run_dir).trial_model(other.trial_id)
    assert again.predict(batch).tolist() == out["predicted_label"].tolist()
    load_verified_model(tiny_run.run_dir, f"models/{other.trial_id}.skops")  # the new cache verifies


def test_ray_backend_writes_the_same_rows(tiny_run, batch, tmp_path):
    batch.to_csv(tmp_path / "in.csv", index=False)
    batch_predict(tiny_run.run_dir, str(tmp_path / "in.csv"), str(tmp_path / "local.csv"), chunk_rows=17,
                  keep_columns=["customer_id"])
    batch_predict(tiny_run.run_dir, str(tmp_path / "in.csv"), str(tmp_path / "ray.csv"), chunk_rows=17,
                  keep_columns=["customer_id"], backend="ray")
    assert (tmp_path / "ray.csv").read_text() == (tmp_path / "local.csv").read_text()


def test_batch_errors(tiny_run, batch, tmp_path):
    batch.drop(columns=["color"]).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(DataError, match="color"):
        batch_predict(tiny_run.run_dir, str(tmp_path / "in.csv"), str(tmp_path / "o.csv"))
    batch.to_csv(tmp_path / "ok.csv", index=False)
    with pytest.raises(DataError, match="keep_columns.*order_id"):
        batch_predict(tiny_run.run_dir, str(tmp_path / "ok.csv"), str(tmp_path / "o.csv"), keep_columns=["order_id"])
    with pytest.raises(ArtifactError, match=tiny_run.best_trial_id):
        batch_predict(tiny_run.run_dir, str(tmp_path / "ok.csv"), str(tmp_path / "o.csv"), trial="no-such-trial")
    with pytest.raises(DataError, match="no files"):
        batch_predict(tiny_run.run_dir, str(tmp_path / "nothing-here"), str(tmp_path / "o.csv"))
    bad = batch.astype({"x1": object})
    bad.loc[5, "x1"] = "high"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"x1.*row 6"):
        batch_predict(tiny_run.run_dir, str(tmp_path / "bad.csv"), str(tmp_path / "o.csv"))


def test_schema_keeps_training_dtypes():
    schema = InputSchema(columns=["num", "zip", "flag", "name"],
                         types={"num": "numeric", "zip": "categorical", "flag": "boolean", "name": "categorical"},
                         dtypes={"num": "int", "zip": "int", "flag": "bool", "name": "str"})
    df = schema.frame_from_rows([["1", "94110", "true", "ann"], ["", "10001", "False", ""]])
    assert df["num"].dtype == np.float64 and np.isnan(df["num"].iloc[1])
    assert df["zip"].tolist() == [94110, 10001] and df["zip"].dtype == np.int64  # categories stay integers
    assert df["flag"].tolist() == [True, False] and df["name"].iloc[0] == "ann" and pd.isna(df["name"].iloc[1])
    rec = schema.frame_from_records([{"num": 2, "zip": 3.0, "flag": True, "name": 7, "extra": 1}])
    assert rec["zip"].iloc[0] == 3 and rec["name"].iloc[0] == "7"
    with pytest.raises(DataError, match="flag"):
        schema.frame_from_rows([["1", "2", "maybe", "x"]])
