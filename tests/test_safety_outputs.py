"""Outputs are all-or-nothing: predict and monitor never wipe an input, never replace a user's file
without overwrite=true, and never leave a partial file at the final path (error, exception, kill -9)."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl import artifacts as art
from automl.cli import main
from conftest import VENV_BIN, make_binary_frame


def _rows(n: int, seed: int = 3) -> pd.DataFrame:
    return make_binary_frame(n, seed=seed).drop(columns=["y"])


@pytest.fixture(autouse=True)
def _fresh_log_handler():
    """`main` adds its stderr handler once per process; drop it so each test's capsys sees the log."""
    logger = logging.getLogger("automl")
    saved = list(logger.handlers)
    logger.handlers.clear()
    yield
    logger.handlers[:] = saved


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith("[automl]")]  # log lines
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def _visible(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# ----------------------------------------------------------------------------- atomic writes
def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "result.json"
    art.write_json(str(target), {"v": 1})
    with pytest.raises(RuntimeError):
        with art.atomic_open(str(target), "wb") as fh:
            fh.write(b'{"v": 2, "half')
            raise RuntimeError("disk went away")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]  # the temp is gone
    art.write_json(str(target), {"v": 3})
    assert json.loads(target.read_text()) == {"v": 3}
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_a_failed_write_to_s3_commits_no_object(s3_bucket):
    fs, b = s3_bucket["fs"], s3_bucket["bucket"]
    url = f"s3://{b}/out/result.csv.gz"
    with pytest.raises(KeyboardInterrupt):
        with art.atomic_open(url, "wb", compression="gzip") as fh:
            fh.write(b"a,b\n1,2\n" * 1000)
            raise KeyboardInterrupt
    fs.invalidate_cache()
    assert not fs.exists(f"{b}/out/result.csv.gz")
    with art.atomic_open(url, "wb", compression="gzip") as fh:
        fh.write(b"a,b\n1,2\n")
    assert pd.read_csv(fs.open(f"{b}/out/result.csv.gz"), compression="gzip")["b"].tolist() == [2]


# ----------------------------------------------------------------------------- predict: input and output
def test_predict_refuses_output_equal_to_input_and_keeps_the_input(tiny_run, tmp_path, capsys, monkeypatch):
    _rows(40).to_csv(tmp_path / "a.csv", index=False)
    before = (tmp_path / "a.csv").read_bytes()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    for spelling, extra in (("../a.csv", []), (str(tmp_path / "sub" / ".." / "a.csv"), ["overwrite=true"])):
        assert main(["predict", f"run_dir={tiny_run.run_dir}", f"input={tmp_path / 'a.csv'}",
                     f"output={spelling}", *extra]) == 2
        err = _one_error_line(capsys)
        assert "same file as the input" in err, err
        assert (tmp_path / "a.csv").read_bytes() == before
    assert _visible(tmp_path) == ["a.csv", "sub"]


def test_predict_refuses_an_output_inside_the_input_folder(tiny_run, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    _rows(30).to_csv(tmp_path / "in" / "part-0.csv", index=False)
    assert main(["predict", f"run_dir={tiny_run.run_dir}", f"input={tmp_path / 'in'}",
                 f"output={tmp_path / 'in' / 'preds.csv'}"]) == 2
    assert "inside" in _one_error_line(capsys)
    assert _visible(tmp_path / "in") == ["part-0.csv"]


def test_predict_refuses_an_existing_output_unless_overwrite_is_true(tiny_run, tmp_path, capsys):
    rows = _rows(25)
    rows.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    args = ["predict", f"run_dir={tiny_run.run_dir}", f"input={tmp_path / 'in.csv'}", f"output={out}"]
    assert main(args) == 2
    assert "overwrite=true" in _one_error_line(capsys)
    assert out.read_text() == "precious\n"
    assert main(args + ["overwrite=true"]) == 0
    assert pd.read_csv(out)["predicted_label"].tolist() == list(tiny_run.predict(rows))
    assert _visible(tmp_path) == ["in.csv", "out.csv"]


# ----------------------------------------------------------------------------- predict: failures
@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_bad_value_deep_in_the_input_leaves_no_output(tiny_run, tmp_path, capsys, suffix):
    rows = _rows(50_010)
    rows["x1"] = rows["x1"].astype(object)
    rows.loc[50_000, "x1"] = "not-a-number"  # row 50,001
    rows.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / f"out.{suffix}"
    assert main(["predict", f"run_dir={tiny_run.run_dir}", f"input={tmp_path / 'in.csv'}", f"output={out}",
                 "predict.chunk_rows=5000"]) == 2
    assert "row 50001" in _one_error_line(capsys)
    assert os.listdir(tmp_path) == ["in.csv"]  # no output, no temp


@pytest.mark.slow
def test_a_bad_value_leaves_no_object_on_s3(tiny_run, s3_bucket, tmp_path):
    fs, b = s3_bucket["fs"], s3_bucket["bucket"]
    rows = _rows(300)
    rows["x2"] = rows["x2"].astype(object)
    rows.loc[250, "x2"] = "oops"
    fs.pipe(f"{b}/in.csv", rows.to_csv(index=False).encode())
    res = subprocess.run([str(VENV_BIN / "automl"), "predict", f"run_dir={tiny_run.run_dir}", f"input=s3://{b}/in.csv",
                          f"output=s3://{b}/out/p.csv", "predict.chunk_rows=50"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, **s3_bucket["env"]})
    assert res.returncode == 2, res.stderr
    fs.invalidate_cache()
    assert not fs.exists(f"{b}/out/p.csv")


@pytest.mark.slow
def test_kill_9_during_predict_leaves_no_file_at_the_output_path(tiny_run, tmp_path):
    _rows(300_000).to_csv(tmp_path / "in.csv", index=False)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    exe = VENV_BIN / "automl"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "automl"]
    proc = subprocess.Popen(cmd + ["predict", f"run_dir={tiny_run.run_dir}", f"input={tmp_path / 'in.csv'}",
                                   f"output={out_dir / 'p.csv'}", "predict.chunk_rows=2000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:  # wait until rows are being written
            if any(p.stat().st_size > 0 for p in out_dir.iterdir()):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "predict finished before it could be killed; give it more rows"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (out_dir / "p.csv").exists()
    assert all(art.is_temp_name(p.name) for p in out_dir.iterdir())  # at most a hidden temp, which readers skip


# ----------------------------------------------------------------------------- monitor
def test_monitor_refuses_to_replace_earlier_results_unless_overwrite_is_true(tiny_run, tmp_path, capsys):
    _rows(120).to_csv(tmp_path / "batch.csv", index=False)
    out = tmp_path / "results"
    args = ["monitor", f"run_dir={tiny_run.run_dir}", f"data={tmp_path / 'batch.csv'}", f"output={out}"]
    first = main(args)
    assert first in (0, 3)
    capsys.readouterr()
    (out / "report.html").write_text("my annotated copy")
    assert main(args) == 2
    assert "overwrite=true" in _one_error_line(capsys)
    assert (out / "report.html").read_text() == "my annotated copy"
    assert main(args + ["overwrite=true"]) == first
    assert "<html>" in (out / "report.html").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["constraint_violations.json", "report.html", "statistics.json"]
    assert np.isfinite(json.loads((out / "statistics.json").read_text())["dataset"]["n_rows"])


def test_monitor_refuses_the_data_file_as_its_output_folder(tiny_run, tmp_path, capsys):
    _rows(60).to_csv(tmp_path / "batch.csv", index=False)
    before = (tmp_path / "batch.csv").read_bytes()
    assert main(["monitor", f"run_dir={tiny_run.run_dir}", f"data={tmp_path / 'batch.csv'}",
                 f"output={tmp_path / '.' / 'batch.csv'}"]) == 2
    assert "is the data file" in _one_error_line(capsys)
    assert (tmp_path / "batch.csv").read_bytes() == before and _visible(tmp_path) == ["batch.csv"]
