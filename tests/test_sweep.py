"""`automl fit -m` (issue 17, point 1): sweep.parallel points at a time, each in its own run folder,
then sweep_summary.csv and a printed table in the sweep folder."""
from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import yaml

from automl.cli import main
from automl.sweep import SUMMARY_FILE, plan, quote
from conftest import automl_cli, make_binary_frame

TINY = ["budget.max_trials=2", "budget.time_limit_s=5", "search.executor=local", "search.ensemble=false",
        "validation.n_folds=2", "validation.rerank_top=0",
        *[f"~candidates.{name}" for name in ("dpp0-xgboost", "dpp2-mlp", "dpp3-random_forest", "dpp4-extra_trees",
                                              "dpp5-svm", "dpp6-knn", "dpp7-lightgbm")]]  # dpp1-linear only


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep_data") / "d.csv"
    make_binary_frame(120, seed=3).to_csv(path, index=False)
    return path


def test_a_sweep_plan_gives_each_point_its_folder_and_its_swept_overrides(tmp_path):
    points, cfgs, folder = plan([f"output_dir={tmp_path}/sw", "seed=1,2", "metric=accuracy,auc", "budget.max_trials=3"])
    assert folder == str(tmp_path / "sw")
    assert [p.label for p in points] == ["seed=1 metric=accuracy", "seed=1 metric=auc", "seed=2 metric=accuracy",
                                         "seed=2 metric=auc"]
    assert [p.output_dir for p in points] == [f"{tmp_path}/sw/{i}" for i in range(4)]
    assert [c.output_dir for c in cfgs] == [p.output_dir for p in points]
    assert all(p.overrides[-1] == f"output_dir={p.output_dir}" for p in points)
    assert quote("/tmp/my runs/a'b") == "'/tmp/my runs/a\\'b'" and quote("s3://bucket/x-1") == "s3://bucket/x-1"


def test_every_point_is_checked_before_any_runs(capsys, tmp_path):
    assert main(["fit", "-m", "metric=accuracy,bogus", f"output_dir={tmp_path}/sw"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metric 'bogus' is unknown" in err[0]
    assert not (tmp_path / "sw").exists()
    assert main(["fit", "-m", "sweep.parallel=0", "seed=1,2"]) == 2
    assert "sweep.parallel must be at least 1" in capsys.readouterr().err


def test_failed_points_are_rows_of_the_summary_and_the_sweep_goes_on(capsys, tmp_path, table):
    code = main(["fit", "-m", f"data.path={table}", "data.target=nope,gone", f"output_dir={tmp_path}/sw", *TINY])
    out = capsys.readouterr().out
    assert code == 2
    summary = pd.read_csv(tmp_path / "sw" / SUMMARY_FILE)
    assert summary["status"].tolist() == ["failed", "failed"]
    assert summary["overrides"].tolist() == ["data.target=nope", "data.target=gone"]
    assert summary["error"].str.contains("columns are").all()
    assert "data.target=gone" in out and "error" in out  # the printed table


@pytest.mark.slow
def test_a_parallel_sweep_runs_two_fits_at_once_each_in_its_folder_then_a_summary_table(tmp_path, table):
    sweep = tmp_path / "sweep"
    res = automl_cli("fit", "-m", f"data.path={table}", "data.target=y", "seed=1,2", "sweep.parallel=2",
                     f"output_dir={sweep}", *TINY, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    # both started before either ended: two at a time
    events = [line for line in res.stderr.splitlines() if "sweep run" in line]
    started = [i for i, line in enumerate(events) if " started " in line]
    ended = [i for i, line in enumerate(events) if " done in " in line or " failed: " in line]
    assert len(started) == 2 and len(ended) == 2 and max(started) < min(ended), events
    runs = []
    for i, seed in enumerate((1, 2)):
        run = sweep / str(i)
        assert (run / "summary.json").is_file() and (run / "model.skops").is_file()
        runs.append(json.loads((run / "summary.json").read_text()))
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["seed"] == seed and config["ray"]["num_cpus"] == max(1, (os.cpu_count() or 1) // 2)
        assert (sweep / f"{i}.log").is_file()
    summary = pd.read_csv(sweep / SUMMARY_FILE)
    assert summary.columns.tolist()[:9] == ["run", "overrides", "status", "metric", "score", "test_score",
                                            "best_candidate", "wall_s", "run_dir"]
    assert summary["overrides"].tolist() == ["seed=1", "seed=2"] and (summary["status"] == "ok").all()
    assert summary["run_dir"].tolist() == [str(sweep / "0"), str(sweep / "1")]
    # each row is its run's summary.json (a 5 s budget on a busy machine may end in the fallback model: no score)
    for row, run in zip(summary.to_dict("records"), runs):
        assert row["metric"] == run["metric"] and row["best_candidate"] == run["best"]["candidate"] == "dpp1-linear"
        score = run["best"]["score"]
        assert pd.isna(row["score"]) if score is None else row["score"] == pytest.approx(score)
        assert row["wall_s"] + 0.1 >= run["wall_time_s"] > 0  # the process, start-up included
    assert not [p.name for p in sweep.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert "overrides" in res.stdout and str(sweep / "1") in res.stdout  # the printed table
    assert f"sweep summary: {sweep / SUMMARY_FILE}" in res.stdout


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("AUTOML_TEST_RAY_SWEEP") != "1",
                    reason="about 70 s on 2 busy cores (a Ray cluster, two Tune searches): AUTOML_TEST_RAY_SWEEP=1 runs it")
def test_with_ray_address_the_points_run_as_ray_tasks_on_that_cluster(tmp_path, table):
    """`ray.address=local`: a fresh local Ray cluster, joined as a remote one is (automl's code
    shipped to its workers); each point is a Ray task that fits the config the sweep composed."""
    sweep = tmp_path / "sweep"
    tiny = [a for a in TINY if not a.startswith(("search.executor", "budget.time_limit_s"))]
    res = automl_cli("fit", "-m", f"data.path={table}", "data.target=y", "seed=1,2", "sweep.parallel=2",
                     "ray.address=local", "ray.num_cpus=2", "budget.time_limit_s=20", f"output_dir={sweep}", *tiny,
                     env={"RAY_USAGE_STATS_ENABLED": "0"}, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("sent to Ray") == 2
    summary = pd.read_csv(sweep / SUMMARY_FILE)
    assert summary["overrides"].tolist() == ["seed=1", "seed=2"] and (summary["status"] == "ok").all()
    for i in (0, 1):
        assert (sweep / str(i) / "summary.json").is_file()
        assert "done in" in (sweep / f"{i}.log").read_text()  # the task's own log lines came back
