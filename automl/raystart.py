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
import threading
import time
from typing import Any, Dict, List, Optional, TextIO

log = logging.getLogger(__name__)

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))  # automl's own folder, shipped to cluster workers

_FORWARDED_ENV_PREFIXES = ("AWS_", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "AZURE_STORAGE_",
                           "FSSPEC_", "RAY_AUTH_MODE")
_PACKAGE_EXCLUDES = ["__pycache__", "*.pyc", "*.pyo", "*.so.dSYM"]

# Fault injection (docs/search.md): seconds added to Ray's start-up, as on a loaded machine, to
# exercise search.executor=auto's fall-back to forked workers.
START_DELAY_ENV = "AUTOML_RAY_START_DELAY_S"


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


class _Messages:
    """Ray's own messages, in one local file: what its Python loggers write (Tune's among them)
    and what its driver prints for the cluster (the workers' stdout and stderr, forwarded with
    ``log_to_driver``, and errors the raylet pushes, such as "A worker died or was killed")."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.file: Optional[TextIO] = None
        self.to_terminal = True
        self.handler: Optional[logging.Handler] = None  # on the "ray" logger: writes here
        self.ray_handlers: Optional[List[logging.Handler]] = None  # Ray's own, set aside unless to_terminal
        self.forwarding = False  # Ray's printing of worker output is wrapped

    def write(self, text: str) -> None:
        with self.lock:
            if self.file is None:
                return
            try:
                self.file.write(text.rstrip("\n") + "\n")
                self.file.flush()
            except (OSError, ValueError):  # a full disk must not stop the run
                pass

    def write_batch(self, data: Dict[str, Any]) -> None:
        """One batch of lines that Ray's driver would print (a worker's output, or a raylet error)."""
        name = data.get("actor_name") or data.get("task_name") or ""
        where = f", ip={data['ip']}" if data.get("ip") and data.get("ip") != data.get("localhost") else ""
        err = ", stderr" if data.get("is_err") else ""
        prefix = f"({name + ' ' if name else ''}pid={data.get('pid', '')}{where}{err})"
        for line in data.get("lines") or []:
            self.write(f"{prefix} {line}")


_MESSAGES = _Messages()


class _ToMessages(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            _MESSAGES.write(self.format(record))
        except Exception:  # logging must never raise
            self.handleError(record)


def _wrap_worker_output() -> bool:
    """Ray's driver prints its workers' output and the raylet's errors through
    ``ray._private.worker.print_worker_logs`` (Ray's own debugger silences it through the same
    module). Wrapped, they go to the message file, and to the terminal only when asked. False
    when this Ray has no such function (then worker output is not forwarded at all)."""
    try:
        from ray._private import worker as ray_worker
    except ImportError:
        return False
    original = getattr(ray_worker, "print_worker_logs", None)
    if not callable(original):
        return False
    if getattr(original, "automl_wrapped", False):
        return True

    events = getattr(ray_worker, "filter_autoscaler_events", None)

    def print_worker_logs(data: Dict[str, Any], print_file: Any, ignore_prefix: bool = False) -> None:
        if data.get("pid") == "autoscaler" and callable(events):  # its events, not its status every 5 s
            _MESSAGES.write_batch({**data, "lines": list(events(data.get("lines") or []))})
        else:
            _MESSAGES.write_batch(data)
        if _MESSAGES.to_terminal:
            original(data, print_file, ignore_prefix)

    print_worker_logs.automl_wrapped = True  # type: ignore[attr-defined]
    ray_worker.print_worker_logs = print_worker_logs
    return True


def send_ray_messages(path: Optional[str], to_terminal: bool = False) -> bool:
    """From now on, write Ray's own messages to the local file ``path`` (appended) and keep them
    off the terminal unless ``to_terminal`` (``verbose=true``); ``path=None``: Ray's defaults again.
    Returns whether the output Ray's driver prints for its workers is captured too (``init_ray``
    then forwards it to the driver: ``log_to_driver``)."""
    import ray  # noqa: F401 (importing Ray sets up its "ray" logger)

    m = _MESSAGES
    with m.lock:
        if m.file is not None:
            m.file.close()
        m.file = open(path, "a", encoding="utf-8") if path else None
        m.to_terminal = to_terminal or path is None
    _route_ray_logger()
    m.forwarding = m.forwarding or _wrap_worker_output()
    return m.forwarding


def _route_ray_logger() -> None:
    """The "ray" logger (Tune's and every ray.* logger under it) to the message file; Ray's own
    handlers (or, once ``ray.init`` cleared them, Python's last-resort stderr output) only when
    the messages may reach the terminal. Called again after ``ray.init``, which clears them."""
    m = _MESSAGES
    ray_logger = logging.getLogger("ray")
    if m.handler is None:
        m.ray_handlers = list(ray_logger.handlers)
        m.handler = _ToMessages()
        m.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if m.handler not in ray_logger.handlers:
        ray_logger.addHandler(m.handler)
    for handler in m.ray_handlers or []:
        if m.to_terminal:
            ray_logger.addHandler(handler)
        else:
            ray_logger.removeHandler(handler)
    ray_logger.propagate = m.to_terminal and not m.ray_handlers  # Ray's own default after ray.init


def ray_messages_captured() -> bool:
    """Whether Ray's messages go to a file and not to the terminal (``send_ray_messages``)."""
    return _MESSAGES.file is not None and not _MESSAGES.to_terminal


def _start_delay() -> None:
    """The fault-injection delay of ``START_DELAY_ENV``, if set."""
    raw = os.environ.get(START_DELAY_ENV, "").strip()
    if not raw:
        return
    try:
        delay = float(raw)
    except ValueError:
        log.warning("ignoring %s=%r: not a number of seconds", START_DELAY_ENV, raw)
        return
    if delay > 0:
        log.info("%s=%g: Ray's start-up is delayed by %g s (fault injection)", START_DELAY_ENV, delay, delay)
        time.sleep(delay)


def init_ray(address: Optional[str], num_cpus: Optional[int], runtime_env: Optional[Dict[str, Any]] = None,
             keep_logs: bool = False, messages: Optional[str] = None) -> int:
    """Start or join Ray once per process; returns the number of CPUs available to trials.

    Joining a cluster (``address``) ships automl's package and the storage environment to the
    workers through the runtime environment; nothing assumes the workers share this disk. A local
    Ray keeps its session folder (logs, sockets) in a temporary folder removed at exit, unless
    ``keep_logs`` (``verbose=true``). With ``messages`` (a local file), Ray's own messages go
    there and, unless ``keep_logs``, not to the terminal (``send_ray_messages``).
    """
    forwarding = send_ray_messages(messages, keep_logs) if messages else False
    import ray

    if not ray.is_initialized():
        _start_delay()
        kwargs: Dict[str, Any] = dict(include_dashboard=False, log_to_driver=forwarding,
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
        if messages:
            _route_ray_logger()  # ray.init(configure_logging=False) cleared the "ray" logger's handlers
    cpus = int(ray.cluster_resources().get("CPU", 1))
    if messages:
        _MESSAGES.write(f"automl: Ray {ray.__version__} {'at ' + address if address else 'on this machine'}, "
                        f"{cpus} CPU(s); its messages from here on")
    return cpus
