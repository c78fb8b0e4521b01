"""Ray start-up, in one place for every command that uses Ray: the search (``fit``), batch
prediction (``predict.backend=ray``) and serving (``serve.backend=ray``).

``init_ray`` starts a private local Ray or joins a cluster, once per process. Nothing here
imports Ray at module level, so importing this module costs nothing for a run without Ray.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from typing import Any, Dict, Optional

log = logging.getLogger(__name__)

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))  # automl's own folder, shipped to cluster workers

_FORWARDED_ENV_PREFIXES = ("AWS_", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "AZURE_STORAGE_",
                           "FSSPEC_", "RAY_AUTH_MODE")
_PACKAGE_EXCLUDES = ["__pycache__", "*.pyc", "*.pyo", "*.so.dSYM"]


def cluster_runtime_env(extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """What a cluster's workers need from the driver: automl's own code (so an install on the
    driver alone is enough) and the storage environment variables (so trials can write the
    run's output_dir, e.g. s3://)."""
    env_vars = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_ENV_PREFIXES)}
    runtime_env: Dict[str, Any] = {"py_modules": [PACKAGE_DIR],
                                   "excludes": list(_PACKAGE_EXCLUDES)}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    for key, value in (extra or {}).items():
        if key == "env_vars":
            runtime_env.setdefault("env_vars", {}).update(value)
        elif key == "py_modules":
            runtime_env["py_modules"] = runtime_env["py_modules"] + list(value)
        else:
            runtime_env[key] = value
    return runtime_env


def _private_ray_temp_dir(keep_logs: bool) -> Optional[str]:
    """Where a local Ray started by this process keeps its sessions: Ray's default (its logs kept)
    with ``keep_logs``, else a fresh temporary folder removed when this process ends."""
    if keep_logs:
        root = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or tempfile.gettempdir()
        log.info("Ray keeps its session logs under %s (verbose=true)", os.path.join(root, "ray"))
        return None
    temp_dir = tempfile.mkdtemp(prefix="automl-ray-")

    def remove() -> None:  # after Ray has stopped: its processes write there until then
        import ray

        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)

    atexit.register(remove)
    return temp_dir


def init_ray(address: Optional[str], num_cpus: Optional[int], runtime_env: Optional[Dict[str, Any]] = None,
             keep_logs: bool = False) -> int:
    """Start or join Ray once per process; returns the number of CPUs available to trials.

    Joining a cluster (``address``) ships automl's package and the storage environment to the
    workers through the runtime environment; nothing assumes the workers share this disk. A local
    Ray keeps its session folder (logs, sockets) in a temporary folder removed at exit, unless
    ``keep_logs`` (``verbose=true``).
    """
    import ray

    if not ray.is_initialized():
        kwargs: Dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                      logging_level=logging.WARNING, configure_logging=False)
        if address:
            env = cluster_runtime_env(runtime_env)
            log.info("joining the Ray cluster at %s (shipping automl's code to its workers)", address)
            ray.init(address=address, runtime_env=env, **kwargs)
        else:
            # A private, local cluster started by this process: no token prompt needed.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            temp_dir = _private_ray_temp_dir(keep_logs)
            if temp_dir:
                kwargs["_temp_dir"] = temp_dir
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, runtime_env=runtime_env, **kwargs)
    return int(ray.cluster_resources().get("CPU", 1))
