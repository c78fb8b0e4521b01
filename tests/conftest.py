"""Shared fixtures: small real data, one real Ray-backed run, a real S3-compatible server."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _keep_automl_logging():
    """An in-process `automl.cli.main` adds a console handler on the test's captured stderr and sets
    the "automl" logger's level; both would outlive the test and change what later tests see."""
    import logging

    logger = logging.getLogger("automl")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def automl_cli(*args: str, env: dict | None = None, timeout: float = 300, cwd: str | None = None):
    """Run the real `automl` console script; returns the CompletedProcess."""
    exe = VENV_BIN / "automl"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "automl"]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)


def start_serve(run_dir: str, *args: str) -> tuple:
    """A real `automl serve` of ``run_dir`` on a free loopback port, as users start it:
    (the process, its base URL). The caller waits for /ping and terminates it."""
    port = free_port()
    exe = VENV_BIN / "automl"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "automl"]
    proc = subprocess.Popen(cmd + ["serve", f"run_dir={run_dir}", f"port={port}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{port}"


def make_binary_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A small mixed-type binary problem with missing values and an ID column."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(0, 10, size=n)
    cat = rng.choice(["red", "green", "blue"], size=n)
    logit = 1.5 * x1 - 0.3 * x2 + (cat == "red") * 1.0 + rng.normal(scale=0.5, size=n)
    y = np.where(logit > np.median(logit), "yes", "no")
    df = pd.DataFrame({"customer_id": np.arange(1000, 1000 + n), "x1": x1, "x2": x2, "color": cat, "y": y})
    df.loc[rng.choice(n, 15, replace=False), "x2"] = np.nan
    return df


@pytest.fixture(scope="session")
def binary_frame() -> pd.DataFrame:
    return make_binary_frame()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, binary_frame):
    """One real fit (Ray in this process) shared by tests that only need a finished run."""
    import automl

    out = tmp_path_factory.mktemp("tiny_run")
    return automl.fit(binary_frame, target="y", output_dir=str(out), budget={"max_trials": 6, "time_limit_s": 60},
                      candidates={"dpp2-mlp": {"enabled": False}, "dpp5-svm": {"enabled": False}})


def start_moto_server(env: dict | None = None):
    """Start moto in server mode on a free loopback port (``env``: extra environment, e.g.
    INITIAL_NO_AUTH_ACTION_COUNT=0 to check credentials); return (process, endpoint URL)."""
    port = free_port()
    exe = VENV_BIN / "moto_server"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
    proc = subprocess.Popen(cmd + ["-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto in server mode) on a loopback port."""
    proc, endpoint = start_moto_server()
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield {"endpoint": endpoint, "env": env}
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server):
    import uuid

    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server["endpoint"]})
    name = f"bucket-{uuid.uuid4().hex[:8]}"
    fs.mkdir(name)
    return {"fs": fs, "bucket": name, **s3_server}
