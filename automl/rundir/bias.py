"""``bias.json``: the bias metrics of the column ``explain.facet`` names (docs/bias.md).

Computed from the run folder at the end of a fit: the training rows (``data/train.parquet``) give
the pre-training metrics (CI, DPL), the chosen model's out-of-fold predictions on the same rows
(``trials/<id>/oof.npy``; an ensemble's blend of its members') the post-training one (DPPL), so
every prediction comes from a model that did not see its row. ``Run.bias(df)`` computes the same
on any table, with the saved model's predictions. The metrics themselves: automl/explain/bias.py.
"""
from __future__ import annotations

import io
import logging
from typing import Any, Dict, Mapping, Optional

import numpy as np
import pandas as pd
import yaml

from automl import artifacts as art
from automl.explain.bias import facet_bias, favourable_class, favourable_indicator
from automl.rundir.layout import BIAS_FILE, CONFIG_FILE, TRAIN_DATA_FILE
from automl.rundir.summary import read_summary
from automl.rundir.trials import load_oof

log = logging.getLogger(__name__)


def configured_facet(run_dir: str, so: Dict[str, Any]) -> Dict[str, Any]:
    """The run's ``explain`` block of ``config.yaml`` ({} when it has none)."""
    url = art.join(run_dir, CONFIG_FILE)
    if not art.exists(url, so):
        return {}
    cfg = yaml.safe_load(art.read_text(url, so)) or {}
    return dict(cfg.get("explain") or {})


def chosen_oof(run_dir: str, so: Dict[str, Any], best: Mapping[str, Any]) -> Optional[np.ndarray]:
    """The chosen model's out-of-fold predictions: its trial's, or the weighted blend of an
    ensemble's members' (class probabilities renormalised per row); None when any is missing."""
    members = best.get("members")
    parts = ([(load_oof(run_dir, str(m["trial_id"]), so), float(m["weight"])) for m in members] if members
             else [(load_oof(run_dir, str(best.get("trial_id", "")), so), 1.0)])
    if not parts or any(p is None for p, _ in parts):
        return None
    oof = sum(w * p for p, w in parts)
    return oof / oof.sum(axis=1, keepdims=True) if oof.ndim == 2 else oof


def oof_favourable(oof: np.ndarray, classes: list, favourable: Any, positive_class: Any,
                   threshold: Optional[float]) -> np.ndarray:
    """1.0 where the out-of-fold predicted label is ``favourable``, 0.0 where not, NaN where the row
    has no out-of-fold prediction. Labels as the model gives them: its tuned binary threshold on
    the raw probabilities, else the most probable class."""
    covered = ~np.isnan(oof[:, 0])
    filled = np.nan_to_num(oof)
    if threshold is not None and len(classes) == 2:
        pos = classes.index(positive_class) if positive_class in classes else 1
        idx = np.where(filled[:, pos] >= threshold, pos, 1 - pos)
    else:
        idx = np.argmax(filled, axis=1)
    return np.where(covered, (idx == classes.index(favourable)).astype(float), np.nan)


def describe(summary: Mapping[str, Any], facet: str, favourable: Any, wanted: Any, labels: str,
             predictions: Optional[str]) -> Dict[str, Any]:
    """What a bias record is about, for bias.json and the report."""
    regression = summary["problem_type"] == "regression"
    return {"facet": str(facet), "problem_type": summary["problem_type"], "target": summary["target"],
            "favourable": None if regression else favourable,
            "favourable_from": None if regression else ("explain.facet_positive" if wanted is not None
                                                        else "the positive class"),
            "measure": "mean" if regression else "share favourable",
            "facet_is_feature": str(facet) in map(str, summary.get("features") or []),
            "labels": labels, "predictions": predictions}


def training_bias(run_dir: str, so: Dict[str, Any], facet: str, wanted: Any = None, seed: int = 0) -> Dict[str, Any]:
    """CI and DPL of the training rows and DPPL of the chosen model's out-of-fold predictions on them."""
    summary = read_summary(run_dir, so)
    df = pd.read_parquet(io.BytesIO(art.read_bytes(art.join(run_dir, TRAIN_DATA_FILE), so)))
    classes, best = list(summary.get("classes") or []), summary.get("best") or {}
    fav = favourable_class(classes, summary["problem_type"], summary.get("positive_class"), wanted)
    target = df[summary["target"]]
    label = (pd.to_numeric(target, errors="coerce").to_numpy(dtype=float) if fav is None
             else favourable_indicator(target.tolist(), fav))
    oof = chosen_oof(run_dir, so, best) if best else None
    if oof is not None and len(oof) != len(df):
        oof = None
    pred, what = None, None
    if oof is not None:
        pred = oof.astype(float) if fav is None else oof_favourable(oof, classes, fav, summary.get("positive_class"),
                                                                     best.get("threshold"))
        what = (f"out-of-fold predictions of the chosen model ({best.get('candidate')}, trial {best.get('trial_id')}) "
                "on the training rows")
    doc = describe(summary, facet, fav, wanted, "the training rows' target", what)
    doc.update(facet_bias(df[facet], label, pred, seed=seed))
    return doc


def table_bias(summary: Mapping[str, Any], model: Any, df: pd.DataFrame, facet: str, wanted: Any = None,
               seed: int = 0) -> Dict[str, Any]:
    """CI, DPL (when ``df`` holds the target) and DPPL of the model's predictions on ``df``."""
    classes = list(summary.get("classes") or [])
    fav = favourable_class(classes, summary["problem_type"], summary.get("positive_class"), wanted)
    target = summary["target"]
    label = None
    if target in df.columns:
        label = (pd.to_numeric(df[target], errors="coerce").to_numpy(dtype=float) if fav is None
                 else favourable_indicator(df[target].tolist(), fav))
    predicted = model.predict(df)
    pred = np.asarray(predicted, dtype=float) if fav is None else favourable_indicator(list(predicted), fav)
    doc = describe(summary, facet, fav, wanted, f"the table's '{target}' column" if label is not None else None,
                   f"the model's predictions ({summary.get('best', {}).get('candidate')}) on the table")
    doc.update(facet_bias(df[facet], label, pred, seed=seed))
    return doc


def write_bias(run_dir: str, so: Dict[str, Any], explain: Optional[Mapping[str, Any]], seed: int = 0) -> Optional[str]:
    """Write ``bias.json`` when ``explain.facet`` is set; returns its URL. A failure is a warning:
    the facet was checked before the search, and the run's model is what matters."""
    facet = (explain or {}).get("facet")
    if not facet:
        return None
    try:
        doc = training_bias(run_dir, so, str(facet), (explain or {}).get("facet_positive"), seed)
    except Exception as exc:
        log.warning("%s not written (%s: %s); the run goes on", BIAS_FILE, type(exc).__name__, exc)
        return None
    url = art.join(run_dir, BIAS_FILE)
    art.write_json(url, doc, so)
    log.info("wrote %s: %d comparison(s) on facet '%s'", BIAS_FILE, len(doc["comparisons"]), facet)
    return url


def read_bias(run_dir: str, so: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """The run's ``bias.json``; None when the run has none (no ``explain.facet``)."""
    url = art.join(run_dir, BIAS_FILE)
    so = so or {}
    return art.read_json(url, so) if art.exists(url, so) else None
