"""The memory plan (automl/search/memory.py) and out-of-memory trials, through the real CLI.

Before the search each candidate's peak memory per trial is predicted from the rows, the columns
and their encoding; a candidate over the memory one trial may use (here set small with
``scale.memory_per_trial_mb``) trains on the largest sample of each fold's rows that fits, and its
final model on the most rows that fit; when even ``scale.memory_sample_min_rows`` rows do not fit it
is skipped with its reason in the log and summary.json, and the run completes with the others. A trial whose fit raises MemoryError is a failed trial with the reason
"out of memory", and the run goes on.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
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


def test_plan_down_samples_a_candidate_over_the_limit_to_the_most_rows_that_fit():
    shape = _shape(6000)
    plan = plan_memory([_Cand("lin", "linear"), _Cand("svm", "svm")], shape, (250.0, "test"), min_sample_rows=1000)
    assert plan.skipped == {} and list(plan.sampled) == ["svm"]
    sample = plan.sampled["svm"]
    assert 1000 <= sample["train_rows"] < shape.train_rows and sample["refit_rows"] >= sample["train_rows"]
    fits = replace(shape, train_rows=sample["train_rows"])
    assert peak_mb("svm", {}, {}, fits) <= 250 < peak_mb("svm", {}, {}, replace(fits, train_rows=fits.train_rows + 1))
    assert "its trials fit on a sample of" in sample["reason"] and plan.record()["sampled"]["svm"] == sample
    # the floor does not fit: skipped, as without down-sampling
    floor = plan_memory([_Cand("svm", "svm")], shape, (250.0, "test"), min_sample_rows=4000)
    assert list(floor.skipped) == ["svm"] and floor.sampled == {}


@pytest.fixture
def table(tmp_path):
    make_binary_frame(6000, seed=3).to_csv(tmp_path / "train.csv", index=False)
    return tmp_path


@pytest.mark.slow
def test_candidate_predicted_over_a_small_memory_limit_is_skipped_and_the_run_completes(table):
    res = automl_cli("fit", f"data.path={table}/train.csv", "data.target=y", f"output_dir={table}/run",
                     ONLY_LINEAR_AND_SVM, "scale.memory_per_trial_mb=250", "budget.time_limit_s=60",
                     "scale.memory_sample_min_rows=5000",  # more than a fold's 4800 rows: no sample fits
                     "budget.max_trials=2", "search.ensemble=false",
                     "validation.cv_max_rows=1000",  # a holdout: one quick fit a trial
                     "search.executor=local", "report=false", "notebooks=false",
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


@pytest.mark.slow
def test_candidate_over_the_limit_trains_on_the_sample_that_fits_and_the_run_completes(table):
    res = automl_cli("fit", f"data.path={table}/train.csv", "data.target=y", f"output_dir={table}/run",
                     "candidates.include=[svm]", "scale.memory_per_trial_mb=250", "budget.time_limit_s=60",
                     "budget.max_trials=2", "search.ensemble=false", "validation.cv_max_rows=1000",
                     "search.executor=local", "report=false", "notebooks=false", cwd=str(table))
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((table / "run" / "summary.json").read_text())
    sample = summary["memory_plan"]["sampled"]["dpp5-svm"]
    assert sample["estimate_mb"] > 250 == sample["limit_mb"] and 1000 <= sample["train_rows"] < 4800
    assert summary["candidates"] == ["dpp5-svm"] and "dpp5-svm" not in summary.get("skipped_candidates", {})
    assert res.stderr.count("candidate dpp5-svm down-sampled: predicted peak memory") == 1
    lb = pd.read_csv(table / "run" / "leaderboard.csv")
    done = lb[lb["status"] == "completed"]
    assert len(done) and (done["memory_sample_rows"] == sample["train_rows"]).all(), lb.T
    # the final model is refit on the rows that fit, not on all 6000
    assert f"final model of dpp5-svm: refit on a sample of {sample['refit_rows']} of the 6000 rows" in res.stderr
    assert (table / "run" / "model.skops").exists()


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


def test_a_worker_killed_after_the_kernels_oom_killer_struck_reads_as_out_of_memory(tmp_path):
    """A worker SIGKILLed by the kernel (not Ray's memory monitor) is out of memory when the
    cgroup's (v2 memory.events, v1 memory.oom_control) or the machine's oom_kill count rose."""
    from automl.search.memory import OomKills, oom_kills
    from automl.search.trial import WORKER_DIED

    v2, v1 = tmp_path / "memory.events", tmp_path / "memory.oom_control"
    v2.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    paths = (str(v2), str(v1), str(tmp_path / "absent"))
    assert oom_kills(paths) == 3 and oom_kills((str(tmp_path / "absent"),)) is None
    kills = OomKills(paths)
    assert kills.worker_died() == WORKER_DIED  # no new kill: another death (a signal, a crash)
    v2.write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n")
    assert kills.worker_died().startswith("out of memory (the kernel's OOM killer")
    assert kills.worker_died() == WORKER_DIED  # counted once
    assert OomKills((str(tmp_path / "absent"),)).worker_died() == WORKER_DIED  # no counter readable


def test_rays_worker_died_text_without_an_oom_kill_keeps_the_worker_died_reason(tmp_path):
    from automl.search.memory import OOM_KILLS, oom_kills
    from automl.search.tuner import _crash_reason
    from automl.search.trial import WORKER_DIED

    class Trial:  # Ray's text for a worker ended by SIGKILL: it names the OOM killer only as a possible cause
        error_file = str(tmp_path / "error.txt")

    Path(Trial.error_file).write_text(
        "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.\n"
        "Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error "
        "code 2. End of file. There are some potential root causes. (1) The process is killed by SIGKILL by OOM "
        "killer due to high memory usage. (2) ray stop --force is called.")
    OOM_KILLS.seen = oom_kills()  # the machine's count now: no kill since
    assert _crash_reason(Trial()) == WORKER_DIED
