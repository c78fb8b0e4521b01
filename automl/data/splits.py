"""Validation folds and the held-out test split, by the structure of the rows.

- plain: shuffled k-fold (stratified when every class allows it), one stratified holdout split
  above ``validation.cv_max_rows``;
- groups (``validation.group_column``): group-disjoint folds (StratifiedGroupKFold for classes,
  GroupKFold for values) and a group-disjoint test split, so no group is both trained on and
  scored;
- time (``validation.time_column``): the rows sorted by time, forward-chaining folds (each fold
  trains on the rows before its validation block, as TimeSeriesSplit) and the last period as the
  test split. The first block is never validated: its out-of-fold predictions stay NaN.

Block edges never cut through rows that share a timestamp. See docs/validation.md.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from sklearn.model_selection import (GroupKFold, GroupShuffleSplit, KFold, StratifiedGroupKFold, StratifiedKFold,
                                     TimeSeriesSplit, train_test_split)

from automl.errors import DataError

log = logging.getLogger(__name__)
Fold = Tuple[np.ndarray, np.ndarray]
STRUCTURES = ("plain", "group", "time")


@dataclass
class Structure:
    """How the rows hang together: independent (plain), in groups, or in time order."""

    kind: str = "plain"  # plain | group | time
    column: Optional[str] = None
    groups: Optional[np.ndarray] = None  # kind=group: one group code per training row
    times: Optional[np.ndarray] = None  # kind=time: each training row's time as a sortable number, ascending

    def record(self, held_out: bool = False) -> Dict[str, Any]:
        """For summary.json's ``validation``; ``held_out``: the test rows were split off here
        (data.test_fraction), not given."""
        rec: Dict[str, Any] = {"structure": self.kind, "column": self.column}
        if self.groups is not None:
            rec["n_groups"] = int(len(np.unique(self.groups)))
        if held_out:
            rec["test_split"] = {"plain": "random rows", "group": "whole groups",
                                 "time": "the last period"}[self.kind]
        return rec


def fold_count(y: np.ndarray, problem_type: str, n_folds: int, classes: Optional[list] = None) -> Tuple[int, str]:
    """How many folds ``y`` allows (at most ``n_folds``), and why fewer when fewer: every class
    needs a row in every fold, and every fold a row. ``""`` when ``n_folds`` fits."""
    n = len(y)
    if problem_type != "regression" and n:
        counts = np.bincount(y).astype(float)
        counts[counts == 0] = np.inf
        rarest = int(np.argmin(counts))
        smallest = int(counts[rarest])
        if smallest < n_folds:
            name = f" ({classes[rarest]!r})" if classes is not None and rarest < len(classes) else ""
            return max(2, smallest), f"the smallest class{name} has {smallest} rows"
    if n < n_folds:
        return max(2, n), f"there are {n} rows"
    return n_folds, ""


def _stratifiable(y: np.ndarray, problem_type: str, at_least: int = 2) -> bool:
    return problem_type != "regression" and len(y) > 0 and int(np.bincount(y)[np.bincount(y) > 0].min()) >= at_least


def make_folds(y: np.ndarray, problem_type: str, n_folds: int, cv_max_rows: int, holdout_fraction: float, seed: int,
               groups: Optional[np.ndarray] = None, times: Optional[np.ndarray] = None) -> List[Fold]:
    """k-fold CV up to ``cv_max_rows`` rows (fewer folds when a class or the data has fewer rows
    than ``n_folds``: see ``fold_count``), one holdout split above. ``groups``: group-disjoint
    folds; ``times`` (ascending, one per row): forward-chaining folds."""
    if times is not None:
        return time_folds(times, n_folds, cv_max_rows, holdout_fraction)
    if groups is not None:
        return group_folds(y, problem_type, groups, n_folds, cv_max_rows, holdout_fraction, seed)
    n = len(y)
    stratify = _stratifiable(y, problem_type)
    idx = np.arange(n)
    if n > cv_max_rows:
        tr, va = train_test_split(idx, test_size=holdout_fraction, random_state=seed,
                                  stratify=y if stratify else None)
        return [(np.sort(tr), np.sort(va))]
    n_folds, _ = fold_count(y, problem_type, n_folds)
    splitter = (StratifiedKFold(n_folds, shuffle=True, random_state=seed) if stratify
                else KFold(n_folds, shuffle=True, random_state=seed))
    return list(splitter.split(idx, y if stratify else None))


def group_folds(y: np.ndarray, problem_type: str, groups: np.ndarray, n_folds: int, cv_max_rows: int,
                holdout_fraction: float, seed: int) -> List[Fold]:
    """Folds whose validation rows share no group with their training rows."""
    idx = np.arange(len(y))
    n_groups = len(np.unique(groups))
    if len(y) > cv_max_rows:
        splitter = GroupShuffleSplit(n_splits=1, test_size=holdout_fraction, random_state=seed)
        tr, va = next(splitter.split(idx, groups=groups))
        return [(np.sort(tr), np.sort(va))]
    k = min(n_folds, n_groups)
    if k < n_folds:
        log.info("validation.group_column has %d groups, fewer than %d folds: %d-fold group cross-validation",
                 n_groups, n_folds, k)
    if _stratifiable(y, problem_type, k):
        splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
    else:
        splitter = GroupKFold(k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class with fewer groups than folds: some folds lack it
        warnings.simplefilter("ignore", UserWarning)
        folds = [(tr, va) for tr, va in splitter.split(idx, y, groups) if len(va) and len(tr)]
    return folds


def _tie_start(times: np.ndarray, pos: int) -> int:
    """The first position holding the same time as ``pos`` (times ascending)."""
    return int(np.searchsorted(times, times[pos], side="left"))


def time_folds(times: np.ndarray, n_folds: int, cv_max_rows: int, holdout_fraction: float) -> List[Fold]:
    """Forward-chaining folds over rows sorted by time: each validation block follows all of its
    training rows; the first block is never validated. Above ``cv_max_rows``: the last
    ``holdout_fraction`` of the rows validates, the rest trains."""
    n = len(times)
    if n > cv_max_rows:
        starts = [int(round(n * (1 - holdout_fraction)))]
        ends = [n]
    else:
        k = max(2, min(n_folds, n - 1))
        splits = list(TimeSeriesSplit(k).split(np.zeros(n)))
        starts = [int(va[0]) for _, va in splits]
        ends = [int(va[-1]) + 1 for _, va in splits]
    folds = []
    for start, end in zip(starts, ends):
        start = _tie_start(times, min(start, n - 1))
        end = _tie_start(times, end) if end < n else n
        if 0 < start < end:
            folds.append((np.arange(start), np.arange(start, end)))
    if not folds:
        raise DataError("validation.time_column: every row has the same time, so no row comes after another; "
                        "choose a column that orders the rows, or drop validation.time_column")
    return folds


def group_codes(s: pd.Series, column: str) -> np.ndarray:
    """One integer code per row for ``validation.group_column``; missing groups are an error."""
    missing = int(s.isna().sum())
    if missing:
        raise DataError(f"validation.group_column '{column}' is missing in {missing} of {len(s)} rows; "
                        "give every row a group (or drop those rows)")
    codes = pd.factorize(s, sort=False)[0]
    if len(np.unique(codes)) < 2:
        raise DataError(f"validation.group_column '{column}' has a single group; group-disjoint validation needs "
                        "at least 2 (choose another column or drop validation.group_column)")
    return codes.astype(np.int64)


def time_keys(s: pd.Series, column: str) -> np.ndarray:
    """``validation.time_column`` as sortable numbers: numbers as they are, dates as nanoseconds.
    Missing or unreadable times are an error naming a bad value."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        keys = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = s if pd.api.types.is_datetime64_any_dtype(s) else pd.to_datetime(s, errors="coerce",
                                                                                      format="mixed")
        keys = np.full(len(s), np.nan)
        ok = parsed.notna().to_numpy()
        if ok.any() and pd.api.types.is_datetime64_any_dtype(parsed):
            keys[ok] = parsed[ok].astype("int64").to_numpy(dtype=float)
    bad = ~np.isfinite(keys)
    if bad.any():
        example = s[bad].iloc[0]
        example = example.item() if hasattr(example, "item") else example
        raise DataError(f"validation.time_column '{column}' has {int(bad.sum())} of {len(s)} rows that are missing "
                        f"or neither a number nor a date (e.g. {example!r}); fix or drop those rows")
    return keys


def split_test(df: pd.DataFrame, fraction: float, seed: int, kind: str, column: Optional[str],
               stratify: Optional[pd.Series]) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, test rows): ``fraction`` of them; whole groups, the last period (``df``
    sorted by time) or random rows (stratified by ``stratify`` when given)."""
    if kind == "group":
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        tr, te = next(splitter.split(df, groups=group_codes(df[column], column)))
        tr, te = np.sort(tr), np.sort(te)
    elif kind == "time":
        times = time_keys(df[column], column)
        cut = _tie_start(times, min(len(df) - 1, int(round(len(df) * (1 - fraction)))))
        if cut == 0:
            raise DataError(f"data.test_fraction={fraction}: every row has the same time in validation.time_column "
                            f"'{column}', so there is no last period to hold out; use data.test_fraction=0")
        tr, te = np.arange(cut), np.arange(cut, len(df))
    else:
        train, test = train_test_split(df, test_size=fraction, random_state=seed, stratify=stratify)
        return train.reset_index(drop=True), test.reset_index(drop=True)
    return df.iloc[tr].reset_index(drop=True), df.iloc[te].reset_index(drop=True)
