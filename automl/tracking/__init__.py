"""Experiment tracking: a finished run folder, logged to a tracking server after the fit.

``tracking.backend=mlflow`` (``automl fit tracking=mlflow``) logs, once the run folder is complete,
a parent MLflow run (config, summary, scores, report), one nested run per trial (its parameters and
metrics, read from ``leaderboard.csv``) and the chosen model as an MLflow pyfunc model with a
signature and an input example (automl/tracking/mlflow_log.py). Everything comes from the run
folder, so nothing runs inside the Ray workers, and a finished run can be logged later with
:func:`log_run`. See docs/ecosystem.md.

This module imports no tracking library: the config check runs before any data is read.
"""
from __future__ import annotations

import importlib.util
import logging
from typing import Any, Dict, Optional

from automl.errors import ConfigError

log = logging.getLogger(__name__)

BACKENDS = ("none", "mlflow")
MLFLOW_INSTALL = "pip install 'automl[mlflow]'"


def _missing(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or without a spec
        return True


def check_tracking(tracking: Any) -> None:
    """One-line errors for a tracking config that cannot work (before any data is read)."""
    if tracking is None:
        return
    backend = tracking.get("backend", "none") if hasattr(tracking, "get") else getattr(tracking, "backend", "none")
    if backend not in BACKENDS:
        raise ConfigError(f"tracking.backend must be one of {', '.join(BACKENDS)}; got {backend!r}. "
                          "Fix: tracking=mlflow, or tracking=none")
    if backend == "mlflow":
        if _missing("mlflow"):
            raise ConfigError(f"tracking=mlflow needs the mlflow package, which is not installed; "
                              f"{MLFLOW_INSTALL} (or tracking=none)")
        if not str(tracking.get("experiment") or "").strip():
            raise ConfigError("tracking.experiment must be a non-empty MLflow experiment name; got ''")


def track_fit(tracking: Any, run_dir: str, storage_options: Optional[Dict[str, Any]] = None,
              shown_dir: Optional[str] = None) -> Optional[str]:
    """Log a just-finished fit as the config asks; returns the parent run id (None: not logged).

    A tracking failure is logged as a warning and does not fail the fit: the run folder is
    complete, and :func:`log_run` logs it later.
    """
    if tracking is None or tracking.get("backend", "none") == "none":
        return None
    try:
        return log_run(run_dir, uri=tracking.get("uri"), experiment=tracking.get("experiment") or "automl",
                       storage_options=storage_options, shown_dir=shown_dir)
    except Exception as exc:  # the fit's results are safe in the run folder whatever happens here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log.warning("could not log the run to MLflow (%s: %s); the run folder is complete: log it later with "
                    "automl.tracking.log_run(%r, uri=..., experiment=...)", type(exc).__name__, first,
                    shown_dir or run_dir)
        return None


def log_run(run_dir: str, uri: Optional[str] = None, experiment: str = "automl",
            storage_options: Optional[Dict[str, Any]] = None, shown_dir: Optional[str] = None) -> str:
    """Log a finished run folder to MLflow (``uri``: its tracking URI; None: MLflow's default);
    returns the parent run's id. The model is at ``runs:/<id>/model``."""
    if _missing("mlflow"):
        raise ConfigError(f"logging a run to MLflow needs the mlflow package; {MLFLOW_INSTALL}")
    from automl.tracking.mlflow_log import log_run_folder

    return log_run_folder(run_dir, uri, experiment, storage_options or {}, shown_dir or run_dir)
