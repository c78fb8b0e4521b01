"""Time the monitoring baseline and one check on a large table; print the numbers.

    python benchmarks/monitor_speed.py [--rows 40000] [--suite ../shared/benchmarks]

The table is the credit training set resampled to ``--rows`` rows (numeric columns jittered so
they are not plain copies). Prints the seconds and the peak Python memory (tracemalloc) of
``build_baseline`` and of ``check_batch`` on a same-size batch.
"""
from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from automl.data.types import infer_column_types
from automl.monitor import build_baseline, check_batch

ROOT = Path(__file__).resolve().parents[1]


def resampled(train: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = train.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    for col in df.select_dtypes("number").columns:
        df[col] = df[col] * rng.uniform(0.98, 1.02, len(df))
    return df


def timed(fn, *args):
    tracemalloc.start()
    started = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40000)
    parser.add_argument("--suite", default=str(ROOT.parent / "shared" / "benchmarks"))
    args = parser.parse_args()
    train = pd.read_csv(Path(args.suite) / "credit" / "train.csv")
    X = resampled(train, args.rows, 0).drop(columns=["Status"])
    batch = resampled(train, args.rows, 1).drop(columns=["Status"])
    types, t_types, _ = timed(infer_column_types, X)
    (stats, cons), t_base, m_base = timed(build_baseline, X, types)
    result, t_check, m_check = timed(check_batch, batch, stats, cons)
    size = X.memory_usage(deep=True).sum()
    print(f"rows={args.rows} features={len(cons['features'])} table={size / 2**20:.1f} MiB")
    print(f"infer_column_types: {t_types:.2f} s (done by the fit anyway)")
    print(f"build_baseline:     {t_base:.2f} s, peak {m_base / 2**20:.1f} MiB")
    print(f"check_batch:        {t_check:.2f} s, peak {m_check / 2**20:.1f} MiB, "
          f"{len(result.violations)} violation(s)")


if __name__ == "__main__":
    main()
