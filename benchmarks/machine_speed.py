"""How fast this machine is today, against another day: run it before comparing figures across sessions.

    python benchmarks/machine_speed.py probe [--repeats 5] [--out benchmarks/results/machine_speed.jsonl]
    python benchmarks/machine_speed.py runs --old '/tmp/automl-side-runs/*-b60-20261201-1[45]*' \\
                                            --new '/tmp/automl-side-runs/*-b60-20261202-04*'

``probe`` fits the same models on the same rows (a suite dataset, fixed seeds, one thread each)
``--repeats`` times and prints the median seconds per model, appending one JSON line with the date
to ``--out``: the same figure on another day says whether the machine changed speed.

``runs`` compares two sets of benchmark run folders (run_suite.py's ``--workdir``) without running
anything: a run's first trials follow the portfolio, so the same dataset and seed fit the same
configurations first; the ratio of their ``fit_s`` (leaderboard.csv) is the change in speed.
On 2026-12-02 04:16-04:52 the first six trials of 28 runs took a median 1.55 x as long as the
same trials on 2026-12-01 14:47-16:06, on the same VM: a fixed budget then buys two thirds of
the trials, so figures from the two days cannot be compared (the issue's rule: peers and automl
in the same session).
"""
from __future__ import annotations

import argparse
import glob
import json
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_SUITE  # noqa: E402

RUN_NAME = re.compile(r"(?P<dataset>.+)-s(?P<seed>\d+)-b(?P<budget>[\d.]+)-\d{8}-\d{6}$")


def probe(repeats: int, out: str) -> int:
    import numpy as np
    import pandas as pd
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = pd.read_csv(Path(DEFAULT_SUITE) / "churn" / "train.csv")
    y = (df.pop("churn") if "churn" in df else df.pop(df.columns[-1])).astype("category").cat.codes.to_numpy()
    X = pd.get_dummies(df, dtype=float).fillna(0.0).to_numpy()
    models = {
        "xgboost": lambda: xgb.XGBClassifier(n_estimators=300, max_depth=6, learning_rate=0.1, n_jobs=1,
                                             random_state=0),
        "random_forest": lambda: RandomForestClassifier(n_estimators=200, n_jobs=1, random_state=0),
        "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    }
    rec = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": int(len(y)), "repeats": repeats}
    for name, make in models.items():
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            make().fit(X, y)
            times.append(time.perf_counter() - t)
        rec[name] = round(statistics.median(times), 3)
        print(f"{name}: median {rec[name]:.3f} s over {repeats} fits (min {min(times):.3f}, max {max(times):.3f})")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(f"appended to {out}")
    return 0


def first_fits(run_dir: str, n: int) -> dict:
    import pandas as pd

    lb = pd.read_csv(Path(run_dir) / "run" / "leaderboard.csv")
    lb = lb[lb["candidate"] != "ensemble"].sort_values("trial_number").head(n)
    return {(c, int(t)): float(s) for c, t, s in zip(lb["candidate"], lb["trial_number"], lb["fit_s"]) if s == s}


def runs(old: str, new: str, n: int) -> int:
    def by_key(pattern):
        out = {}
        for d in sorted(glob.glob(pattern)):
            m = RUN_NAME.match(Path(d).name)
            if m and (Path(d) / "run" / "leaderboard.csv").exists():
                out[(m["dataset"], m["seed"], m["budget"])] = d  # the latest of each
        return out

    olds, news = by_key(old), by_key(new)
    ratios = []
    for key in sorted(set(olds) & set(news)):
        a, b = first_fits(olds[key], n), first_fits(news[key], n)
        r = [b[k] / a[k] for k in a if k in b and a[k] > 0.05]
        if r:
            ratios.append(statistics.median(r))
            print(f"{key[0]} seed {key[1]} {key[2]} s: {ratios[-1]:.2f} x ({len(r)} trials)")
    if not ratios:
        print("no run of the same dataset, seed and budget in both sets")
        return 1
    print(f"median over {len(ratios)} runs: new / old fit time of the same first trials = "
          f"{statistics.median(ratios):.2f} x (range {min(ratios):.2f}-{max(ratios):.2f})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "machine_speed.jsonl"))
    r = sub.add_parser("runs")
    r.add_argument("--old", required=True, help="glob of run folders (run_suite.py --workdir)")
    r.add_argument("--new", required=True)
    r.add_argument("--trials", type=int, default=6, help="the first N trials of each run")
    args = ap.parse_args()
    return probe(args.repeats, args.out) if args.cmd == "probe" else runs(args.old, args.new, args.trials)


if __name__ == "__main__":
    sys.exit(main())
