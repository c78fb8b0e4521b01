"""Wall time of an `automl fit -m` sweep in turn and with sweep.parallel=N; prints the numbers.

    python benchmarks/sweep_parallel.py [--points 4] [--parallel 2] [--budget-s 10] [--workdir DIR]

Runs the same sweep of ``--points`` seeds (a 300-row binary table, the linear and xgboost
candidates, ``search.executor=local``, ``--budget-s`` seconds each) twice with the real CLI:
``sweep.parallel=1`` (one point after another, in one process) and ``sweep.parallel=N`` (N
``automl fit`` processes at a time, each with its share of the cores); prints each sweep's wall
time, the speed-up and the scores of both summary tables. The speed-up is bounded by the cores:
N processes share them (each gets ``ray.num_cpus`` = cores / N).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

BIN = Path(sys.executable).parent
DROPPED = ("dpp2-mlp", "dpp3-random_forest", "dpp4-extra_trees", "dpp5-svm", "dpp6-knn")  # keep xgboost, linear


def make_table(path: Path, n: int = 300, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = np.where(x[:, 0] - 0.5 * x[:, 1] + rng.normal(scale=0.5, size=n) > 0, "yes", "no")
    pd.DataFrame(x, columns=[f"x{i}" for i in range(6)]).assign(y=y).to_csv(path, index=False)


def sweep(data: Path, out: Path, points: int, parallel: int, budget_s: float) -> tuple[float, pd.DataFrame]:
    exe = BIN / "automl"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "automl"]
    args = ["fit", "-m", f"data.path={data}", "data.target=y", f"seed={','.join(str(s) for s in range(points))}",
            f"sweep.parallel={parallel}", f"output_dir={out}", "search.executor=local",
            f"budget.time_limit_s={budget_s}", *[f"~candidates.{name}" for name in DROPPED]]
    started = time.perf_counter()
    done = subprocess.run(cmd + args, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"sweep failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, pd.read_csv(out / "sweep_summary.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=10.0)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="sweep-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "table.csv"
    make_table(data)
    print(f"{args.points} points, {args.budget_s:g} s budget each, {os.cpu_count()} cores; work folder {work}")
    t1, s1 = sweep(data, work / "in_turn", args.points, 1, args.budget_s)
    tn, sn = sweep(data, work / "parallel", args.points, args.parallel, args.budget_s)
    print(f"sweep.parallel=1: {t1:7.1f} s   (sum of the points' wall times {s1['wall_s'].sum():.1f} s)")
    print(f"sweep.parallel={args.parallel}: {tn:7.1f} s   (sum of the points' wall times {sn['wall_s'].sum():.1f} s)")
    print(f"speed-up: {t1 / tn:.2f}x")
    print(pd.DataFrame({"seed": range(args.points), "score in turn": s1["score"].round(4),
                        f"score parallel={args.parallel}": sn["score"].round(4)}).to_string(index=False))


if __name__ == "__main__":
    main()
