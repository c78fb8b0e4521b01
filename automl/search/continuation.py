"""A finished run continued with more budget (``resume=true`` on it; search/resume.py): the check
that the new attempt trains on the same rows, and the copy of the earlier trials into the folder
the new attempt is built in. Which run is finished and its history: rundir/history.py."""
from __future__ import annotations

import io
import logging
from typing import Any, Dict, List

import fsspec
import pandas as pd

from automl import artifacts as art
from automl.errors import ConfigError
from automl.rundir.layout import MONITORING_DIR, TRAIN_DATA_FILE, trial_oof_file, trial_result_file

log = logging.getLogger(__name__)


def check_same_data(run_dir: str, so: Dict[str, Any], df, target: str) -> None:
    """The earlier trials' out-of-fold predictions are row by row: refuse other training rows
    than the run's data/train.parquet (its columns, row count and target values)."""
    url = art.join(run_dir, TRAIN_DATA_FILE)
    try:
        if not art.exists(url, so):
            return
        old = pd.read_parquet(io.BytesIO(art.read_bytes(url, so)))
    except Exception as exc:  # a half-written file of a killed attempt: nothing to compare with
        log.debug("not comparing with %s: %s", url, exc)
        return
    same = (list(map(str, old.columns)) == list(map(str, df.columns)) and len(old) == len(df)
            and old[target].astype(str).tolist() == df[target].astype(str).tolist())
    if not same:
        raise ConfigError(f"resume=true continues the run in {run_dir}, whose trials were scored on other training "
                          f"rows ({len(old)} rows x {old.shape[1]} columns; now {len(df)} x {df.shape[1]}); pass the "
                          "run's data (data.path, data.target, data.test_fraction, seed as in its config.yaml), or "
                          "overwrite=true to start a new run there")


def carry_over(source: str, dest: str, so: Dict[str, Any], rows: List[Dict[str, Any]]) -> None:
    """Copy the earlier trials' files and what `automl monitor` wrote from ``source`` to ``dest``."""
    files = [f for r in rows for f in (trial_result_file(r["trial_id"]), trial_oof_file(r["trial_id"]))]
    fs, root = fsspec.core.url_to_fs(source, **so)
    root = root.rstrip("/")
    try:
        files += [p[len(root) + 1:] for p in fs.find(f"{root}/{MONITORING_DIR}")]
    except FileNotFoundError:
        pass
    copied = 0
    for rel in files:
        src = art.join(source, rel)
        if art.exists(src, so):
            art.write_bytes(art.join(dest, rel), art.read_bytes(src, so), so)
            copied += 1
    log.info("copied %d file(s) of the earlier attempt(s) into the new attempt's folder", copied)
