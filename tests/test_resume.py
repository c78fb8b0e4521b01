"""Kill the driver with SIGKILL mid-search, then `automl fit ... resume=true` continues the same
run, on local disk and on S3 (moto): finished trials are kept and not rerun, the budgets count
what was spent, and the final leaderboard holds every trial exactly once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from conftest import VENV_BIN, automl_cli, make_binary_frame

TESTS_DIR = str(Path(__file__).resolve().parent)
SPACE = """# Test-only search space for tests/faulty_algorithms.py:sleepy (a slow, valid model).
params:
  model.seconds: {type: float, low: 0.2, high: 0.4, init: 0.3}
"""
MAX_TRIALS = 10
SECRET = "SuperSecretValue-123"


def _fs(output_dir: str):
    import fsspec

    return fsspec.core.url_to_fs(output_dir)


def _results(output_dir: str) -> dict:
    fs, root = _fs(output_dir)
    fs.invalidate_cache()
    paths = fs.glob(f"{root}/trials/*/result.json")
    return {p.split("/")[-2]: fs.cat(p) for p in paths}


def _fit_args(tmp_path: Path, output_dir: str, data_path: str, extra=()) -> list[str]:
    return ["fit", f"data.path={data_path}", "data.target=y", f"output_dir={output_dir}",
            f"budget.max_trials={MAX_TRIALS}", "budget.time_limit_s=300", "search.ensemble=false",
            "~candidates.dpp0-xgboost", "~candidates.dpp1-linear", "~candidates.dpp3-random_forest",
            "~candidates.dpp4-extra_trees", "~candidates.dpp5-svm", "~candidates.dpp6-knn", "~candidates.dpp7-lightgbm",
            "candidates.dpp2-mlp.algorithm=faulty_algorithms:sleepy",
            f"candidates.dpp2-mlp.search_space={tmp_path / 'space.yaml'}", *extra]


def _kill_mid_search(args: list[str], output_dir: str, env: dict, cwd: Path, at_least: int = 3) -> None:
    """Start `automl fit` in its own process group, wait for finished trials, SIGKILL the group
    (the driver and the local Ray it started; nothing else)."""
    exe = VENV_BIN / "automl"
    proc = subprocess.Popen([str(exe)] + args, env=env, cwd=str(cwd), stdout=subprocess.DEVNULL,
                            stderr=open(cwd / "first.log", "w"), start_new_session=True)
    try:
        deadline = time.time() + 240
        while len(_results(output_dir)) < at_least:
            assert proc.poll() is None, (cwd / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "no trial finished in time"
            time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _check_resumed(tmp_path: Path, output_dir: str, env: dict, data_path: str, extra=()) -> None:
    _kill_mid_search(_fit_args(tmp_path, output_dir, data_path, extra), output_dir, env, tmp_path)
    fs, root = _fs(output_dir)
    assert not fs.exists(f"{root}/summary.json"), "the first attempt finished before it was killed"
    before = _results(output_dir)
    spent_before = json.loads(fs.cat(f"{root}/run_state.json"))["spent_s"]
    assert 3 <= len(before) < MAX_TRIALS

    res = automl_cli(*_fit_args(tmp_path, output_dir, data_path, extra), "resume=true", env=env,
                     cwd=str(tmp_path), timeout=400)
    assert res.returncode == 0, res.stderr[-4000:]
    assert f"{len(before)} finished trial(s) kept" in res.stderr
    after = _results(output_dir)
    # completed trials were kept as they were, not rerun
    assert all(after[tid] == blob for tid, blob in before.items())
    fs.invalidate_cache()
    with fs.open(f"{root}/leaderboard.csv") as fh:
        lb = pd.read_csv(fh, dtype={"trial_id": str})
    assert lb["trial_id"].is_unique and len(lb) == MAX_TRIALS  # the trial budget counts earlier trials
    assert set(before) <= set(lb["trial_id"]) and set(lb["trial_id"]) <= set(after)
    summary = json.loads(fs.cat(f"{root}/summary.json"))
    assert summary["resumed"] is True and summary["n_trials"] == MAX_TRIALS
    assert summary["wall_time_total_s"] >= spent_before + summary["wall_time_s"] - 1  # time counts both
    # earlier trials informed the searcher and the warm start was not repeated
    assert "searcher continues from" in res.stderr
    assert (lb["model.seconds"].round(6) == 0.3).sum() == 1


@pytest.mark.slow
def test_resume_after_kill_local(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    make_binary_frame(200, seed=4).to_csv(tmp_path / "train.csv", index=False)
    env = {**os.environ, "PYTHONPATH": TESTS_DIR}
    _check_resumed(tmp_path, str(tmp_path / "run"), env, str(tmp_path / "train.csv"))


@pytest.mark.slow
def test_resume_after_kill_s3(tmp_path, s3_bucket):
    (tmp_path / "space.yaml").write_text(SPACE)
    data = f"s3://{s3_bucket['bucket']}/train.csv"
    with s3_bucket["fs"].open(data, "w") as fh:
        make_binary_frame(200, seed=5).to_csv(fh, index=False)
    env = {**os.environ, **s3_bucket["env"], "PYTHONPATH": TESTS_DIR}
    out = f"s3://{s3_bucket['bucket']}/runs/resumed"
    # a storage credential passed as a config key must not reach the saved config
    _check_resumed(tmp_path, out, env, data, extra=["+data.storage_options.key=testing", f"+data.storage_options.secret={SECRET}"])
    fs = s3_bucket["fs"]
    config = fs.cat(f"{out}/config.yaml").decode()
    assert SECRET not in config and "secret: '***'" in config


def test_resume_counts_spent_time_and_needs_an_output_dir(tmp_path):
    from automl.config import compose_config
    from automl.errors import ConfigError
    from automl.search.resume import begin_run, result_row, write_result

    with pytest.raises(ConfigError, match="resume=true needs output_dir"):
        compose_config(["resume=true"])
    out = str(tmp_path / "run")
    first = begin_run(OmegaConf.create({"resume": False}), out, {}, started=time.time() - 42)
    write_result(out, result_row("t1", {"candidate": "c"}, {"status": "completed", "objective": 0.5}, first.run_id))
    write_result(out, result_row("old", {"candidate": "c"}, {"status": "completed"}, "another-run"))
    first.save()
    again = begin_run(OmegaConf.create({"resume": True}), out, {}, started=time.time())
    assert again.run_id == first.run_id and again.spent_before_s >= 42
    assert [r["trial_id"] for r in again.previous_rows] == ["t1"]  # other runs' leftovers are ignored
    fresh = begin_run(OmegaConf.create({"resume": False}), out, {}, started=time.time())
    assert fresh.run_id != first.run_id and fresh.previous_rows == []
