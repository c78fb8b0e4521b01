"""The memory plan (automl/search/memory.py) and out-of-memory trials, through the real CLI.

Before the search each candidate's peak memory per trial is predicted from the rows, the columns
and their encoding; a candidate over the memory one trial may use (here set small with
``scale.memory_per_trial_mb``) is skipped with its reason in the log and summary.json, and the run
completes with the others. A trial whose fit raises MemoryError is a failed trial with the reason
"out of memory", and the run goes on.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.search.memory import DataShape, peak_mb, plan_memory, processed_width
from conftest import automl_cli, make_binary_frame

TESTS_DIR = str(Path(__file__).resolve().parent)
ONLY_LINEAR_AND_SVM = "candidates.include=[linear,svm]"


def _env():
    return {"PYTHONPATH": os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def _shape(rows: int, levels: int = 3) -> DataShape:
    X = pd.DataFrame({"x": np.arange(rows, dtype=float), "c": [f"v{i % levels}" for i in range(rows)]})
    folds = [(np.arange(rows // 5, rows), np.arange(rows // 5))]
    return DataShape.of(X, {"x": "numeric", "c": "categorical"}, folds, n_classes=2)


class _Cand:
    def __init__(self, name, algorithm, processing=None, space=None):
        self.name, self.algorithm = name, algorithm
        self.processing, self.space = processing or {"categorical": "onehot"}, space or {}


def test_svm_kernel_and_one_hot_width_grow_the_estimate():
    small, large = _shape(1000), _shape(6000)
    assert peak_mb("svm", {}, {}, large) > peak_mb("svm", {}, {}, small) + 150  # the kernel cache, capped at 200 MB
    narrow, wide = _shape(6000, levels=3), _shape(6000, levels=25)
    assert peak_mb("linear", {"categorical": "onehot"}, {}, wide) > peak_mb("linear", {"categorical": "onehot"}, {}, narrow)
    # an ordinal encoding keeps one column per categorical, whatever its levels
    assert processed_width(wide, {"categorical": "ordinal"}) == processed_width(narrow, {"categorical": "ordinal"}) == 2
    assert processed_width(wide, {"categorical": "onehot"}) == 1 + 25 + 1  # x, 25 levels, the infrequent column


def test_plan_skips_only_the_candidates_over_the_limit_with_a_reason():
    plan = plan_memory([_Cand("lin", "linear"), _Cand("svm", "svm")], _shape(6000), (250.0, "test"))
    assert plan.peak_mb["lin"] < 250 < plan.peak_mb["svm"]
    assert list(plan.skipped) == ["svm"] and "predicted peak memory" in plan.skipped["svm"]
    assert plan.record()["limit_mb"] == 250.0
    assert plan_memory([_Cand("svm", "svm")], _shape(6000), None).skipped == {}  # no limit known: estimates only


@pytest.fixture
def table(tmp_path):
    make_binary_frame(6000, seed=3).to_csv(tmp_path / "train.csv", index=False)
    return tmp_path


@pytest.mark.slow
def test_candidate_predicted_over_a_small_memory_limit_is_skipped_and_the_run_completes(table):
    res = automl_cli("fit", f"data.path={table}/train.csv", "data.target=y", f"output_dir={table}/run",
                     ONLY_LINEAR_AND_SVM, "scale.memory_per_trial_mb=250", "budget.time_limit_s=60",
                     "budget.max_trials=2", "search.ensemble=false",
                     "validation.cv_max_rows=1000",  # a holdout: one quick fit a trial "search.executor=local", "report=false", "notebooks=false",
                     cwd=str(table))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "candidate dpp5-svm skipped: predicted peak memory" in res.stderr
    assert "exceeds the 250 MB a trial may use (scale.memory_per_trial_mb)" in res.stderr
    summary = json.loads((table / "run" / "summary.json").read_text())
    assert "predicted peak memory" in summary["skipped_candidates"]["dpp5-svm"]
    assert summary["candidates"] == ["dpp1-linear"]
    plan = summary["memory_plan"]
    assert plan["limit_mb"] == 250 and plan["peak_mb"]["dpp5-svm"] > 250 > plan["peak_mb"]["dpp1-linear"]
    lb = pd.read_csv(table / "run" / "leaderboard.csv")
    assert set(lb["candidate"]) == {"dpp1-linear"} and (lb["status"] == "completed").any()


def test_no_candidate_under_an_explicit_limit_is_a_one_line_config_error(table):
    res = automl_cli("fit", f"data.path={table}/train.csv", "data.target=y", f"output_dir={table}/run",
                     ONLY_LINEAR_AND_SVM, "scale.memory_per_trial_mb=10", "search.executor=local", cwd=str(table))
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert "no candidate fits in scale.memory_per_trial_mb=10 MB" in last and "raise scale.memory_per_trial_mb" in last
    assert not (table / "run" / "model.skops").exists()


@pytest.mark.slow
def test_trial_out_of_memory_is_a_failed_trial_and_the_run_goes_on(tmp_path):
    make_binary_frame(300, seed=4).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "space.yaml").write_text("# test-only: no parameters\nparams: {}\nportfolio:\n  - {}\n")
    res = automl_cli("fit", f"data.path={tmp_path}/train.csv", "data.target=y", f"output_dir={tmp_path}/run",
                     "candidates.include=[dpp1-linear,dpp2-mlp]", "budget.time_limit_s=12", "budget.max_trials=4",
                     "search.executor=local", "search.ensemble=false", "report=false", "notebooks=false",
                     "candidates.dpp2-mlp.algorithm=clock_memory_algorithms:oversized",
                     f"candidates.dpp2-mlp.search_space={tmp_path}/space.yaml", env=_env(), cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    lb = pd.read_csv(tmp_path / "run" / "leaderboard.csv")
    hog = lb[lb["candidate"] == "dpp2-mlp"]
    failed = hog[hog["status"] == "failed"]  # (one still queued at the search's end is "stopped")
    assert len(failed) and not (hog["status"] == "completed").any(), lb[["candidate", "status", "error"]]
    assert failed["error"].str.startswith("out of memory (Unable to allocate").all()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["best"]["candidate"] == "dpp1-linear" and summary["n_trials_failed"] == len(failed)


def test_ray_memory_monitor_kill_reads_as_out_of_memory(tmp_path):
    from automl.search.tuner import _crash_reason

    class Trial:  # what Tune hands the callback: the error text in the trial's error file
        error_file = str(tmp_path / "error.txt")

    Path(Trial.error_file).write_text("ray.exceptions.OutOfMemoryError: Task was killed due to the node "
                                      "running low on memory.\nMemory on the node was 7.5GB / 8GB")
    assert _crash_reason(Trial()).startswith("out of memory")
