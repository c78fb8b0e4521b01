"""automl: a declarative AutoML framework for tabular data (Hydra configs, Ray Tune search).

    import automl
    run = automl.fit("data.csv", target="y", budget={"time_limit_s": 60})
    run.predict(df); run.predict_proba(df); run.leaderboard
    run = automl.load(run.run_dir)
"""
from __future__ import annotations

import time
from typing import Any, Dict, List

from automl.errors import AutoMLError, ConfigError, DataError
from automl.run import Run, load

__all__ = ["fit", "load", "Run", "AutoMLError", "ConfigError", "DataError"]
__version__ = "0.1.0"


def _flatten(prefix: str, value: Any, out: List[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
        return
    if isinstance(value, (list, tuple)):
        value = "[" + ",".join(map(str, value)) + "]"
    elif value is None:
        value = "null"
    out.append(f"{prefix}={value}")


def fit(data, target: str, **overrides: Any) -> Run:
    """Run automl on a DataFrame or a table URL.

    ``overrides`` are config keys: ``metric="auc"``, ``budget={"time_limit_s": 60}`` or
    ``budget__time_limit_s=60`` (``__`` stands for ``.``).
    """
    import pandas as pd

    from automl.config import compose_config
    from automl.runner import fit as _fit

    started = time.time()
    items: List[str] = []
    for key, value in overrides.items():
        _flatten(key.replace("__", "."), value, items)
    frame = data if isinstance(data, pd.DataFrame) else None
    path = "<dataframe>" if frame is not None else str(data)
    items += [f"data.path={path}", f"data.target={target}"]
    cfg = compose_config(items)
    return _fit(cfg, frame=frame, started=started)
