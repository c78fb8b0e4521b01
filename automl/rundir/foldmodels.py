"""A trial's kept fold models (``trials/<id>/fold_models.skops``): written by a holdout trial,
kept for the best trial so far, read back by the select stage when a refit on all rows would not
fit the clock (selection/timeplan.py).

The file is a skops file (loads without running code, rundir/modelfile.py); a custom
``module:factory`` algorithm's models hold types skops does not trust and are kept as a pickle
(``.pkl``), read back only by the same fit that wrote them, as its final model would be.
"""
from __future__ import annotations

import logging
import pickle
from typing import Any, Dict, List, Optional

import fsspec

from automl import artifacts as art
from automl.rundir.layout import trial_fold_models_file
from automl.rundir.modelfile import LEGACY_SUFFIX, MODEL_SUFFIX, load_model_bytes, model_bytes

log = logging.getLogger(__name__)


def save_fold_models(out: str, trial_id: str, models: List[Any], so: Dict[str, Any]) -> None:
    """Write a trial's fitted fold pipelines (in fold order)."""
    suffix, data = model_bytes(list(models))
    art.write_bytes(art.join(out, trial_fold_models_file(trial_id, suffix)), data, so)


def _existing(out: str, trial_id: str, so: Dict[str, Any]) -> Optional[str]:
    for suffix in (MODEL_SUFFIX, LEGACY_SUFFIX):
        url = art.join(out, trial_fold_models_file(trial_id, suffix))
        if art.exists(url, so):
            return url
    return None


def load_fold_models(out: str, trial_id: str, so: Dict[str, Any]) -> Optional[List[Any]]:
    """A trial's kept fold pipelines, or None when it kept none (or they cannot be read)."""
    url = _existing(out, trial_id, so)
    if url is None:
        return None
    try:
        data = art.read_bytes(url, so)
        if url.endswith(LEGACY_SUFFIX):  # a custom algorithm's, written by this fit's own trial
            return list(pickle.loads(data))
        return list(load_model_bytes(data, url))
    except Exception as exc:  # the fallback then refits on a sample instead
        log.warning("could not read the kept fold models of trial %s: %s", trial_id, exc)
        return None


def drop_fold_models(out: str, trial_id: str, so: Dict[str, Any]) -> None:
    """Remove a trial's kept fold models (no longer the best trial)."""
    url = _existing(out, trial_id, so)
    if url is None:
        return
    fs, path = fsspec.core.url_to_fs(url, **(so or {}))
    try:
        fs.rm(path)
    except OSError as exc:  # only disk space is lost
        log.debug("could not remove %s: %s", url, exc)
