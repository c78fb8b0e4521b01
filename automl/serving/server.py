"""`automl serve`: load one trial's model and answer HTTP requests (uvicorn or Ray Serve).

    automl serve run_dir=DIR [trial=ID] [host=127.0.0.1] [port=8080] [api_key_file=PATH | api_key=KEY]
        [max_body_bytes=N] [response_keys=[predicted_label,probability,probabilities,labels]]
        [capture.enabled=true capture.sampling_percentage=P capture.destination=URL]
        [capture.max_file_mb=16 capture.max_total_mb=1024] [serve.body_timeout_s=30]
        [serve.backend=uvicorn|ray serve.replicas=N]

The API key comes from ``api_key_file=PATH`` (the file's text, stripped), else ``api_key=KEY``,
else the ``AUTOML_API_KEY`` environment variable; a file or the variable keeps it out of the
process list.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

from automl.config.commands import SERVE_BACKENDS as BACKENDS  # noqa: F401 (re-exported: it lived here)
from automl.config.commands import compose_command
from automl.config.keys import flat_values
from automl.errors import ConfigError
from automl.redact import redact_text, register_secrets

log = logging.getLogger(__name__)

API_KEY_ENV = "AUTOML_API_KEY"


def serve_options(args: List[str]) -> Dict[str, Any]:
    """Parse and check `automl serve` arguments (the schema: ServeConfig in automl/config/commands.py).

    The options as ``{dotted key: typed value}``, with the API key resolved: a plain dict, as the
    Ray Serve replicas receive it."""
    cfg = compose_command("serve", args)
    opts = flat_values(cfg)
    opts["response_keys"] = list(cfg.response_keys or []) or None
    if opts["response_keys"]:
        from automl.serving.predictor import resolve_response_keys

        resolve_response_keys(opts["response_keys"], classification=True)  # names; the model checks the rest
    opts["api_key"] = resolve_api_key(cfg.api_key, cfg.api_key_file)
    if opts["api_key"]:
        register_secrets([opts["api_key"]])  # masked in every log line and error
    return opts


def resolve_api_key(key: Optional[str], key_file: Optional[str]) -> Optional[str]:
    """The API key from ``api_key_file``, ``api_key`` or the AUTOML_API_KEY variable (None: no key)."""
    if key is not None and key_file:
        raise ConfigError("give api_key or api_key_file, not both; prefer api_key_file=PATH (or the AUTOML_API_KEY "
                          "environment variable): a key on the command line shows in the process list")
    if key_file:
        try:
            text = Path(key_file).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"api_key_file: cannot read {key_file}: {getattr(exc, 'strerror', None) or exc}; "
                              f"give a readable UTF-8 file that holds the key") from None
        if not text.strip():
            raise ConfigError(f"api_key_file {key_file} is empty; write the key into it")
        return text.strip()
    if key is not None:
        if not str(key).strip():
            raise ConfigError("api_key is empty; give a key (clients send Authorization: Bearer <key>) or leave it out")
        return str(key)
    env = os.environ.get(API_KEY_ENV)
    if env is not None and not env.strip():
        raise ConfigError(f"{API_KEY_ENV} is set but empty; set it to the key, or unset it to serve without one")
    return env.strip() if env else None


def load_endpoint(opts: Dict[str, Any]):
    """Load the run and the trial's model; build the predictor and the data capture."""
    from automl.rundir.run import load
    from automl.serving.app import Endpoint, endpoint_metadata
    from automl.serving.capture import DataCapture
    from automl.serving.predictor import Predictor
    from automl.serving.schema import InputSchema, training_dtypes

    run = load(str(opts["run_dir"]), allow_pickle=bool(opts.get("allow_pickle")))
    bundle = run.trial_model(opts.get("trial"))
    trial_id = str(opts.get("trial") or run.best_trial_id)
    schema = InputSchema.from_model(bundle, training_dtypes(run), input_columns=list(run.summary.get("column_types") or {}))
    predictor = Predictor(bundle, schema, opts.get("response_keys"))
    capture = None
    if opts.get("capture.enabled"):
        capture = DataCapture(opts.get("capture.destination"), opts.get("capture.sampling_percentage", 100.0),
                              trial_id=trial_id, max_records=opts.get("capture.max_records", 1000),
                              rotate_s=opts.get("capture.rotate_s", 60.0),
                              max_file_mb=opts.get("capture.max_file_mb", 16.0),
                              max_total_mb=opts.get("capture.max_total_mb", 1024.0))
    return Endpoint(predictor=predictor, metadata=endpoint_metadata(run, predictor, trial_id),
                    api_key=opts.get("api_key"), max_body_bytes=int(opts.get("max_body_bytes", 6 << 20)),
                    max_batch_rows=int(opts.get("serve.max_batch_rows", 256)), capture=capture,
                    body_timeout_s=float(opts.get("serve.body_timeout_s", 30.0)),
                    explainer=run.explainer(opts.get("trial")))  # explain=true requests; loads nothing now


def cmd_serve(args: List[str]) -> int:
    opts = serve_options(args)
    if opts["serve.backend"] == "ray":
        return serve_ray(opts)
    return serve_uvicorn(opts)


def serve_uvicorn(opts: Dict[str, Any]) -> int:
    import uvicorn

    from automl.serving.app import create_app

    _check_port(opts["host"], opts["port"])
    endpoint = load_endpoint(opts)
    app = create_app(endpoint)
    config = uvicorn.Config(app, host=opts["host"], port=opts["port"], log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=10, backlog=2048)
    server = uvicorn.Server(config)
    _announce(endpoint, opts, "uvicorn")
    server.run()
    if endpoint.capture is not None:
        endpoint.capture.close()
    return 0


def _check_port(host: str, port: int) -> None:
    """Fail early, on one line, when the address cannot be bound (before loading the model)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"host={host!r} cannot be resolved ({exc}); use an address such as 127.0.0.1") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another port=N "
                              f"(or stop what is using it)") from None


def _announce(endpoint, opts: Dict[str, Any], backend: str) -> None:
    md = endpoint.metadata
    log.info("serving trial %s (%s) on http://%s:%d with %s%s%s", md["trial_id"], md["candidate"], opts["host"],
             opts["port"], backend, "; api_key required" if opts.get("api_key") else "",
             f"; capturing {opts['capture.sampling_percentage']}% of requests to "
             f"{redact_text(str(opts['capture.destination']))}"
             if endpoint.capture is not None else "")


# -- Ray Serve ----------------------------------------------------------------------------------

def ray_deployment(opts: Dict[str, Any], num_cpus: float):
    """A Ray Serve deployment whose replicas each build the same FastAPI app."""
    from ray import serve

    class AutomlEndpoint:
        def __init__(self, options: Dict[str, Any]):
            self.options = options

        def __serve_build_asgi_app__(self):
            from automl.serving.app import create_app

            return create_app(load_endpoint(self.options))

    ingress = serve.ingress()(AutomlEndpoint)
    return serve.deployment(name="automl", num_replicas=opts["serve.replicas"],
                            ray_actor_options={"num_cpus": num_cpus},
                            max_ongoing_requests=1000)(ingress)


def serve_ray(opts: Dict[str, Any], block: bool = True) -> int:
    """Run the app on Ray Serve with ``serve.replicas`` replicas on the current Ray cluster."""
    from ray import serve

    from automl.rundir.run import load
    from automl.raystart import init_ray

    run = load(str(opts["run_dir"]), allow_pickle=bool(opts.get("allow_pickle")))
    run.trial_model(opts.get("trial"))  # refit (and cache) a non-best trial once, not in every replica
    if opts["capture.enabled"] and not opts.get("capture.destination"):
        raise ConfigError("capture.enabled=true needs capture.destination=URL")
    if not os.path.isabs(str(opts["run_dir"])) and "://" not in str(opts["run_dir"]):
        opts = {**opts, "run_dir": os.path.abspath(str(opts["run_dir"]))}  # replicas may start elsewhere
    cpus = init_ray(opts.get("ray.address"), None)
    num_cpus = min(1.0, cpus / opts["serve.replicas"])
    serve.start(http_options={"host": opts["host"], "port": opts["port"]})
    deployment = ray_deployment(opts, num_cpus)
    serve.run(deployment.bind(opts), name="automl", route_prefix="/", blocking=False)
    log.info("serving trial %s on http://%s:%d with Ray Serve, %d replica(s)%s",
             opts.get("trial") or run.best_trial_id, opts["host"], opts["port"], opts["serve.replicas"],
             "; api_key required" if opts.get("api_key") else "")
    if not block:
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        log.info("shutting down Ray Serve")
        serve.shutdown()
    return 0

