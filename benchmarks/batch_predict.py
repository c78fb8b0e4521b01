"""Batch transform throughput and memory of `automl predict` on a large CSV; prints the numbers.

    python benchmarks/batch_predict.py [--rows 1000000] [--fit-rows 5000] [--workdir DIR]
        [--backend local|ray] [--chunk-rows 100000] [--repeats 1]

Writes a CSV of ``--rows`` rows x 20 feature columns (16 numeric, 4 categorical; written in
chunks), fits a small model on a labelled slice with `automl fit` (xgboost and linear
candidates, a small budget), then runs `automl predict` on the whole file and reports rows/s
and the peak resident memory of the predict process (its ``ru_maxrss``, and the largest sum
over the process and its children sampled every 50 ms). Target: peak RSS <= 2 GiB.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import numpy as np
import pandas as pd
import psutil

BIN = Path(sys.executable).parent
N_NUMERIC, N_CATEGORICAL = 16, 4
DROPPED = ("dpp2-mlp", "dpp3-random_forest", "dpp4-extra_trees", "dpp5-svm", "dpp6-knn")  # keep xgboost, linear


def automl_cmd() -> List[str]:
    exe = BIN / "automl"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "automl"]


def make_chunk(rng: np.random.Generator, n: int, start: int) -> pd.DataFrame:
    cols = {f"num_{i:02d}": rng.normal(size=n).round(5) for i in range(N_NUMERIC)}
    for i in range(N_CATEGORICAL):
        cols[f"cat_{i}"] = rng.choice(["alpha", "beta", "gamma", "delta", "eps"], size=n)
    df = pd.DataFrame(cols)
    df.index = pd.RangeIndex(start, start + n)
    return df


def label(df: pd.DataFrame) -> np.ndarray:
    score = df["num_00"] * 1.5 - df["num_01"] + 0.5 * df["num_02"] ** 2 + (df["cat_0"] == "alpha") * 1.2
    return np.where(score > 0.3, "yes", "no")


def write_big_csv(path: Path, rows: int, seed: int = 0, chunk: int = 100_000) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        for start in range(0, rows, chunk):
            df = make_chunk(rng, min(chunk, rows - start), start)
            fh.write(df.to_csv(index=False, header=start == 0))


def measure(cmd: List[str]) -> dict:
    """Run ``cmd``; wall seconds, ru_maxrss of the child, and sampled peak RSS of its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak_tree = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak_tree = max(peak_tree, rss)
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - started
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"automl predict failed ({proc.returncode}): {err.strip()[-2000:]}")
    maxrss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall_s": wall, "ru_maxrss_mib": max(maxrss_kib, before) / 1024, "peak_tree_rss_mib": peak_tree / 2**20,
            "stdout": out.strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--fit-rows", type=int, default=5000)
    ap.add_argument("--fit-budget-s", type=int, default=60)
    ap.add_argument("--workdir")
    ap.add_argument("--backend", default="local", choices=["local", "ray"])
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="batch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    big = work / f"batch-{args.rows}.csv"
    if not big.exists():
        t = time.perf_counter()
        write_big_csv(big, args.rows)
        print(f"wrote {big} ({big.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f} s", flush=True)
    run_dir = work / "run"
    if not (run_dir / "summary.json").exists():
        train = make_chunk(np.random.default_rng(1), args.fit_rows, 0)
        train["y"] = label(train)
        train.to_csv(work / "train.csv", index=False)
        print(f"fitting on {args.fit_rows} labelled rows (budget.time_limit_s={args.fit_budget_s}) ...", flush=True)
        drops = [f"~candidates.{c}" for c in DROPPED]
        subprocess.run(automl_cmd() + ["fit", f"data.path={work / 'train.csv'}", "data.target=y",
                                       f"output_dir={run_dir}", f"budget.time_limit_s={args.fit_budget_s}"] + drops,
                       check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((run_dir / "summary.json").read_text())
    results = []
    for r in range(args.repeats):
        out = work / f"pred-{r}.csv"
        res = measure(automl_cmd() + ["predict", f"run_dir={run_dir}", f"input={big}", f"output={out}",
                                      f"predict.backend={args.backend}", f"predict.chunk_rows={args.chunk_rows}"])
        n = sum(1 for _ in open(out)) - 1
        if n != args.rows:
            raise SystemExit(f"expected {args.rows} predictions, got {n}")
        res["rows_per_s"] = args.rows / res["wall_s"]
        results.append(res)
        print(f"repeat {r + 1}: {res['rows_per_s']:.0f} rows/s ({res['wall_s']:.1f} s), peak RSS "
              f"{res['ru_maxrss_mib']:.0f} MiB (process), {res['peak_tree_rss_mib']:.0f} MiB (process tree)", flush=True)
    print(json.dumps({
        "rows": args.rows, "columns": N_NUMERIC + N_CATEGORICAL, "file_mib": round(big.stat().st_size / 2**20),
        "model": summary["best"]["candidate"], "backend": args.backend, "chunk_rows": args.chunk_rows,
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "repeats": args.repeats,
        "rows_per_s_median": round(statistics.median(r["rows_per_s"] for r in results)),
        "wall_s_median": round(statistics.median(r["wall_s"] for r in results), 1),
        "peak_rss_mib_max": round(max(r["ru_maxrss_mib"] for r in results)),
        "peak_tree_rss_mib_max": round(max(r["peak_tree_rss_mib"] for r in results)),
    }))


if __name__ == "__main__":
    main()
