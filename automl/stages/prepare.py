"""The prepare stage: read the data, check it, infer the problem and the column types, hold out
test rows and make the validation folds (plain, group-disjoint or forward in time, with the rows'
sample weights: data/splits.py, data/weights.py). Reads only; nothing is written."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from automl.data.columns import check_chosen_columns, choose_features
from automl.data.io import DEMO_DATASETS, read_table
from automl.data.splits import Structure, fold_count, group_codes, make_folds, split_test, time_keys
from automl.data.types import FEATURE_TYPES, apply_type_overrides, infer_column_types
from automl.data.weights import Weighting, balanced_weights, check_weights, weighting_for
from automl.errors import DataError
from automl.explain.bias import check_facet, favourable_class
from automl.problem import ProblemInfo, check_enough_rows, encode_target, resolve_problem
from automl.search.sampling import cap_fold_rows

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
    weights: Optional[np.ndarray] = None  # one sample weight per row of df (None: unweighted)
    weighting: Optional[Weighting] = None  # where the weights come from (the test score uses it too)
    structure: Structure = field(default_factory=Structure)  # plain, group or time (data/splits.py)

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
        kind, column = structure_of(cfg)
        strat = df[target] if info.problem_type != "regression" and df[target].value_counts().min() >= 2 else None
        df, test_df = split_test(df, test_fraction, cfg.seed, kind, column, strat)
        how = {"group": f", whole groups of '{column}'", "time": f", the last period of '{column}'"}.get(kind, "")
        (log.info if how else log.debug)("held out %d rows (%.0f%%) as test data%s", len(test_df),
                                          100 * test_fraction, how)  # the test line names the rows
    return df, test_df


def structure_of(cfg: DictConfig) -> Tuple[str, Optional[str]]:
    """(plain | group | time, its column) from validation.group_column / validation.time_column."""
    v = cfg.validation
    if v.get("group_column"):
        return "group", str(v.group_column)
    if v.get("time_column"):
        return "time", str(v.time_column)
    return "plain", None


def check_role_columns(cfg: DictConfig, df: pd.DataFrame) -> List[str]:
    """The weight, group and time columns named in the config, checked to be in the table.
    Returns those that are never features (weight and group)."""
    roles = {"data.weight_column": cfg.data.get("weight_column"),
             "validation.group_column": cfg.validation.get("group_column"),
             "validation.time_column": cfg.validation.get("time_column")}
    for key, col in roles.items():
        if col and col not in df.columns:
            why = "it is listed in data.drop; remove it there" if col in cfg.data.drop else \
                "the columns are: " + ", ".join(map(str, list(df.columns)[:30]))
            raise DataError(f"{key} '{col}' is not a column of the training data; {why}")
    return [c for c in (roles["data.weight_column"], roles["validation.group_column"]) if c]


def order_rows(cfg: DictConfig, df: pd.DataFrame, test_df: Optional[pd.DataFrame]) -> pd.DataFrame:
    """Rows sorted by validation.time_column (stable; ties keep the table's order); else as read.
    Checks every row's weight and group first (training and given test data)."""
    w_col = cfg.data.get("weight_column")
    if w_col:
        check_weights(df[w_col], w_col)
        if test_df is not None and w_col in test_df.columns:
            check_weights(test_df[w_col], w_col, "test")
    kind, column = structure_of(cfg)
    if kind == "group":
        group_codes(df[column], column)  # missing groups: an error before the test split
    if kind != "time":
        return df
    order = np.argsort(time_keys(df[column], column), kind="mergesort")
    return df.iloc[order].reset_index(drop=True)


def row_structure(cfg: DictConfig, df: pd.DataFrame) -> Structure:
    """The training rows' groups or times, for the folds and the re-rank."""
    kind, column = structure_of(cfg)
    if kind == "group":
        return Structure(kind, column, groups=group_codes(df[column], column))
    if kind == "time":
        return Structure(kind, column, times=time_keys(df[column], column))
    return Structure()


def row_weights(cfg: DictConfig, df: pd.DataFrame,
                info: ProblemInfo) -> Tuple[Optional[Weighting], Optional[np.ndarray]]:
    """The weighting and each training row's weight (None, None when unweighted)."""
    weighting = weighting_for(cfg.data, info.problem_type)
    if weighting is None:
        return None, None
    if weighting.mode == "balanced":
        balanced_weights(weighting, df[cfg.data.target])
    weights = weighting.of(df, cfg.data.target)
    log.info("sample weights from %s: sum %.4g, min %.4g, max %.4g over %d rows",
             f"column '{weighting.column}'" if weighting.column else "the classes (balanced)",
             weights.sum(), weights.min(), weights.max(), len(weights))
    return weighting, weights


def run_folds(cfg: DictConfig, y, info: ProblemInfo, n_rows: int, structure: Optional[Structure] = None) -> Folds:
    """The validation splits every trial uses (k-fold, or a holdout on large data); group-disjoint
    or forward in time as ``structure`` says."""
    structure = structure or Structure()
    v = cfg.validation
    n_folds = v.large_data_folds if n_rows >= v.large_data_rows else v.n_folds
    if n_folds != v.n_folds and n_rows <= v.cv_max_rows:
        log.info("%d rows >= validation.large_data_rows=%d: %d-fold cross-validation", n_rows,
                 v.large_data_rows, n_folds)
    if n_rows <= v.cv_max_rows and structure.kind == "plain":
        fitted, why = fold_count(y, info.problem_type, n_folds, info.classes)
        if why:  # tiny data: fewer folds (check_enough_rows stopped data too small for 2)
            key = "n_folds" if n_folds == v.n_folds else "large_data_folds"
            log.info("%s, fewer than validation.%s=%d: %d-fold cross-validation", why, key, n_folds, fitted)
    folds = make_folds(y, info.problem_type, n_folds, v.cv_max_rows, v.holdout_fraction, cfg.seed,
                       groups=structure.groups, times=structure.times)
    if structure.kind != "plain":
        validated = len(np.unique(np.concatenate([va for _, va in folds])))
        log.info("%s validation on '%s': %d fold(s), %d of %d rows validated", structure.kind, structure.column,
                 len(folds), validated, n_rows)
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


def check_column_choice(cfg: DictConfig, df: pd.DataFrame) -> None:
    """data.features, data.exclude and data.types name columns of the table (issue 18)."""
    d, v = cfg.data, cfg.validation
    reserved = {str(d[k]): f"data.{k}" for k in ("weight_column",) if d.get(k)}
    reserved.update({str(v[k]): f"validation.{k}" for k in ("group_column",) if v.get(k)})
    check_chosen_columns(list(df.columns), d.target, d.get("features"), list(d.get("exclude") or []),
                         dict(d.get("types") or {}), list(d.drop), reserved)


def check_bias_facet(cfg: DictConfig, df: pd.DataFrame, info: ProblemInfo) -> None:
    """explain.facet names a column of the table with few values, and the favourable class is known
    (docs/bias.md): checked before the search, so bias.json cannot fail for these reasons after it."""
    e = cfg.get("explain") or {}
    if not e.get("facet"):
        return
    facet = str(e.facet)
    check_facet(facet, list(df.columns), cfg.data.target, list(cfg.data.drop), df[facet] if facet in df else None)
    favourable_class(info.classes, info.problem_type, info.positive_class, e.get("facet_positive"))


def prepare(cfg: DictConfig, frame: Optional[pd.DataFrame] = None) -> Prepared:
    """Read and check the training data (``frame`` instead of data.path when given)."""
    phase = time.time()
    df, test_df = load_training_data(cfg, frame)
    check_column_choice(cfg, df)
    target = cfg.data.target
    log.info("read %d rows x %d columns in %.1f s", len(df), df.shape[1], time.time() - phase)
    info = resolve_problem(df[target], cfg.problem_type, cfg.metric, target)
    log.info("problem: %s (%s); metric: %s", info.problem_type, info.reason, info.metric)
    check_bias_facet(cfg, df, info)
    n_read = len(df)
    df = drop_bad_targets(df, target, info.problem_type, "training")
    not_features = check_role_columns(cfg, df)
    df = order_rows(cfg, df, test_df)
    df, test_df = hold_out_test(cfg, df, test_df, info, frame is not None)
    check_enough_rows(df[target], info.problem_type, target)  # tiny data: a one-line error
    phase = time.time()
    X = df.drop(columns=[target, *not_features])  # the weight and group columns are never features
    types = dict(cfg.data.get("types") or {})
    column_types = apply_type_overrides(X, infer_column_types(X), types)
    log.debug("inferred %d column types in %.1f s%s", len(column_types), time.time() - phase,
             f" ({len(types)} set by data.types)" if types else "")
    features = choose_features(column_types, feature_columns(column_types), cfg.data.get("features"),
                               list(cfg.data.get("exclude") or []), types)
    y = encode_target(df[target], info)
    weighting, weights = row_weights(cfg, df, info)
    structure = row_structure(cfg, df)
    folds = None if cfg.mode == "candidates_only" else run_folds(cfg, y, info, len(df), structure)
    return Prepared(df, test_df, info, X, y, column_types, features, n_read, folds, weights, weighting, structure)
