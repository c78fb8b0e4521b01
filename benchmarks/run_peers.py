"""Run FLAML and/or AutoGluon on the suite's splits with the same budget, when installed.

    python benchmarks/run_peers.py [--datasets credit,wage] [--budget 60] [--systems flaml,ag,ag_best]

Prints one JSON line per run in the format of ../shared/benchmarks/peers_60.jsonl, so the
figures there can be reproduced on this machine and compared with benchmarks/run_suite.py.
Neither library is a dependency of automl: a system that is not installed is reported as such.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_suite import DEFAULT_SUITE  # noqa: E402


def _score(metric, y_true, labels, proba_pos):
    from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

    if metric == "rmse":
        return float(mean_squared_error(y_true, labels) ** 0.5)
    if metric == "accuracy":
        return float(accuracy_score(y_true.astype(str), pd.Series(labels).astype(str)))
    return float(roc_auc_score(y_true, proba_pos))


def run_flaml(train, test, target, problem, metric, budget):
    from flaml import AutoML

    m = AutoML()
    flaml_metric = {"auc": "roc_auc", "accuracy": "accuracy", "rmse": "rmse"}[metric]
    task = "regression" if problem == "regression" else "classification"
    m.fit(train.drop(columns=[target]), train[target], task=task, metric=flaml_metric, time_budget=budget, verbose=0)
    X = test.drop(columns=[target])
    pos = m.predict_proba(X)[:, 1] if metric == "auc" else None
    y = test[target]
    if metric == "auc":
        y = (y == m.classes_[1]).astype(int)
    return _score(metric, y, m.predict(X), pos)


def run_autogluon(train, test, target, problem, metric, budget, best):
    from autogluon.tabular import TabularPredictor

    ag_metric = {"auc": "roc_auc", "accuracy": "accuracy", "rmse": "root_mean_squared_error"}[metric]
    p = TabularPredictor(label=target, eval_metric=ag_metric, path=tempfile.mkdtemp(), verbosity=0)
    p.fit(train, time_limit=budget, presets="best_quality" if best else None)
    X = test.drop(columns=[target])
    y = test[target]
    pos = None
    if metric == "auc":
        proba = p.predict_proba(X)
        pos_label = p.class_labels[1]
        pos, y = proba[pos_label], (y == pos_label).astype(int)
    return _score(metric, y, p.predict(X), pos)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(DEFAULT_SUITE))
    ap.add_argument("--datasets", default="")
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("--systems", default="flaml,ag,ag_best")
    args = ap.parse_args()
    suite_dir = Path(args.suite)
    suite = yaml.safe_load((suite_dir / "suite.yaml").read_text())
    for name in (args.datasets.split(",") if args.datasets else suite):
        spec = suite[name]
        train = pd.read_csv(suite_dir / name / "train.csv").drop(columns=spec.get("drop", []))
        test = pd.read_csv(suite_dir / name / "test.csv").drop(columns=spec.get("drop", []))
        for system in args.systems.split(","):
            rec = {"system": system, "dataset": name, "metric": spec["metric"], "score": None,
                   "budget_s": args.budget, "wall_s": None, "error": None}
            t = time.time()
            try:
                if system == "flaml":
                    rec["score"] = run_flaml(train, test, spec["target"], spec["problem"], spec["metric"], args.budget)
                else:
                    rec["score"] = run_autogluon(train, test, spec["target"], spec["problem"], spec["metric"],
                                                 args.budget, best=system == "ag_best")
            except ImportError as exc:
                rec["error"] = f"not installed: {exc.name}"
            except Exception as exc:  # report and go on with the next system
                rec["error"] = f"{type(exc).__name__}: {exc}"[:300]
            rec["wall_s"] = round(time.time() - t, 1)
            print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
