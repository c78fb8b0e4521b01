"""Run folders are never corrupted by a failed, concurrent or repeated fit (issue 14, defects 2
and 9): a lock with a named holder, no silent reuse of a folder, `overwrite=true` that swaps a
complete new run into place, nothing written before the input is validated, and no temporary
folders left behind."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import VENV_BIN, automl_cli, make_binary_frame

LOCK = "automl.lock"


def fit_args(data: Path, out: Path, *extra: str) -> list:
    """A tiny fit: one linear candidate, two trials, no ensemble and no re-rank."""
    return ["fit", f"data.path={data}", "data.target=y", f"output_dir={out}", "budget.max_trials=2",
            "budget.time_limit_s=29", "search.ensemble=false", "validation.rerank_top=0",
            "~candidates.dpp0-xgboost", "~candidates.dpp2-mlp", "~candidates.dpp3-random_forest",
            "~candidates.dpp4-extra_trees", "~candidates.dpp5-svm", "~candidates.dpp6-knn",
            "~candidates.dpp7-lightgbm", *extra]


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_serves(run_dir: Path, frame: pd.DataFrame) -> None:
    """The run's manifest verifies every file and its model predicts."""
    import automl
    from automl.manifest import verify_run

    report = verify_run(str(run_dir))
    assert not (report["modified"] or report["missing"] or report["unlisted"]), report
    assert len(automl.load(str(run_dir)).predict(frame.drop(columns=["y"]))) == len(frame)


@pytest.fixture(scope="module")
def completed(tmp_path_factory):
    """One completed run, copied by each test that changes it."""
    base = tmp_path_factory.mktemp("completed")
    make_binary_frame(120, seed=1).to_csv(base / "train.csv", index=False)
    res = automl_cli(*fit_args(base / "train.csv", base / "run"), cwd=str(base))
    assert res.returncode == 0, res.stderr[-3000:]
    return base


def _copy(completed: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(completed / "run", run)
    return run


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["resume=true", "overwrite=true"])
def test_a_fit_with_bad_data_leaves_an_existing_completed_run_byte_identical(completed, tmp_path, mode):
    run = _copy(completed, tmp_path)
    before = snapshot(run)
    # a valid table, but no usable feature: found only after reading and typing the columns
    pd.DataFrame({"row_id": range(60), "y": ["a", "b"] * 30}).to_csv(tmp_path / "bad.csv", index=False)
    res = automl_cli(*fit_args(tmp_path / "bad.csv", run, mode), cwd=str(tmp_path))
    assert res.returncode == 2, res.stderr[-3000:]
    assert "no usable feature columns" in res.stderr
    assert snapshot(run) == before  # run_state.json, data/, baseline/ untouched; the lock released
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "run"]  # no staging folder left
    assert_serves(run, pd.read_csv(completed / "train.csv"))


@pytest.mark.slow
def test_a_fit_into_an_existing_run_without_resume_stops_and_changes_nothing(completed, tmp_path):
    run = _copy(completed, tmp_path)
    before = snapshot(run)
    res = automl_cli(*fit_args(completed / "train.csv", run), cwd=str(tmp_path))
    assert res.returncode == 2, res.stderr[-3000:]
    error = res.stderr.strip().splitlines()[-1]
    assert "already holds" in error and "resume=true" in error and "overwrite=true" in error \
        and "output_dir" in error, error
    assert snapshot(run) == before


@pytest.mark.slow
def test_overwrite_replaces_the_run_and_keeps_no_old_trial_folders(completed, tmp_path):
    run = _copy(completed, tmp_path)
    old_trials = {p.name for p in (run / "trials").iterdir()}
    old_id = json.loads((run / "run_state.json").read_text())["run_id"]
    res = automl_cli(*fit_args(completed / "train.csv", run, "overwrite=true"), cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((run / "manifest.json").read_text())
    listed = {f.split("/")[1] for f in manifest["files"] if f.startswith("trials/")}
    lb = pd.read_csv(run / "leaderboard.csv", dtype={"trial_id": str})
    assert listed == set(lb["trial_id"]) and not listed & old_trials
    assert {p.name for p in (run / "trials").iterdir()} == listed
    assert json.loads((run / "run_state.json").read_text())["run_id"] != old_id
    assert not (run / LOCK).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the old run and the staging folder are gone
    assert_serves(run, pd.read_csv(completed / "train.csv"))


@pytest.mark.slow
def test_a_second_fit_into_a_folder_in_use_exits_2_naming_the_holder(completed, tmp_path):
    out = tmp_path / "run"
    args = fit_args(completed / "train.csv", out, "search.executor=local")
    first_args = [a for a in args if not a.startswith("budget.")] + ["budget.max_trials=1000",
                                                                      "budget.time_limit_s=600"]
    first = subprocess.Popen([str(VENV_BIN / "automl"), *first_args], cwd=str(tmp_path), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=open(tmp_path / "first.log", "w"))
    try:
        deadline = time.time() + 120
        while not (out / "run_state.json").exists():  # the first fit is past its checks, in the search
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "the first fit did not start its search"
            time.sleep(0.2)
        for extra in ((), ("resume=true",)):
            second = automl_cli(*args, *extra, cwd=str(tmp_path), timeout=120)
            assert second.returncode == 2, second.stderr[-3000:]
            error = second.stderr.strip().splitlines()[-1]
            assert "in use by another automl run" in error, error
            assert f"pid {first.pid}" in error and socket.gethostname() in error, error
        assert first.poll() is None  # the holder is unharmed
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("interrupt", [False, True])
def test_a_ray_fit_leaves_no_temporary_folders(completed, tmp_path, interrupt):
    # Ray's sockets live under the temp dir: keep its path short (AF_UNIX paths are limited)
    tmp = Path(tempfile.mkdtemp(prefix="at-", dir="/tmp"))
    try:
        env = {**os.environ, "TMPDIR": str(tmp)}
        args = fit_args(completed / "train.csv", tmp_path / "run", "search.executor=ray", "budget.time_limit_s=60")
        if not interrupt:
            res = automl_cli(*args, env=env, cwd=str(tmp_path))
            assert res.returncode == 0, res.stderr[-3000:]
        else:  # Ctrl-C during the search: SIGINT to the foreground process group, as a terminal sends it
            proc = subprocess.Popen([str(VENV_BIN / "automl"), *args], cwd=str(tmp_path), env=env,
                                    start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True)
            for line in proc.stderr:
                if line.startswith("[automl] search:"):
                    os.killpg(proc.pid, signal.SIGINT)
                    break
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 130, err[-3000:]
            assert not (tmp_path / "run" / LOCK).exists()
        assert sorted(os.listdir(tmp)) == []  # no automl-tune-*, no Ray session folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _lock_log(caplog):
    import logging

    logger = logging.getLogger("automl.rundir.lock")
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    return logger


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over(tmp_path, caplog):
    import sys

    from automl.rundir.lock import LOCK_FILE, LockInfo, RunLock

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / LOCK_FILE).write_bytes(LockInfo(socket.gethostname(), gone.pid, 0.0, 1.0, time.time(), "old").to_bytes())
    logger = _lock_log(caplog)
    try:
        with RunLock(str(tmp_path)) as lock:
            assert json.loads((tmp_path / LOCK_FILE).read_text())["token"] == lock.info.token
    finally:
        logger.removeHandler(caplog.handler)
    assert "taking over the stale lock" in caplog.text and "its process is gone" in caplog.text
    assert sorted(os.listdir(tmp_path)) == []  # released: no lock, no temporary file


def test_a_lock_from_another_host_holds_until_its_heartbeat_is_old_and_a_taken_lock_is_noticed(tmp_path):
    from automl.errors import ArtifactError
    from automl.rundir.lock import LOCK_FILE, LockInfo, RunLock

    other = LockInfo("other-host", 4242, 0.0, time.time() - 60, time.time() - 5, "theirs")
    (tmp_path / LOCK_FILE).write_bytes(other.to_bytes())
    with pytest.raises(ArtifactError, match=r"in use by another automl run \(host other-host, pid 4242, since "):
        RunLock(str(tmp_path)).acquire()
    other.heartbeat = time.time() - 3600
    (tmp_path / LOCK_FILE).write_bytes(other.to_bytes())
    lock = RunLock(str(tmp_path)).acquire()
    try:
        assert lock.beat() and lock.check() is None
        (tmp_path / LOCK_FILE).write_bytes(other.to_bytes())  # another run took it over meanwhile
        assert not lock.beat()
        with pytest.raises(ArtifactError, match="lost its lock"):
            lock.check()
    finally:
        lock.release()
    assert (tmp_path / LOCK_FILE).read_bytes() == other.to_bytes()  # not ours any more: left alone


def test_the_lock_on_s3_is_a_conditional_create_and_a_stale_one_is_replaced(s3_bucket):
    from automl.errors import ArtifactError
    from automl.rundir.lock import LOCK_FILE, LockInfo, RunLock

    fs, url = s3_bucket["fs"], f"s3://{s3_bucket['bucket']}/runs/r1"
    first = RunLock(url).acquire()
    try:
        with pytest.raises(ArtifactError, match=rf"pid {os.getpid()}, since "):
            RunLock(url).acquire()
        assert first.beat()
    finally:
        first.release()
    fs.invalidate_cache()
    assert not fs.exists(f"{url}/{LOCK_FILE}")
    fs.pipe(f"{url}/{LOCK_FILE}", LockInfo("other-host", 7, 0.0, 1.0, 1.0, "old").to_bytes())
    with RunLock(url) as lock:  # stale: replaced with If-Match on its ETag
        fs.invalidate_cache()
        assert json.loads(fs.cat(f"{url}/{LOCK_FILE}"))["token"] == lock.info.token


def test_overwrite_on_s3_swaps_by_copy_with_the_manifest_last(s3_bucket):
    from automl.rundir.lock import RunLock
    from automl.rundir.staging import Workspace, check_output_dir, clean_leftovers

    fs, url = s3_bucket["fs"], f"s3://{s3_bucket['bucket']}/runs/r2"
    for rel, body in {"manifest.json": b"old manifest", "summary.json": b"old", "trials/old1/result.json": b"{}"}.items():
        fs.pipe(f"{url}/{rel}", body)
    with RunLock(url) as lock:
        clean_leftovers(url, {}, lock)
        space = Workspace(url, {}, check_output_dir(url, {}, resume=False, overwrite=True))
        assert space.dir != url and space.dir.rsplit("/", 1)[1].startswith(".r2.automl-new-")
        for rel, body in {"manifest.json": b"new manifest", "summary.json": b"new", "trials/new1/result.json": b"[]"}.items():
            fs.pipe(f"{space.dir}/{rel}", body)
        space.publish(lock)
        fs.invalidate_cache()
        files = {f.split("/runs/r2/", 1)[1]: fs.cat(f) for f in fs.find(url)}
        assert files.pop(LOCK) and files == {"manifest.json": b"new manifest", "summary.json": b"new",
                                             "trials/new1/result.json": b"[]"}
    fs.invalidate_cache()
    assert fs.ls(f"{s3_bucket['bucket']}/runs", detail=False) == [f"{s3_bucket['bucket']}/runs/r2"]
