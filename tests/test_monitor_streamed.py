"""`automl monitor ... predict.backend=ray`: the data checks streamed over a batch's shards in Ray
tasks (automl/monitor/streamed.py) report what the pandas path reports on the same rows."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.cli import main
from tests.conftest import make_binary_frame


def _shards(df: pd.DataFrame, folder: Path, n: int = 5) -> str:
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(df)), n)):
        df.iloc[rows].to_parquet(folder / f"part-{i:02d}.parquet", index=False)
    return str(folder)


def _drifted(seed: int) -> pd.DataFrame:
    df = make_binary_frame(600, seed).drop(columns=["y"])
    df["x1"] = df["x1"] + 3.0  # numeric drift
    df["color"] = df["color"].astype(object)
    df.loc[:119, "color"] = "purple"  # new categories (120 and 40 rows: no ties among the examples)
    df.loc[120:159, "color"] = "pink"
    df["x2"] = df["x2"].map(lambda v: "" if pd.isna(v) else f"{v:.6f}")
    df.loc[200:259, "x2"] = "n/a"  # not numbers: 60, 30 and 10 rows
    df.loc[260:289, "x2"] = "bad"
    df.loc[290:299, "x2"] = "-"
    return df


def _check(run_dir: str, data: str, out: Path, *extra: str):
    code = main(["monitor", f"run_dir={run_dir}", f"data={data}", f"output={out}", *extra])
    violations = json.loads((out / "constraint_violations.json").read_text())["violations"]
    return code, violations, json.loads((out / "statistics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("batch", ["clean", "drifted"])
def test_streamed_monitor_reports_the_pandas_paths_violations_and_exit_code(tiny_run, tmp_path, batch):
    df = make_binary_frame(600, 3).drop(columns=["y"]) if batch == "clean" else _drifted(4)
    data = _shards(df, tmp_path / "batch")
    code, violations, stats = _check(tiny_run.run_dir, data, tmp_path / "pandas")
    s_code, s_violations, s_stats = _check(tiny_run.run_dir, data, tmp_path / "ray", "predict.backend=ray")
    assert code == (0 if batch == "clean" else 3)
    assert (s_code, s_violations) == (code, violations)
    if batch == "drifted":
        kinds = {(v["feature_name"], v["constraint_check_type"]) for v in violations}
        assert {("x1", "baseline_drift_check"), ("color", "categorical_values_check"),
                ("x2", "data_type_check")} <= kinds
    assert s_stats["streamed"]["files"] == 5  # the checks came from the shards' merged aggregates
    assert s_stats["dataset"]["n_rows"] == stats["dataset"]["n_rows"] == 600
    for col, want in stats["features"].items():
        got = s_stats["features"][col]
        for key in ("count", "present", "missing", "invalid", "negative", "categorical"):
            assert got.get(key) == want.get(key), (col, key)
        if "numeric" in want and want["numeric"]["mean"] is not None:
            g, w = got["numeric"], want["numeric"]
            assert g["histogram"] == w["histogram"] and g["mean"] == pytest.approx(w["mean"], rel=1e-9)
            assert g["quantiles"] == pytest.approx(w["quantiles"], rel=1e-9)  # a sample of every row here


def test_columns_the_stream_cannot_aggregate_come_from_a_bounded_sample_and_say_so(tmp_path):
    from automl.monitor.baseline import build_baseline, dataset_statistics
    from automl.monitor.sources import read_batch
    from automl.monitor.streamed import streamed_batch
    from automl.raystart import init_ray

    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"num": rng.normal(size=n), "when": pd.date_range("2024-01-01", periods=n, freq="h").astype(str),
                       "note": [f"free text {i}" for i in range(n)]})
    df.loc[:9, "when"] = "not a date"
    stats, cons = build_baseline(df, {"num": "numeric", "when": "datetime", "note": "text"})
    files = [str(tmp_path / f"p{i}.parquet") for i in range(4)]
    for i, (f, rows) in enumerate(zip(files, np.array_split(np.arange(n), 4))):
        df.iloc[rows].drop(columns=["num", "note"] if i == 2 else []).to_parquet(f, index=False)
    init_ray(None, None)
    batch = streamed_batch(files, stats, cons, sample_rows=100)
    exact = dataset_statistics(read_batch(files), {"num": "numeric", "when": "datetime", "note": "text"})
    for col in ("num", "when", "note"):  # a file without a column: its rows are missing there, as in pandas
        got, want = batch.statistics["features"][col], exact["features"][col]
        assert [got[k] for k in ("count", "missing", "invalid")] == [want[k] for k in ("count", "missing", "invalid")]
    note = batch.statistics["sampling"]
    assert note["rows"] == 100 and note["of_rows"] == n and set(note["columns"]) >= {"when", "note"}
    assert len(batch.sample) == 100
    when = batch.statistics["features"]["when"]
    assert (when["count"], when["invalid"]) == (n, 10)  # the counts the checks use stay exact
    assert batch.statistics["features"]["num"]["numeric"]["quantiles"]  # from the sample


@pytest.mark.slow
def test_a_file_the_streamed_monitor_cannot_read_is_a_one_line_error(tiny_run, tmp_path, capsys):
    data = _shards(make_binary_frame(100, 1).drop(columns=["y"]), tmp_path / "batch", n=2)
    (Path(data) / "part-09.parquet").write_bytes(b"not parquet at all")
    assert main(["monitor", f"run_dir={tiny_run.run_dir}", f"data={data}", f"output={tmp_path / 'out'}",
                 "predict.backend=ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "part-09.parquet" in err[0], err
