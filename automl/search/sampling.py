"""Bounded trial cost on large data: trials fit on at most ``validation.max_train_rows``
training rows per fold (a stratified random sample, drawn once so every trial sees the same
rows); validation rows are all kept, and the final refit uses every training row."""
from __future__ import annotations

import logging
from typing import List, Optional, Tuple

import numpy as np
from sklearn.model_selection import train_test_split

log = logging.getLogger(__name__)

Fold = Tuple[np.ndarray, np.ndarray]


def cap_fold_rows(folds: List[Fold], y: np.ndarray, max_rows: Optional[int], problem_type: str,
                  seed: int, source: str = "validation.max_train_rows") -> List[Fold]:
    """Each fold's training indices, subsampled to ``max_rows`` when there are more (``source``:
    the setting that asks, for the log line)."""
    if not max_rows or all(len(tr) <= max_rows for tr, _ in folds):
        return folds
    out = []
    for tr, va in folds:
        if len(tr) <= max_rows:
            out.append((tr, va))
            continue
        strat = y[tr] if problem_type != "regression" else None
        if strat is not None and np.bincount(strat).min() < 2:
            strat = None
        keep, _ = train_test_split(tr, train_size=int(max_rows), random_state=seed, stratify=strat)
        out.append((np.sort(keep), va))
    log.info("trials fit on a sample of %d of %d training rows per fold (%s)%s", int(max_rows),
             max(len(tr) for tr, _ in folds), source,
             "; the final refit uses all rows" if source == "validation.max_train_rows" else "")
    return out


def sample_index(y: np.ndarray, n: int, problem_type: str, seed: int) -> np.ndarray:
    """Sorted indices of a sample of ``n`` of the rows of ``y`` (all rows when ``n`` is not fewer),
    stratified by class when every class has two rows or more."""
    idx = np.arange(len(y))
    if n >= len(idx):
        return idx
    strat = y if problem_type != "regression" and np.bincount(y).min() >= 2 else None
    try:
        idx, _ = train_test_split(idx, train_size=int(n), random_state=seed, stratify=strat)
    except ValueError:  # too few rows for some class in the sample
        idx, _ = train_test_split(idx, train_size=int(n), random_state=seed)
    return np.sort(idx)
