"""Calibrated probabilities for the final model (``select.calibration``).

On the final model's out-of-fold (OOF) probabilities, two calibrators are fitted: temperature
scaling (one scalar on the log-probabilities; arg-max and binary ranking unchanged) and isotonic
regression (one-vs-rest, a non-decreasing map per class, rows renormalised). Each is judged
honestly: cross-fitted over the OOF rows (fitted on 4/5 of them, applied to the other fifth), by
log loss. ``auto`` keeps the lowest, or none when neither lowers the log loss by ``MIN_GAIN``;
isotonic is not kept for a binary problem when its ties change the AUC of the OOF rows. The one
kept is fitted on all OOF rows and saved in the model (``automl.model.Calibrator``); predicted
labels and the tuned binary threshold keep using the raw probabilities, so no label changes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from automl.metrics import METRICS, score_all
from automl.model import Calibrator, apply_temperature
from automl.selection import CALIBRATIONS

log = logging.getLogger(__name__)

MIN_ROWS = 30  # fewer OOF rows than this: no calibration
MAX_ROWS = 100_000  # OOF rows sampled (seeded) to fit and choose on larger data
N_SPLITS = 5  # the cross-fitting's folds
MIN_GAIN = 0.002  # auto: a calibrator must lower the cross-fitted log loss by this share of the simpler one's
ISOTONIC_EPS = 1e-3  # isotonic probabilities are kept in [eps, 1 - eps]: a 0 would cost an infinite log loss
ECE_BINS = 15


@dataclass
class Calibration:
    """What the select stage keeps: the fitted calibrator (None: raw probabilities), the record
    for summary.json's ``best.calibration``, and the chosen method's cross-fitted OOF rows."""

    calibrator: Optional[Calibrator]
    record: Dict[str, Any]
    oof: Optional[np.ndarray] = None  # calibrated OOF probabilities of the rows it was chosen on
    rows: Optional[np.ndarray] = field(default=None, repr=False)  # their indices in the covered rows


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-probability of the true class (clipped at 1e-15)."""
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0))))


def fit_temperature(y: np.ndarray, proba: np.ndarray) -> float:
    """The temperature in [0.01, 100] that minimises the log loss of ``proba``."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda lt: log_loss(y, apply_temperature(proba, float(np.exp(lt)))),
                          bounds=(np.log(0.01), np.log(100.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def fit_isotonic(y: np.ndarray, proba: np.ndarray, pos_index: int) -> Calibrator:
    """One-vs-rest isotonic maps: one on the positive column (binary), else one per class."""
    from sklearn.isotonic import IsotonicRegression

    columns = [int(pos_index)] if proba.shape[1] == 2 else list(range(proba.shape[1]))
    xs: List[np.ndarray] = []
    ys: List[np.ndarray] = []
    for col in columns:
        iso = IsotonicRegression(y_min=ISOTONIC_EPS, y_max=1 - ISOTONIC_EPS, out_of_bounds="clip")
        iso.fit(proba[:, col], (y == col).astype(float))
        xs.append(np.asarray(iso.X_thresholds_, dtype=float))
        ys.append(np.asarray(iso.y_thresholds_, dtype=float))
    return Calibrator("isotonic", columns=columns, knots_x=xs, knots_y=ys)


def fit_calibrator(method: str, y: np.ndarray, proba: np.ndarray, pos_index: int) -> Calibrator:
    if method == "temperature":
        return Calibrator("temperature", temperature=fit_temperature(y, proba))
    return fit_isotonic(y, proba, pos_index)


def cross_fit(method: str, y: np.ndarray, proba: np.ndarray, pos_index: int, seed: int) -> np.ndarray:
    """Each row calibrated by a calibrator fitted on the other folds' rows."""
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(y, minlength=proba.shape[1])
    present = counts[counts > 0]
    splitter = (StratifiedKFold(N_SPLITS, shuffle=True, random_state=seed) if present.min() >= N_SPLITS
                else KFold(N_SPLITS, shuffle=True, random_state=seed))
    out = np.empty_like(proba, dtype=float)
    for fit_rows, apply_rows in splitter.split(proba, y):
        out[apply_rows] = fit_calibrator(method, y[fit_rows], proba[fit_rows], pos_index).transform(proba[apply_rows])
    return out


def reliability(y: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> Dict[str, Any]:
    """Top-class confidence against accuracy in ``bins`` equal-width bins, and the expected
    calibration error (the count-weighted mean gap)."""
    conf = proba.max(axis=1)
    correct = (np.argmax(proba, axis=1) == y).astype(float)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        if n:
            c, a = float(conf[mask].mean()), float(correct[mask].mean())
            ece += n / len(y) * abs(a - c)
            rows.append({"confidence": round(c, 5), "accuracy": round(a, 5), "count": n})
    return {"ece": round(float(ece), 5), "bins": rows}


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> float:
    return float(reliability(y, proba, bins)["ece"])


def score_calibrated(problem_type: str, y: np.ndarray, raw: np.ndarray, calibrated: np.ndarray,
                     pos_index: int = 1, threshold: Optional[float] = None,
                     sample_weight: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Every metric: label metrics from the raw probabilities (the model's labels), probability
    metrics (auc, logloss) from the calibrated ones (weighted by ``sample_weight`` when given)."""
    on_raw = score_all(problem_type, y, raw, pos_index, threshold, sample_weight)
    if calibrated is raw or problem_type == "regression":
        return on_raw
    on_cal = score_all(problem_type, y, calibrated, pos_index, sample_weight=sample_weight)
    return {name: (on_cal if METRICS[problem_type][name].needs_proba else on_raw)[name] for name in on_raw}


def _auc_changed(y: np.ndarray, raw: np.ndarray, calibrated: np.ndarray, pos_index: int) -> Optional[str]:
    """Why a binary calibration is refused (it changes the OOF AUC), or None."""
    before = METRICS["binary"]["auc"].fn(y, raw, pos_index)
    after = METRICS["binary"]["auc"].fn(y, calibrated, pos_index)
    if abs(after - before) > 1e-12:
        return f"its ties change the out-of-fold AUC ({before:.6f} -> {after:.6f})"
    return None


def _pick(losses: Dict[str, float], refused: Dict[str, str]) -> str:
    """auto: the simplest method unless a later one lowers the log loss by MIN_GAIN."""
    method = "none"
    for m in ("temperature", "isotonic"):
        if m in losses and m not in refused and losses[m] < losses[method] * (1 - MIN_GAIN):
            method = m
    return method


def _sample(n: int, seed: int) -> np.ndarray:
    if n <= MAX_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_ROWS, replace=False))


def choose_calibration(requested: str, y: np.ndarray, proba: np.ndarray, problem_type: str,
                       pos_index: int = 1, seed: int = 0) -> Calibration:
    """Choose and fit the calibration of OOF probabilities ``proba`` (covered rows only) of labels ``y``."""
    if requested not in CALIBRATIONS:
        raise ValueError(f"select.calibration must be one of {', '.join(CALIBRATIONS)}; got '{requested}'")
    record: Dict[str, Any] = {"requested": requested}
    if requested == "none" or problem_type == "regression":
        return Calibration(None, {**record, "method": "none", "reason": "select.calibration=none"})
    if len(y) < MIN_ROWS or len(np.unique(y)) < 2:
        return Calibration(None, {**record, "method": "none",
                                  "reason": f"too few out-of-fold rows to calibrate on ({len(y)})"})
    rows = _sample(len(y), seed)
    y, proba = y[rows], proba[rows]
    methods = ["temperature", "isotonic"] if requested == "auto" else [requested]
    crossed = {m: cross_fit(m, y, proba, pos_index, seed) for m in methods}
    losses = {"none": log_loss(y, proba), **{m: log_loss(y, p) for m, p in crossed.items()}}
    fitted = {m: fit_calibrator(m, y, proba, pos_index) for m in methods}
    refused: Dict[str, str] = {}
    if problem_type == "binary" and "isotonic" in fitted and requested == "auto":
        why = _auc_changed(y, proba, fitted["isotonic"].transform(proba), pos_index)
        if why:
            refused["isotonic"] = why
    method = _pick(losses, refused) if requested == "auto" else requested
    calibrator = fitted.get(method)
    chosen = crossed.get(method, proba)
    record.update({"method": method, "reason": _reason(method, requested, losses, refused),
                   "n_rows": int(len(y)), "oof_logloss": {m: round(v, 6) for m, v in losses.items()}})
    if refused:
        record["refused"] = refused
    if calibrator is not None and calibrator.method == "temperature":
        record["temperature"] = round(calibrator.temperature, 6)
    record["reliability"] = {"none": reliability(y, proba), "calibrated": reliability(y, chosen)}
    log.debug("calibration: %s (%s)", calibrator.describe() if calibrator else "none", record["reason"])
    return Calibration(calibrator, record, chosen, rows)


def _reason(method: str, requested: str, losses: Dict[str, float], refused: Dict[str, str]) -> str:
    ll = ", ".join(f"{m} {v:.4f}" for m, v in losses.items())
    if requested != "auto":
        return f"select.calibration={requested}; cross-fitted out-of-fold log loss: {ll}"
    why = f"lowest cross-fitted out-of-fold log loss ({ll})" if method != "none" else \
        f"no calibrator lowers the cross-fitted out-of-fold log loss by {MIN_GAIN:.1%} ({ll})"
    return why + "".join(f"; {m} not used: {r}" for m, r in refused.items())
