"""A real two-node Ray cluster on this machine: `automl fit ray.address=...` runs its trials on
the worker node and writes the run to S3 (moto). Nothing is shared through the disk.

The nodes run under `ray start --block` in their own process groups and temp dirs, and are
stopped by signalling exactly those groups: `ray stop` would stop every Ray on the machine.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import VENV_BIN, automl_cli, free_port, make_binary_frame

pytestmark = pytest.mark.slow
WORKER_RESOURCE = "automl_test_worker"


def _ray_exe() -> str:
    exe = VENV_BIN / "ray"
    return str(exe) if exe.exists() else "ray"


def _start_node(args: list[str], temp_dir: Path, env: dict, log: Path) -> subprocess.Popen:
    ports = ["--node-manager-port", "--object-manager-port", "--metrics-export-port",
             "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port"]
    cmd = [_ray_exe(), "start", "--block", "--disable-usage-stats", f"--temp-dir={temp_dir}",
           "--object-store-memory=100000000"] + args
    for flag in ports:
        cmd += [flag, str(free_port())]
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """Stop one node: its `ray start --block` process group, SIGTERM then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.time() + wait  # the group may outlive its leader for a moment
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def _wait_for_nodes(address: str, env: dict, n: int, timeout: float = 90,
                    node: subprocess.Popen | None = None) -> dict | None:
    """Poll the cluster from a short-lived driver until ``n`` nodes are alive; return the worker's id,
    or None when the timeout passes or ``node`` (the worker's `ray start`) has exited."""
    code = (
        "import json, ray; ray.init(address=%r, include_dashboard=False, log_to_driver=False); "
        "nodes=[x for x in ray.nodes() if x['Alive']]; "
        "print(json.dumps({'n': len(nodes), 'worker': [x['NodeID'] for x in nodes "
        "if x['Resources'].get(%r)]}))" % (address, WORKER_RESOURCE)
    )
    deadline = time.time() + timeout
    while time.time() < deadline and (node is None or node.poll() is None):
        res = subprocess.run([str(VENV_BIN / "python"), "-c", code], env=env, capture_output=True, text=True,
                             timeout=60)
        if res.returncode == 0 and res.stdout.strip():
            info = json.loads(res.stdout.strip().splitlines()[-1])
            if info["n"] >= n and info["worker"]:
                return info
        time.sleep(2)
    return None


def _tail(path: Path, chars: int = 1500) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@contextlib.contextmanager
def loopback_cluster(tmp_path: Path, extra_env: dict, head_cpus: int, worker_cpus: int, tag: str = "ray"):
    """A head node and one worker node (with the WORKER_RESOURCE custom resource) on loopback, each
    under `ray start --block` in its own process group and short temp dir (unix socket paths);
    yields (address, env, the worker's node info); stops exactly those groups afterwards."""
    env = {**os.environ, **extra_env, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    port = free_port()
    address = f"127.0.0.1:{port}"
    head_tmp, worker_tmp = Path(f"/tmp/{tag}-h-{port}"), Path(f"/tmp/{tag}-w-{port}")
    head = _start_node(["--head", f"--port={port}", "--node-ip-address=127.0.0.1", f"--num-cpus={head_cpus}",
                        "--include-dashboard=false", f"--ray-client-server-port={free_port()}"],
                       head_tmp, env, tmp_path / "head.log")
    workers: list[subprocess.Popen] = []
    try:
        time.sleep(2)
        # The worker gets fresh ports on each attempt: a port found free can be taken before
        # `ray start` binds it, and then the node exits or never registers (seen once in CI).
        for attempt in range(3):
            log = tmp_path / f"worker-{attempt}.log"
            worker = _start_node([f"--address={address}", "--node-ip-address=127.0.0.1",
                                  f"--num-cpus={worker_cpus}", f'--resources={{"{WORKER_RESOURCE}": 1}}'],
                                 Path(f"{worker_tmp}-{attempt}"), env, log)
            workers.append(worker)
            info = _wait_for_nodes(address, env, 2, timeout=90, node=worker)
            if info is not None:
                break
            _stop(worker)
        else:
            raise AssertionError(f"the worker node did not join the cluster in 3 attempts; head log: "
                                 f"{_tail(tmp_path / 'head.log')}\nlast worker log: {_tail(log)}")
        yield address, env, info
    finally:
        for w in workers:
            _stop(w)
        _stop(head)
        for d in [head_tmp] + [Path(f"{worker_tmp}-{i}") for i in range(len(workers))]:
            subprocess.run(["rm", "-rf", str(d)], check=False)


@pytest.fixture
def cluster(tmp_path, s3_server):
    """A head node with no CPUs for trials and one worker node with 1 CPU and a custom resource."""
    with loopback_cluster(tmp_path, s3_server["env"], head_cpus=0, worker_cpus=1) as (address, env, info):
        yield {"address": address, "env": env, "worker_node_id": info["worker"][0], "logs": tmp_path}


def test_trials_run_on_the_worker_node_and_write_to_s3(cluster, s3_bucket, tmp_path):
    df = make_binary_frame(160, seed=3)
    data = f"s3://{s3_bucket['bucket']}/data/train.csv"
    with s3_bucket["fs"].open(data, "w") as fh:
        df.to_csv(fh, index=False)
    out = f"s3://{s3_bucket['bucket']}/runs/cluster"
    # A driver-side working directory with nothing of automl in it: the code reaches the
    # workers through the runtime environment.
    res = automl_cli("fit", f"data.path={data}", "data.target=y", f"output_dir={out}",
                     f"ray.address={cluster['address']}", "budget.max_trials=3", "budget.time_limit_s=150",
                     "~candidates.dpp2-mlp", "~candidates.dpp5-svm", "~candidates.dpp3-random_forest",
                     "~candidates.dpp4-extra_trees", "~candidates.dpp6-knn", "~candidates.dpp7-lightgbm",
                     "search.ensemble=false",
                     env=cluster["env"], cwd=str(tmp_path), timeout=400)
    assert res.returncode == 0, res.stderr[-4000:]
    fs = s3_bucket["fs"]
    fs.invalidate_cache()
    lb = pd.read_csv(fs.open(f"{out}/leaderboard.csv"), dtype={"trial_id": str})
    assert len(lb) == 3 and (lb["status"] == "completed").any(), lb[["status", "error"]]
    # Every trial ran on the worker node: the head has no CPUs, and each result says where it ran.
    assert set(lb["node_id"]) == {cluster["worker_node_id"]}, lb["node_id"].tolist()
    for tid in lb["trial_id"]:
        result = json.loads(fs.cat(f"{out}/trials/{tid}/result.json"))
        assert result["node_id"] == cluster["worker_node_id"]
        # automl's code on the worker came through the runtime environment, not this checkout
        assert "runtime_resources" in result["code_path"], result["code_path"]
    done = lb[lb["status"] == "completed"]
    assert all(fs.exists(f"{out}/trials/{tid}/oof.npy") for tid in done["trial_id"])
    assert fs.exists(f"{out}/model.skops") and fs.exists(f"{out}/manifest.json")
