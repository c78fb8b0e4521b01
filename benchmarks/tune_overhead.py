"""Ray Tune overhead: the same N cheap configurations through automl's Tune path and a plain loop.

    python benchmarks/tune_overhead.py [--n 40] [--repeats 3]

The Tune path is the production one (`automl.search.tuner.run_search`: reuse_actors, data
through the object store via tune.with_parameters, one report per trial, 1 CPU per trial).
The loop calls the same trial function (`automl.search.trial.evaluate`) sequentially on the
exact configurations Tune ran. Ray start-up is paid once per process and reported apart.
Prints the median wall-clock ratio tune/loop over the repeats (<= 1.0: Tune is no slower).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="configurations per run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from automl.candidates.generate import Candidate
    from automl.candidates.space import load_space
    from automl.search.trial import TrialContext, evaluate, make_folds
    from automl.search.tuner import init_ray, run_search

    frame = load_digits(as_frame=True).frame
    X = frame.drop(columns=["target"])
    y = frame["target"].to_numpy()
    types = {c: "numeric" for c in X.columns}
    cand = Candidate("dpp1-linear", "linear", {"scale": "standard", "categorical": "onehot",
                                               "numeric_impute": "median", "missing_indicator": False},
                     load_space("linear"))
    ctx = TrialContext(X=X, y=y, folds=make_folds(y, "multiclass", 3, 50_000, 0.2, 0), column_types=types,
                       candidates={cand.name: cand}, problem_type="multiclass", metric="accuracy",
                       n_classes=10, seed=0, trial_time_limit_s=600)
    t = time.time()
    cpus = init_ray(None, None)
    print(f"ray start-up: {time.time() - t:.1f} s (paid once per process; {cpus} CPUs)")
    ratios = []
    for r in range(args.repeats):
        t = time.time()
        ctx.seed = r  # a different random sample of configurations per repeat
        rows = run_search(ctx, [cand], greater_is_better=True, max_trials=args.n, time_budget_s=3600,
                          searcher="random", warm_start=False, storage_path=tempfile.mkdtemp(prefix="tune-overhead-"))
        tune_s = time.time() - t
        configs = [row["config"] for row in rows if row.get("config")]
        t = time.time()
        for c in configs:
            evaluate(c, ctx)
        loop_s = time.time() - t
        ratios.append(tune_s / loop_s)
        print(f"repeat {r + 1}: {len(configs)} configs | tune {tune_s:.2f} s | loop {loop_s:.2f} s | "
              f"ratio {tune_s / loop_s:.2f} | per config: loop {1000 * loop_s / len(configs):.0f} ms")
    print(f"median ratio tune/loop over {args.repeats} repeats: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
