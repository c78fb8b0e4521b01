"""The schemas of `automl predict`, `automl serve` and `automl monitor`, and their checks.

Each command's ``key=value`` arguments are parsed against its dataclass by ``keys.parse_args``
(unknown keys and bad types are one-line errors), then checked here before anything is read. One-line
docs of every key: docs/configuration.md. Keys marked ``RAW`` keep the exact text given.
"""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from automl.config.keys import RAW, flat_defaults, parse_args
from automl.errors import ConfigError

PREDICT_BACKENDS = ("local", "ray")
SERVE_BACKENDS = ("uvicorn", "ray")


@dataclass
class RayAddress:
    address: Optional[str] = field(default=None, metadata=RAW)  # Ray cluster to join (null: a local one)


# ----------------------------------------------------------------------------- predict
@dataclass
class PredictOptions:
    backend: str = "local"  # local (this process) | ray (Ray tasks over chunks)
    keep_columns: List[str] = field(default_factory=list)  # input columns copied to the output
    chunk_rows: int = 100_000  # rows per chunk


@dataclass
class PredictConfig:
    run_dir: Optional[str] = field(default=None, metadata=RAW)  # the run folder (required)
    input: Optional[str] = field(default=None, metadata=RAW)  # file, folder or prefix to predict (required)
    output: Optional[str] = field(default=None, metadata=RAW)  # CSV, or Parquet for *.parquet (required)
    overwrite: bool = False  # replace an existing output
    trial: Optional[str] = field(default=None, metadata=RAW)  # trial id (null: the run's model)
    allow_pickle: bool = False  # load pickled models of earlier releases (trusted sources only)
    predict: PredictOptions = field(default_factory=PredictOptions)
    ray: RayAddress = field(default_factory=RayAddress)
    verbose: bool = False  # show tracebacks on errors


def validate_predict(cfg: PredictConfig) -> None:
    for key in ("run_dir", "input", "output"):
        if not getattr(cfg, key):
            raise ConfigError(f"`automl predict` needs {key}=...; e.g. automl predict run_dir=DIR input=in.csv output=out.csv")
    if cfg.predict.backend not in PREDICT_BACKENDS:
        raise ConfigError(f"predict.backend must be one of {', '.join(PREDICT_BACKENDS)}; got {cfg.predict.backend!r}")
    if cfg.predict.chunk_rows < 1:
        raise ConfigError(f"predict.chunk_rows must be an integer >= 1; got {cfg.predict.chunk_rows}")


# ----------------------------------------------------------------------------- serve
@dataclass
class CaptureOptions:
    enabled: bool = False  # sample requests and their predictions to destination
    sampling_percentage: float = 100.0  # share of requests captured, 0-100
    destination: Optional[str] = field(default=None, metadata=RAW)  # folder or prefix URL
    max_records: int = 1000  # records per capture file at most
    rotate_s: float = 60.0  # a capture file is closed after this many seconds
    max_file_mb: float = 16.0  # a capture file is closed at this size
    max_total_mb: float = 1024.0  # capture stops when the destination holds this much


@dataclass
class ServeOptions:
    backend: str = "uvicorn"  # uvicorn (one process) | ray (Ray Serve)
    replicas: int = 1  # Ray Serve replicas
    max_batch_rows: int = 256  # most rows predicted together from queued requests
    body_timeout_s: float = 30.0  # a request body not received within this many seconds gets 408


@dataclass
class ServeConfig:
    run_dir: Optional[str] = field(default=None, metadata=RAW)  # the run folder (required)
    trial: Optional[str] = field(default=None, metadata=RAW)  # trial id (null: the run's model)
    host: str = field(default="127.0.0.1", metadata=RAW)  # address to listen on
    port: int = 8080  # port to listen on (0-65535)
    api_key: Optional[str] = field(default=None, metadata=RAW)  # clients send Authorization: Bearer <key>
    api_key_file: Optional[str] = field(default=None, metadata=RAW)  # a file holding the key
    max_body_bytes: int = 6 * 1024 * 1024  # larger request bodies get 413
    response_keys: Optional[List[str]] = None  # predicted_label, probability, probabilities, labels
    allow_pickle: bool = False  # load pickled models of earlier releases (trusted sources only)
    capture: CaptureOptions = field(default_factory=CaptureOptions)
    serve: ServeOptions = field(default_factory=ServeOptions)
    ray: RayAddress = field(default_factory=RayAddress)
    verbose: bool = False  # show tracebacks on errors


def _positive(value: float, key: str) -> None:
    if not value > 0:
        raise ConfigError(f"{key} must be a number > 0; got {value!r}")


def validate_serve(cfg: ServeConfig) -> None:
    if not cfg.run_dir:
        raise ConfigError("`automl serve` needs run_dir=...; e.g. automl serve run_dir=outputs/2024-01-01/12-00-00")
    if cfg.port < 0:
        raise ConfigError(f"port must be an integer >= 0; got {cfg.port}")
    if cfg.port > 65535:
        raise ConfigError(f"port must be 0-65535; got {cfg.port}")
    for key, value in (("max_body_bytes", cfg.max_body_bytes), ("serve.replicas", cfg.serve.replicas),
                       ("serve.max_batch_rows", cfg.serve.max_batch_rows)):
        if value < 1:
            raise ConfigError(f"{key} must be an integer >= 1; got {value}")
    if cfg.serve.backend not in SERVE_BACKENDS:
        raise ConfigError(f"serve.backend must be one of {', '.join(SERVE_BACKENDS)}; got {cfg.serve.backend!r}")
    _positive(cfg.serve.body_timeout_s, "serve.body_timeout_s")
    _positive(cfg.capture.max_file_mb, "capture.max_file_mb")
    _positive(cfg.capture.max_total_mb, "capture.max_total_mb")
    if cfg.capture.enabled:  # the capture's own checks (serving/capture.py), before the model is loaded
        if not cfg.capture.destination:
            raise ConfigError("capture.enabled=true needs capture.destination=URL (a folder or prefix, "
                              "e.g. capture.destination=s3://bucket/capture)")
        if not 0 <= cfg.capture.sampling_percentage <= 100:
            raise ConfigError(f"capture.sampling_percentage must be a number from 0 to 100; "
                              f"got {cfg.capture.sampling_percentage!r}")
        if cfg.capture.max_records < 1 or cfg.capture.rotate_s <= 0:
            raise ConfigError(f"capture.max_records must be >= 1 and capture.rotate_s > 0; "
                              f"got {cfg.capture.max_records!r} and {cfg.capture.rotate_s!r}")


# ----------------------------------------------------------------------------- monitor
@dataclass
class AlertOptions:
    webhook: Optional[str] = None  # http(s) URL that gets a JSON POST when a check finds violations


@dataclass
class MonitorBackend:
    backend: str = "local"  # local (one pandas frame) | ray (the data checks streamed over the files in Ray tasks)


@dataclass
class MonitorConfig:
    run_dir: Optional[str] = None  # the run folder whose baseline is checked against (required)
    data: Optional[str] = None  # file, folder or prefix to check (required)
    ground_truth: Optional[str] = field(default=None, metadata=RAW)  # labels (JSON Lines/CSV: inference_id,label) joined with the captured predictions: model-quality check
    output: Optional[str] = None  # results folder (null: <run_dir>/monitoring/<timestamp>/)
    overwrite: bool = False  # replace the results of an earlier check in output
    constraints: Optional[str] = None  # an edited constraints.json (null: the run's baseline/)
    alert: AlertOptions = field(default_factory=AlertOptions)
    watch: bool = False  # check each new file under data, every interval_s, until stopped
    interval_s: float = 60.0  # seconds between polls in watch mode
    predict: MonitorBackend = field(default_factory=MonitorBackend)  # predict.backend, as `automl predict` spells it
    ray: RayAddress = field(default_factory=RayAddress)
    verbose: bool = False  # show tracebacks on errors


def validate_monitor(cfg: MonitorConfig) -> None:
    for key in ("run_dir", "data"):
        if not getattr(cfg, key):
            raise ConfigError(f"`automl monitor` needs {key}=...; e.g. automl monitor run_dir=DIR data=batch.csv")
    webhook = cfg.alert.webhook
    if webhook is not None and (not webhook.startswith(("http://", "https://"))
                                or not urllib.parse.urlsplit(webhook).hostname):
        raise ConfigError(f"alert.webhook must be an http:// or https:// URL with a host; got one starting "
                          f"'{webhook[:8]}'")
    if not cfg.interval_s > 0:
        raise ConfigError(f"interval_s must be a positive number of seconds; got '{cfg.interval_s}'")
    if cfg.predict.backend not in PREDICT_BACKENDS:
        raise ConfigError(f"predict.backend must be one of {', '.join(PREDICT_BACKENDS)}; got {cfg.predict.backend!r}")


# ----------------------------------------------------------------------------- export
EXPORT_FORMATS = ("onnx",)


@dataclass
class ExportConfig:
    run_dir: Optional[str] = field(default=None, metadata=RAW)  # the run folder (required)
    trial: Optional[str] = field(default=None, metadata=RAW)  # trial id (null: the run's model)
    format: str = "onnx"  # onnx: the whole pipeline, processing included (pip install 'automl[onnx]')
    output: Optional[str] = field(default=None, metadata=RAW)  # the file to write, e.g. model.onnx (required)
    overwrite: bool = False  # replace an existing output
    allow_pickle: bool = False  # load pickled models of earlier releases (trusted sources only)
    verbose: bool = False  # show tracebacks on errors


def validate_export(cfg: ExportConfig) -> None:
    for key in ("run_dir", "output"):
        if not getattr(cfg, key):
            raise ConfigError(f"`automl export` needs {key}=...; e.g. automl export run_dir=DIR format=onnx output=model.onnx")
    if cfg.format not in EXPORT_FORMATS:
        raise ConfigError(f"format must be one of {', '.join(EXPORT_FORMATS)}; got {cfg.format!r}")


# ----------------------------------------------------------------------------- one path
SCHEMAS: Dict[str, type] = {"predict": PredictConfig, "serve": ServeConfig, "monitor": MonitorConfig,
                            "export": ExportConfig}
_CHECKS: Dict[str, Callable[[Any], None]] = {"export": validate_export, "predict": validate_predict, "serve": validate_serve,
                                            "monitor": validate_monitor}


def compose_command(command: str, args: Sequence[str]) -> Any:
    """The typed config of `automl <command> key=value ...` (predict, serve or monitor), checked."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_object(parse_args(SCHEMAS[command], args, command))
    _CHECKS[command](cfg)
    return cfg


def command_keys(command: str) -> Dict[str, Any]:
    """``{dotted key: default}`` of a command (the key sets the commands once spelled by hand)."""
    return flat_defaults(SCHEMAS[command])
