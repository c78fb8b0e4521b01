"""automl: a declarative AutoML framework for tabular data (Hydra configs, Ray Tune search).

    import automl
    run = automl.fit("data.csv", target="y", budget={"time_limit_s": 60})   # or automl.fit(X, y, ...)
    run.predict(df); run.predict_proba(df); run.leaderboard
    run = automl.load(run.run_dir)
    clf = automl.AutoMLClassifier(budget={"time_limit_s": 60}).fit(X, y)   # scikit-learn estimators
"""
from __future__ import annotations

import time
from typing import Any, Dict

from automl.errors import AutoMLError, ConfigError, DataError
from automl.rundir.run import Run, load

__all__ = ["fit", "load", "Run", "AutoMLClassifier", "AutoMLRegressor", "AutoMLError", "ConfigError", "DataError"]
__version__ = "0.1.0"
_ESTIMATORS = ("AutoMLClassifier", "AutoMLRegressor")  # imported on first use (scikit-learn, the config schema)


def __getattr__(name: str) -> Any:
    if name in _ESTIMATORS:
        from automl import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'automl' has no attribute '{name}'")


def _nest(values: Dict[str, Any]) -> Dict[str, Any]:
    """``{"budget__time_limit_s": 60}`` -> ``{"budget": {"time_limit_s": 60}}``."""
    out: Dict[str, Any] = {}
    for key, value in values.items():
        parts = key.replace("__", ".").split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]].update(value)
        else:
            node[parts[-1]] = dict(value) if isinstance(value, dict) else value  # never the caller's dict
    return out


def fit(data, target, **overrides: Any) -> Run:
    """Run automl on a table; returns the :class:`Run`.

    ``automl.fit(df, "y")``: a DataFrame or a table URL, and the name of its target column.
    ``automl.fit(X, y)``: the features (a DataFrame, or an array whose columns are named
    ``x0 … x{n-1}``) and the targets, one per row. ``overrides`` are config keys:
    ``metric="auc"``, ``budget={"time_limit_s": 60}`` or ``budget__time_limit_s=60`` (``__``
    stands for ``.``). The fit logs to stderr unless logging is configured (docs/python.md).
    """
    import pandas as pd

    from automl.config import compose_config
    from automl.estimator import log_to_stderr, training_frame
    from automl.runner import fit as _fit

    started = time.time()
    if not isinstance(target, str):  # automl.fit(X, y)
        data, target = training_frame(data, target)
    frame = data if isinstance(data, pd.DataFrame) else None
    values = _nest(overrides)
    values.setdefault("data", {}).update(
        {"path": "<dataframe>" if frame is not None else str(data), "target": target})
    cfg = compose_config([], values=values)
    with log_to_stderr():
        return _fit(cfg, frame=frame, started=started)
