"""Fault isolation through the real CLI, with real Ray and with the search without Ray (forked
workers): a trial that raises, one that outlives its time limit, and one whose worker process
is killed by SIGKILL are each recorded on the leaderboard with the reason, and the run
finishes with the rest.

The misbehaving models are test-only custom algorithms (`faulty_algorithms:<factory>`, see
tests/faulty_algorithms.py), reached through PYTHONPATH; automl's registry knows nothing of them.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import automl_cli, make_binary_frame

TESTS_DIR = str(Path(__file__).resolve().parent)
SPACE = """# Test-only search space for tests/faulty_algorithms.py: one harmless parameter.
params:
  model.seconds: {type: float, low: 0.2, high: 0.4, init: 0.3}
"""
OFF = ["~candidates.dpp0-xgboost", "~candidates.dpp3-random_forest", "~candidates.dpp4-extra_trees",
       "~candidates.dpp7-lightgbm"]


def faulty(slot: str, factory: str, space: Path) -> list[str]:
    """Overrides that turn the default candidate ``slot`` into a test-only faulty algorithm."""
    return [f"candidates.{slot}.algorithm=faulty_algorithms:{factory}", f"candidates.{slot}.search_space={space}"]


@pytest.fixture
def workdir(tmp_path):
    make_binary_frame(200, seed=2).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "space.yaml").write_text(SPACE)
    return tmp_path


def _env():
    return {"PYTHONPATH": os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["ray", "local"])
def test_raise_timeout_and_killed_worker_are_isolated(workdir, executor):
    # ray: Tune's workers and their watchdog; local: forked workers the search kills itself.
    space = workdir / "space.yaml"
    res = automl_cli("fit", f"data.path={workdir}/train.csv", "data.target=y", f"output_dir={workdir}/run",
                     "budget.max_trials=6", "budget.time_limit_s=150", "budget.trial_time_limit_s=3",
                     f"search.executor={executor}",
                     # about the trials: the linear portfolio's two points could otherwise form an ensemble
                     "search.ensemble=false",
                     *OFF, *faulty("dpp2-mlp", "boom", space), *faulty("dpp5-svm", "die", space),
                     *faulty("dpp6-knn", "hang", space), env=_env(), cwd=str(workdir))
    assert res.returncode == 0, res.stderr[-3000:]
    assert ("without Ray" in res.stderr) == (executor == "local"), res.stderr[-3000:]
    lb = pd.read_csv(workdir / "run" / "leaderboard.csv", dtype={"trial_id": str})
    assert lb["trial_id"].is_unique
    by = {c: g for c, g in lb.groupby("candidate")}
    assert set(by) == {"dpp1-linear", "dpp2-mlp", "dpp5-svm", "dpp6-knn"}, lb[["candidate", "status"]]
    assert (by["dpp1-linear"]["status"] == "completed").all()
    raised = by["dpp2-mlp"]
    assert (raised["status"] == "failed").all() and raised["error"].str.contains("raised on purpose").all()
    killed = by["dpp5-svm"]
    assert (killed["status"] == "failed").all() and killed["error"].str.contains("worker process died").all()
    hung = by["dpp6-knn"]
    assert (hung["status"] == "timeout").all() and hung["error"].str.contains("time limit of 3 s").all()
    summary = json.loads((workdir / "run" / "summary.json").read_text())
    assert summary["best"]["candidate"] == "dpp1-linear"
    assert summary["n_trials_failed"] == len(raised) + len(killed) and summary["n_trials_timeout"] == len(hung)


@pytest.mark.slow
def test_every_trial_failing_ends_with_the_commonest_cause(workdir):
    space = workdir / "space.yaml"
    res = automl_cli("fit", f"data.path={workdir}/train.csv", "data.target=y", f"output_dir={workdir}/run",
                     "budget.max_trials=3", "budget.time_limit_s=120", *OFF, "~candidates.dpp1-linear",
                     "~candidates.dpp5-svm", "~candidates.dpp6-knn", *faulty("dpp2-mlp", "boom", space),
                     env=_env(), cwd=str(workdir))
    assert res.returncode == 2, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert "Traceback" not in res.stderr
    assert "all 3 trial(s) failed" in last and "faulty algorithm raised on purpose" in last, last


def _hang_under_watchdog(limit: float, marker: str) -> None:
    from automl.search.watchdog import TrialWatchdog

    with TrialWatchdog(limit, lambda: Path(marker).write_text("expired")):
        time.sleep(60)


def test_watchdog_ends_a_hung_process_and_records_why(tmp_path):
    from automl.search.watchdog import EXIT_CODE

    marker = tmp_path / "expired"
    proc = multiprocessing.get_context("spawn").Process(target=_hang_under_watchdog, args=(0.5, str(marker)))
    proc.start()
    proc.join(timeout=30)
    assert proc.exitcode == EXIT_CODE
    assert marker.read_text() == "expired"


def test_watchdog_cheap_path_leaves_no_timer_running():
    import threading

    from automl.search.watchdog import TrialWatchdog

    fired = []
    before = threading.active_count()
    for _ in range(50):
        with TrialWatchdog(30, lambda: fired.append(1)):
            pass
    time.sleep(0.1)
    assert not fired and threading.active_count() <= before
