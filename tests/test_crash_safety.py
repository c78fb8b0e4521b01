"""Crash safety (issue 14, acceptance): `automl fit` killed with SIGKILL at five moments (reading,
search, refit, report, manifest). A fresh run folder then resumes to a complete run with
`resume=true`; a folder that held an earlier completed run (`overwrite=true`) still verifies and
serves that run, byte for byte.

The fit runs in its own process (and process group) through `automl.cli.main`, with one extra
log handler: when the fit logs the line that marks the moment, the handler SIGKILLs the group
(the fit and any worker it forked) on the spot. So the kill lands exactly in that stage, however
loaded the machine is, instead of whenever a watching process would get to it."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import automl_cli, make_binary_frame
from test_safety_rundir import LOCK, assert_serves, fit_args, snapshot

# the moment -> the start of a log line the fit writes in that stage
MOMENTS = {
    "reading": "read ",  # read N rows x M columns: the table is in memory, nothing checked or written yet
    "search": "trials: 1 done",  # the first trial has finished and been persisted
    "refit": "best trial ",  # the leaderboard is written; the best trial is about to be refit
    "report": "wrote report.html",  # summary and report written, no manifest yet
    "manifest": "manifest.json: sha256 of",  # the manifest is written; the run is not yet published
}
KILLER = """
import logging, os, signal, sys
from automl.cli import main, setup_logging

class KillAt(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith(os.environ["KILL_AT"]):
            os.killpg(os.getpgid(0), signal.SIGKILL)

setup_logging()
logging.getLogger("automl").addHandler(KillAt())
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """Training data, other data for the new fits, and one completed run."""
    base = tmp_path_factory.mktemp("earlier")
    make_binary_frame(120, seed=1).to_csv(base / "train.csv", index=False)
    make_binary_frame(120, seed=2).to_csv(base / "new.csv", index=False)
    res = automl_cli(*fit_args(base / "train.csv", base / "run"), cwd=str(base))
    assert res.returncode == 0, res.stderr[-3000:]
    return base


def fit_killed_at(moment: str, args: list, cwd: Path) -> None:
    env = {**os.environ, "KILL_AT": MOMENTS[moment]}
    res = subprocess.run([sys.executable, "-c", KILLER, *args], cwd=str(cwd), env=env, capture_output=True,
                         text=True, timeout=240, start_new_session=True)
    assert res.returncode == -signal.SIGKILL, f"not killed at {moment}: {res.stderr[-3000:]}"
    assert MOMENTS[moment] in res.stderr


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_fit_killed_at_any_moment_resumes_to_a_complete_run(earlier, tmp_path, moment):
    out = tmp_path / "run"
    fit_killed_at(moment, fit_args(earlier / "new.csv", out), tmp_path)
    res = automl_cli(*fit_args(earlier / "new.csv", out, "resume=true"), cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    assert not (out / LOCK).exists()
    lb = pd.read_csv(out / "leaderboard.csv", dtype={"trial_id": str})
    assert lb["trial_id"].is_unique and (lb["status"] == "completed").any()
    assert_serves(out, pd.read_csv(earlier / "new.csv"))


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_an_overwrite_killed_at_any_moment_leaves_the_earlier_run_unchanged(earlier, tmp_path, moment):
    run = tmp_path / "run"
    shutil.copytree(earlier / "run", run)
    before = snapshot(run)
    fit_killed_at(moment, fit_args(earlier / "new.csv", run, "overwrite=true"), tmp_path)
    after = snapshot(run)
    after.pop(LOCK, None)  # the killed fit's lock stays behind (stale: its process is gone)
    assert after == before
    assert_serves(run, pd.read_csv(earlier / "train.csv"))
    if moment == "manifest":  # the new run was complete but not yet in place: the next fit takes over
        res = automl_cli(*fit_args(earlier / "new.csv", run, "overwrite=true"), cwd=str(tmp_path))
        assert res.returncode == 0, res.stderr[-3000:]
        assert "taking over the stale lock" in res.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the staging folder is gone
        assert not (run / LOCK).exists() and snapshot(run) != before
        assert_serves(run, pd.read_csv(earlier / "new.csv"))
