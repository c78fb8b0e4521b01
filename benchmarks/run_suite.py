"""Run automl on the shared benchmark suite and compare with the peers' figures.

    python benchmarks/run_suite.py [--datasets digits,credit] [--budget 60] [--suite ../shared/benchmarks]
                                   [--peers] [--out benchmarks/results/suite.jsonl]

For each dataset: `automl fit` on train.csv with budget.time_limit_s=BUDGET as a separate
process (so Ray start-up counts), `automl predict` on test.csv, score with the dataset's
metric, record wall time and peak memory (RSS of the whole process tree), and print a table
beside the best of FLAML / AutoGluon / AutoGluon best_quality from peers_60.jsonl.
`--peers` also runs FLAML and AutoGluon on the same split and budget when they are installed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SUITE = ROOT.parent / "shared" / "benchmarks"
TOL = {"auc": ("abs", 0.002), "accuracy": ("abs", 0.002), "rmse": ("rel", 0.01)}
BAD = {"auc": ("abs", 0.01), "accuracy": ("abs", 0.01), "rmse": ("rel", 0.05)}


def score(metric: str, y_true: pd.Series, pred: pd.DataFrame, positive=None) -> float:
    from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

    if metric == "rmse":
        return float(np.sqrt(mean_squared_error(y_true.astype(float), pred["predicted_label"].astype(float))))
    if metric == "accuracy":
        return float(accuracy_score(y_true.astype(str), pred["predicted_label"].astype(str)))
    cols = [c for c in pred.columns if c.startswith("proba_")]
    classes = [c[len("proba_"):] for c in cols]
    pos = positive if positive is not None and str(positive) in classes else classes[1]
    return float(roc_auc_score((y_true.astype(str) == str(pos)).astype(int), pred[f"proba_{pos}"]))


def run_tree_peak_rss(cmd, env=None, log_path=None) -> tuple[int, float, float, str]:
    """Run a command; return (exit code, wall s, peak RSS GiB of its process tree, stderr tail).
    ``log_path``: also keep the whole stderr there (the fit's log, for reading afterwards)."""
    start = time.time()
    with (open(log_path, "w+") if log_path else tempfile.TemporaryFile("w+")) as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        ps = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                procs = [ps] + ps.children(recursive=True)
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.25)
        err.seek(0)
        tail = err.read()[-1500:]
    return proc.returncode, time.time() - start, peak / 2**30, tail


def better(metric: str, a: float, b: float) -> bool:
    return a < b if metric == "rmse" else a > b


def within(metric: str, ours: float, ref: float, table) -> bool:
    kind, tol = table[metric]
    if metric == "rmse":
        return ours <= ref * (1 + tol) if kind == "rel" else ours <= ref + tol
    return ours >= ref - tol


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(DEFAULT_SUITE))
    ap.add_argument("--datasets", default="")
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "suite.jsonl"))
    ap.add_argument("--extra", default="", help="extra `automl fit` overrides, space-separated")
    ap.add_argument("--peers", action="store_true", help="also run FLAML/AutoGluon if installed")
    args = ap.parse_args()
    suite_dir = Path(args.suite)
    suite = yaml.safe_load((suite_dir / "suite.yaml").read_text())
    names = [n for n in (args.datasets.split(",") if args.datasets else suite)]
    peers = {}
    peers_file = suite_dir / "peers_60.jsonl"
    if peers_file.exists():
        for line in peers_file.read_text().splitlines():
            r = json.loads(line)
            if r.get("score") is not None:
                peers.setdefault(r["dataset"], {})[r["system"]] = r["score"]
    exe = str(Path(sys.executable).parent / "automl")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        spec = suite[name]
        d = suite_dir / name
        out = tempfile.mkdtemp(prefix=f"automl-bench-{name}-")
        fit = [exe, "fit", f"data.path={d / 'train.csv'}", f"data.target={spec['target']}",
               f"problem_type={spec['problem']}", f"budget.time_limit_s={args.budget}", f"output_dir={out}/run"]
        if spec.get("drop"):
            fit.append(f"data.drop=[{','.join(spec['drop'])}]")
        fit += [a for a in args.extra.split() if a]
        metric = spec["metric"]
        if spec["problem"] != "regression" or metric != "rmse":
            fit.append(f"metric={metric}")
        else:
            fit.append("metric=rmse")
        rc, wall, peak, tail = run_tree_peak_rss(fit, log_path=f"{out}/fit.log")
        rec = {"dataset": name, "metric": metric, "budget_s": args.budget, "wall_s": round(wall, 1),
               "peak_rss_gib": round(peak, 2), "score": None, "error": None}
        if rc != 0:
            rec["error"] = tail.strip().splitlines()[-1] if tail.strip() else f"exit {rc}"
        else:
            test = pd.read_csv(d / "test.csv")
            pred_path = f"{out}/pred.csv"
            subprocess.run([exe, "predict", f"run_dir={out}/run", f"input={d / 'test.csv'}", f"output={pred_path}"],
                           check=True, capture_output=True)
            summary = json.loads(Path(f"{out}/run/summary.json").read_text())
            rec["score"] = score(metric, test[spec["target"]], pd.read_csv(pred_path), summary.get("positive_class"))
            rec["best_candidate"] = (summary.get("best") or {}).get("candidate")
            rec["n_trials"] = summary.get("n_trials_completed")
        ref = peers.get(name, {})
        if ref and rec["score"] is not None:
            best_peer = min(ref.values()) if metric == "rmse" else max(ref.values())
            rec["best_peer"] = best_peer
            strict = all(better(metric, rec["score"], v) for v in ref.values())
            rec["result"] = "win" if strict else "tie" if within(metric, rec["score"], best_peer, TOL) else (
                "loss" if within(metric, rec["score"], best_peer, BAD) else "BAD loss")
        rows.append(rec)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)
    print()
    print(f"{'dataset':10} {'metric':8} {'automl':>10} {'best peer':>10} {'result':>8} {'wall/budget':>12} {'peak GiB':>8}")
    for r in rows:
        s = "-" if r["score"] is None else f"{r['score']:.4f}"
        bp = "-" if r.get("best_peer") is None else f"{r['best_peer']:.4f}"
        print(f"{r['dataset']:10} {r['metric']:8} {s:>10} {bp:>10} {r.get('result', r.get('error') or '-')[:8]:>8} "
              f"{r['wall_s'] / r['budget_s']:>12.2f} {r['peak_rss_gib']:>8.2f}")
    wins = sum(r.get("result") in ("win", "tie") for r in rows)
    strict = sum(r.get("result") == "win" for r in rows)
    print(f"\nat least the best peer (within tolerance): {wins}/{len(rows)}; strictly better than all: {strict}")
    if args.peers:
        print("\npeer runs on this machine (benchmarks/run_peers.py):", flush=True)
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_peers.py"), "--suite", str(suite_dir),
                        "--datasets", ",".join(names), "--budget", str(args.budget)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
