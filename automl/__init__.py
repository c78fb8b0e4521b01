"""automl: a declarative AutoML framework for tabular data (Hydra configs, Ray Tune search).

    import automl
    run = automl.fit("data.csv", target="y", budget={"time_limit_s": 60})
    run.predict(df); run.predict_proba(df); run.leaderboard
    run = automl.load(run.run_dir)
"""
from __future__ import annotations

import time
from typing import Any, Dict

from automl.errors import AutoMLError, ConfigError, DataError
from automl.run import Run, load

__all__ = ["fit", "load", "Run", "AutoMLError", "ConfigError", "DataError"]
__version__ = "0.1.0"


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
            node[parts[-1]] = value
    return out


def fit(data, target: str, **overrides: Any) -> Run:
    """Run automl on a DataFrame or a table URL.

    ``overrides`` are config keys: ``metric="auc"``, ``budget={"time_limit_s": 60}`` or
    ``budget__time_limit_s=60`` (``__`` stands for ``.``).
    """
    import pandas as pd

    from automl.config import compose_config
    from automl.runner import fit as _fit

    started = time.time()
    frame = data if isinstance(data, pd.DataFrame) else None
    values = _nest(overrides)
    values.setdefault("data", {}).update(
        {"path": "<dataframe>" if frame is not None else str(data), "target": target})
    cfg = compose_config([], values=values)
    return _fit(cfg, frame=frame, started=started)
