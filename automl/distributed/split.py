"""Splits and samples computed in the dataset, never in one pandas frame: each row's place is a
hash of its values (and the seed), so the same row always lands in the same split, whatever
the shard or block it is read in, and the split needs no shuffle."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import pandas as pd

from automl.distributed.dataset import DATA_TASK_CPUS, plain_frame

log = logging.getLogger(__name__)
BUCKETS = 1_000_000  # a row's hash modulo this: fractions are exact to 1e-6
MIN_CLASS_ROWS = 200  # a stratified sample keeps at least this many rows of each class (all of a rarer one)


def row_buckets(batch: pd.DataFrame, seed: int, salt: str = "split") -> np.ndarray:
    """Each row's bucket in [0, BUCKETS): a hash of its values, keyed by the seed and ``salt``."""
    key = f"{salt}{seed}".ljust(16, "0")[:16]
    hashed = pd.util.hash_pandas_object(batch, index=False, hash_key=key)
    return (hashed.to_numpy() % np.uint64(BUCKETS)).astype(np.int64)


def _between(batch: pd.DataFrame, lo: int, hi: int, seed: int) -> pd.DataFrame:
    b = row_buckets(batch, seed)
    return batch[(b >= lo) & (b < hi)]


@dataclass
class Splits:
    """The three parts of the table, each a lazy Ray Dataset."""

    train: Any
    valid: Any
    test: Optional[Any]
    test_fraction: float
    holdout_fraction: float
    cuts: Tuple[int, int] = (0, 0)  # buckets below the first are test rows, below the second validation rows

    def record(self, counts: Dict[str, int]) -> Dict[str, Any]:
        """summary.json's account of the split."""
        return {"scheme": "holdout", "n_folds": 1, "split": "hash of each row's values (in the dataset)",
                "test_fraction": self.test_fraction, "holdout_fraction": self.holdout_fraction, "rows": counts}


def split_dataset(ds, test_fraction: float, holdout_fraction: float, seed: int) -> Splits:
    """Test rows (``test_fraction`` of all), validation rows (``holdout_fraction`` of the rest) and
    training rows, by each row's hash bucket."""
    t = int(round(test_fraction * BUCKETS))
    v = t + int(round(holdout_fraction * (BUCKETS - t)))

    def part(lo: int, hi: int):
        return ds.map_batches(_between, fn_kwargs={"lo": lo, "hi": hi, "seed": seed}, batch_format="pandas",
                              num_cpus=DATA_TASK_CPUS)

    return Splits(part(v, BUCKETS), part(t, v), part(0, t) if t else None, test_fraction, holdout_fraction, (t, v))


def _part_counts(batch: pd.DataFrame, cuts: Tuple[int, int], seed: int) -> pd.DataFrame:
    b = row_buckets(batch, seed)
    t, v = cuts
    return pd.DataFrame({"test": [int((b < t).sum())], "valid": [int(((b >= t) & (b < v)).sum())],
                         "train": [int((b >= v).sum())]})


def split_counts(ds, splits: Splits, seed: int) -> Dict[str, int]:
    """Exact rows of each part, in one streaming pass over ``ds`` (the table the splits came from)."""
    per_batch = ds.map_batches(_part_counts, fn_kwargs={"cuts": splits.cuts, "seed": seed},
                               batch_format="pandas", num_cpus=DATA_TASK_CPUS).to_pandas()
    return {k: int(per_batch[k].sum()) for k in ("train", "valid", "test")}


def _sample_rows(batch: pd.DataFrame, shares: Optional[Dict[Any, float]], share: float, target: Optional[str],
                 seed: int) -> pd.DataFrame:
    u = row_buckets(batch, seed, "sample") / BUCKETS
    if shares is None or target is None:
        return batch[u < share]
    keep = batch[target].map(shares).fillna(share).to_numpy(dtype=float)
    return batch[u < keep]


def class_shares(counts: Dict[Any, int], n_rows: int) -> Dict[Any, float]:
    """Per class, the share of its rows that a stratified sample of ``n_rows`` keeps: the same for
    every class, but at least MIN_CLASS_ROWS rows of each (all rows of a rarer class)."""
    total = max(1, sum(counts.values()))
    base = min(1.0, n_rows / total)
    return {c: min(1.0, max(base, MIN_CLASS_ROWS / max(1, n))) for c, n in counts.items()}


def sample_frame(ds, n_rows: int, n_total: int, seed: int, target: Optional[str] = None,
                 counts: Optional[Dict[Any, int]] = None) -> pd.DataFrame:
    """About ``n_rows`` rows of ``ds`` as one pandas frame (stratified by ``target`` when its class
    ``counts`` are given); only the sample reaches this process."""
    share = min(1.0, n_rows / max(1, n_total))
    shares = class_shares(counts, n_rows) if counts else None
    sampled = ds.map_batches(_sample_rows, batch_format="pandas", num_cpus=DATA_TASK_CPUS,
                             fn_kwargs={"shares": shares, "share": share, "target": target, "seed": seed})
    return plain_frame(sampled.to_pandas()).reset_index(drop=True)
