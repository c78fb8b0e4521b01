"""The prepare stage: read the data, check it, infer the problem and the column types, hold out
test rows and make the validation folds. Reads only; nothing is written."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.model_selection import train_test_split

from automl.data.io import DEMO_DATASETS, read_table
from automl.data.types import FEATURE_TYPES, infer_column_types
from automl.errors import DataError
from automl.problem import ProblemInfo, check_enough_rows, encode_target, resolve_problem
from automl.search.sampling import cap_fold_rows
from automl.search.trial import fold_count, make_folds

log = logging.getLogger(__name__)
Folds = List[Tuple[np.ndarray, np.ndarray]]


@dataclass
class Prepared:
    """The checked training data and what was inferred from it."""

    df: pd.DataFrame  # training rows (rows without a usable target dropped, test rows held out)
    test_df: Optional[pd.DataFrame]  # data.test_path or the held-out rows; None without test data
    info: ProblemInfo
    X: pd.DataFrame  # ``df`` without the target
    y: np.ndarray  # the encoded target
    column_types: Dict[str, str]  # every column of X
    features: List[str]  # the columns used as features
    n_rows_read: int
    folds: Optional[Folds]  # None with mode=candidates_only

    @property
    def feature_types(self) -> Dict[str, str]:
        return {c: self.column_types[c] for c in self.features}


def load_training_data(cfg: DictConfig, frame: Optional[pd.DataFrame] = None):
    """Read the table, drop configured columns and rows without a target (logging how many)."""
    d = cfg.data
    df = frame.copy() if frame is not None else read_table(d.path, dict(d.storage_options), d.sheet)
    if df.empty:
        raise DataError("data.path: the table has no rows; give data with at least a few rows")
    if d.target not in df.columns:
        shown = ", ".join(map(str, list(df.columns)[:30])) + (" …" if df.shape[1] > 30 else "")
        raise DataError(f"data.target '{d.target}' is not a column; the columns are: {shown}")
    dup = df.columns[df.columns.duplicated()].tolist()
    if dup:
        raise DataError(f"duplicate column name(s): {', '.join(map(str, dup))}; rename them so each is unique")
    drop = [c for c in d.drop if c in df.columns]
    if drop:
        df = df.drop(columns=drop)
    test = None
    if d.test_path:
        test = read_table(d.test_path, dict(d.storage_options), d.sheet, what="data.test_path")
        test = test.drop(columns=[c for c in drop if c in test.columns])
    return df, test


def drop_bad_targets(df: pd.DataFrame, target: str, problem_type: str, where: str) -> pd.DataFrame:
    """``df`` without the rows whose target is missing (or, for regression, not finite), logged."""
    y = df[target]
    bad = y.isna()
    if problem_type == "regression":
        num = pd.to_numeric(y, errors="coerce")
        bad |= ~np.isfinite(num.fillna(np.nan).astype(float))
    n_bad = int(bad.sum())
    if n_bad:
        log.warning("dropped %d of %d %s rows whose target '%s' is missing or not finite",
                    n_bad, len(df), where, target)
    return df.loc[~bad].reset_index(drop=True)


def hold_out_test(cfg: DictConfig, df: pd.DataFrame, test_df: Optional[pd.DataFrame], info: ProblemInfo,
                  from_frame: bool) -> Tuple[pd.DataFrame, Optional[pd.DataFrame]]:
    """Split off ``data.test_fraction`` of the rows as test data (0.25 for a demo dataset without
    test data), unless test data was given."""
    target = cfg.data.target
    test_fraction = cfg.data.test_fraction
    if test_fraction is None:
        test_fraction = 0.25 if cfg.data.path in DEMO_DATASETS and not from_frame and test_df is None else 0.0
    if test_df is None and test_fraction > 0:
        strat = df[target] if info.problem_type != "regression" and df[target].value_counts().min() >= 2 else None
        df, test_df = train_test_split(df, test_size=test_fraction, random_state=cfg.seed, stratify=strat)
        df, test_df = df.reset_index(drop=True), test_df.reset_index(drop=True)
        log.info("held out %d rows (%.0f%%) as test data", len(test_df), 100 * test_fraction)
    return df, test_df


def run_folds(cfg: DictConfig, y, info: ProblemInfo, n_rows: int) -> Folds:
    """The validation splits every trial uses (k-fold, or a holdout on large data)."""
    v = cfg.validation
    n_folds = v.large_data_folds if n_rows >= v.large_data_rows else v.n_folds
    if n_folds != v.n_folds and n_rows <= v.cv_max_rows:
        log.info("%d rows >= validation.large_data_rows=%d: %d-fold cross-validation", n_rows,
                 v.large_data_rows, n_folds)
    if n_rows <= v.cv_max_rows:
        fitted, why = fold_count(y, info.problem_type, n_folds, info.classes)
        if why:  # tiny data: fewer folds (check_enough_rows stopped data too small for 2)
            key = "n_folds" if n_folds == v.n_folds else "large_data_folds"
            log.info("%s, fewer than validation.%s=%d: %d-fold cross-validation", why, key, n_folds, fitted)
    folds = make_folds(y, info.problem_type, n_folds, v.cv_max_rows, v.holdout_fraction, cfg.seed)
    return cap_fold_rows(folds, y, v.get("max_train_rows"), info.problem_type, cfg.seed)


def feature_columns(column_types: Dict[str, str]) -> List[str]:
    """The columns whose inferred type is a feature type; an error when there are none."""
    features = [c for c, t in column_types.items() if t in FEATURE_TYPES]
    unused = {c: t for c, t in column_types.items() if t not in FEATURE_TYPES}
    if unused:
        log.info("not used as features: %s", ", ".join(f"{c} ({t})" for c, t in unused.items()))
    if not features:
        raise DataError("no usable feature columns: every column is ID-like or constant; add informative columns")
    return features


def prepare(cfg: DictConfig, frame: Optional[pd.DataFrame] = None) -> Prepared:
    """Read and check the training data (``frame`` instead of data.path when given)."""
    phase = time.time()
    df, test_df = load_training_data(cfg, frame)
    target = cfg.data.target
    log.info("read %d rows x %d columns in %.1f s", len(df), df.shape[1], time.time() - phase)
    info = resolve_problem(df[target], cfg.problem_type, cfg.metric, target)
    log.info("problem: %s (%s); metric: %s", info.problem_type, info.reason, info.metric)
    n_read = len(df)
    df = drop_bad_targets(df, target, info.problem_type, "training")
    df, test_df = hold_out_test(cfg, df, test_df, info, frame is not None)
    check_enough_rows(df[target], info.problem_type, target)  # tiny data: a one-line error
    phase = time.time()
    X = df.drop(columns=[target])
    column_types = infer_column_types(X)
    log.info("inferred %d column types in %.1f s", len(column_types), time.time() - phase)
    features = feature_columns(column_types)
    y = encode_target(df[target], info)
    folds = None if cfg.mode == "candidates_only" else run_folds(cfg, y, info, len(df))
    return Prepared(df, test_df, info, X, y, column_types, features, n_read, folds)
