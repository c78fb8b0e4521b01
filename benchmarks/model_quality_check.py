"""Speed of the model-quality check (automl/monitor/quality.py); prints the numbers.

    python benchmarks/model_quality_check.py [--rows 112,1000,10000,100000] [--batches 200] [--resamples 1000]

For each row count, synthetic binary predictions (labels, probabilities) are joined with labels and
checked against the five default constraints (f1, accuracy, auc, balanced_accuracy, logloss) plus
the two reported metrics, with ``--resamples`` bootstrap resamples each: seconds per check (the
median of ``--batches`` checks, fewer for the large sizes), and the total for ``--batches`` checks
of the smallest size (the acceptance test's 200 fair batches).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from automl.monitor.groundtruth import Joined
from automl.monitor.quality import check_quality, quality_constraints


def batch(n: int, rng: np.random.Generator) -> Joined:
    y = rng.integers(0, 2, n)
    p_yes = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(scale=0.25, size=n), 0.01, 0.99)
    pred = np.where(p_yes >= 0.5, "yes", "no")
    preds = [{"predicted_label": lab, "probability": float(p if lab == "yes" else 1 - p)} for lab, p in zip(pred, p_yes)]
    labels = np.where(y == 1, "yes", "no").tolist()
    return Joined(labels, preds, [""] * n, [""] * n, n, n, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="112,1000,10000,100000")
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    oof = {"f1": 0.85, "accuracy": 0.85, "auc": 0.92, "balanced_accuracy": 0.85, "logloss": 0.35}
    cons = {"model_quality": quality_constraints("binary", oof),
            "monitoring": {"model_quality_check": {"n_bootstrap": args.resamples}}}
    rng = np.random.default_rng(0)
    sizes = [int(s) for s in args.rows.split(",")]
    print(f"model-quality check, binary, {args.resamples} bootstrap resamples, 7 metrics")
    for n in sizes:
        repeats = args.batches if n <= 1000 else max(3, args.batches // 50)
        batches = [batch(n, rng) for _ in range(repeats)]
        times = []
        for b in batches:
            t = time.perf_counter()
            check_quality(b, cons, "binary", ["no", "yes"], 1)
            times.append(time.perf_counter() - t)
        total = f"; {repeats} checks: {sum(times):.2f} s" if n == sizes[0] else ""
        print(f"  {n:>7} joined rows: {statistics.median(times) * 1000:8.1f} ms per check (median of {repeats}){total}")


if __name__ == "__main__":
    main()
