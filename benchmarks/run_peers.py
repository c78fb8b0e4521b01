"""Run FLAML, AutoGluon and AutoGluon best_quality on the suite's splits, seeds and budgets.

    bash benchmarks/peers_setup.sh                  # once: the peers' own venv, /work/peers-venv
    python benchmarks/run_peers.py [--group core|broad|all | --datasets credit,wage]
                                   [--seeds 0] [--budgets 30,60,300] [--systems flaml,ag,ag_best]
                                   [--out FILE] [--skip-done] [--python /work/peers-venv/bin/python]

Neither library is a dependency of automl: they live in their own virtual environment (see
benchmarks/peers_setup.sh). This script runs under any Python with pandas, PyYAML and psutil (the
project's venv or the peers' venv); each (system, dataset, seed, budget) runs as a separate
process of --python (default: /work/peers-venv/bin/python when it exists), so its wall time
counts from process start, as automl's does, its peak RSS is that of its process tree, and a
run that does not stop is killed after --kill-after x budget + 120 s and recorded as an error.

One JSON line per run, in the format of ../shared/benchmarks/peers_60.jsonl (system, dataset,
metric, score, budget_s, wall_s, error) plus seed, peak_rss_gib, best_model, versions, date,
cores and host. Seed 0 is each library's own default; other seeds go to FLAML's `seed` and to
AutoGluon's split (`learner_kwargs.random_state`) and model seeds (`model_random_seed`).
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    DEFAULT_SUITE,
    SCRATCH,
    append_jsonl,
    done_keys,
    last_error_line,
    load_suite,
    machine,
    parse_list,
    run_tree_peak_rss,
    score,
    select,
)

log = logging.getLogger("run_peers")
PEERS_VENV_PYTHON = Path("/work/peers-venv/bin/python")
SYSTEMS = ("flaml", "ag", "ag_best")


# ---------------------------------------------------------------- one run (child process)

def load_split(spec: Dict[str, Any], data: Path):
    import pandas as pd

    train, test = pd.read_csv(data / "train.csv"), pd.read_csv(data / "test.csv")
    drop = [c for c in spec.get("drop") or [] if c in train.columns]  # some splits already lack them
    return train.drop(columns=drop), test.drop(columns=drop, errors="ignore")


def run_flaml(train, test, spec: Dict[str, Any], budget: float, seed: int) -> Dict[str, Any]:
    import flaml
    import pandas as pd
    from flaml import AutoML

    target, metric = spec["target"], spec["metric"]
    m = AutoML()
    flaml_metric = {"auc": "roc_auc", "accuracy": "accuracy", "rmse": "rmse", "mae": "mae", "r2": "r2",
                    "logloss": "log_loss", "f1": "f1", "mse": "mse"}[metric]
    task = "regression" if spec["problem"] == "regression" else "classification"
    m.fit(train.drop(columns=[target]), train[target], task=task, metric=flaml_metric, time_budget=budget,
          verbose=0, **({"seed": seed} if seed else {}))
    X = test.drop(columns=[target])
    proba = None
    if task == "classification":
        proba = pd.DataFrame(m.predict_proba(X), columns=[str(c) for c in m.classes_])
    return {"score": score(metric, test[target], m.predict(X), proba), "best_model": m.best_estimator,
            "versions": {"flaml": flaml.__version__}}


def run_autogluon(train, test, spec: Dict[str, Any], budget: float, seed: int, best: bool,
                  work: str) -> Dict[str, Any]:
    import autogluon.tabular
    from autogluon.tabular import TabularPredictor

    target, metric = spec["target"], spec["metric"]
    ag_metric = {"auc": "roc_auc", "accuracy": "accuracy", "rmse": "root_mean_squared_error",
                 "mae": "mean_absolute_error", "r2": "r2", "logloss": "log_loss", "f1": "f1",
                 "mse": "mean_squared_error", "balanced_accuracy": "balanced_accuracy",
                 "f1_macro": "f1_macro"}[metric]
    seeded = {"learner_kwargs": {"random_state": seed}} if seed else {}
    p = TabularPredictor(label=target, problem_type=spec["problem"], eval_metric=ag_metric,
                         path=str(Path(work) / "ag"), verbosity=0, **seeded)
    p.fit(train, time_limit=budget, presets="best_quality" if best else None,
          **({"ag_args_ensemble": {"model_random_seed": seed}} if seed else {}))
    X = test.drop(columns=[target])
    proba = None
    if spec["problem"] != "regression":
        proba = p.predict_proba(X)
        proba.columns = [str(c) for c in proba.columns]
    return {"score": score(metric, test[target], p.predict(X), proba, p.positive_class if metric in ("auc", "f1")
                           and spec["problem"] == "binary" else None),
            "best_model": p.model_best, "versions": {"autogluon": autogluon.tabular.__version__}}


def child(job: Dict[str, Any]) -> int:
    """Run one job (the JSON given to --child) and write its result JSON to job['result']."""
    spec = job["spec"]
    train, test = load_split(spec, Path(job["data"]))
    if job["system"] == "flaml":
        res = run_flaml(train, test, spec, job["budget"], job["seed"])
    else:
        res = run_autogluon(train, test, spec, job["budget"], job["seed"], job["system"] == "ag_best", job["work"])
    Path(job["result"]).write_text(json.dumps(res))
    return 0


# ---------------------------------------------------------------- the driver

def run_one(python: str, suite_dir: Path, name: str, spec: Dict[str, Any], system: str, budget: float, seed: int,
            kill_after: float, workdir: Path) -> Dict[str, Any]:
    """One peer run as its own process; the record never raises."""
    workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{system}-{name}-s{seed}-b{budget}-", dir=workdir))
    job = {"system": system, "data": str(suite_dir / name), "spec": spec, "budget": budget, "seed": seed,
           "work": str(work), "result": str(work / "result.json")}
    cmd = [python, str(Path(__file__).resolve()), "--child", json.dumps(job)]
    rc, wall, peak, tail = run_tree_peak_rss(cmd, log_path=work / "peer.log", timeout_s=kill_after * budget + 120,
                                             cwd=work)
    rec = {"system": system, "dataset": name, "group": spec["group"], "metric": spec["metric"], "score": None,
           "budget_s": budget, "wall_s": round(wall, 1), "error": None, "seed": seed,
           "peak_rss_gib": round(peak, 2), "best_model": None, "versions": None, **machine()}
    result = work / "result.json"
    if rc == 0 and result.exists():
        rec.update(json.loads(result.read_text()))
        shutil.rmtree(work, ignore_errors=True)  # AutoGluon's models; a failed run keeps peer.log
    elif rc in (-9, 137):
        rec["error"] = f"killed after {wall:.0f} s on a {budget} s budget (did not stop)"
    else:
        rec["error"] = ("not installed: " if "ModuleNotFoundError" in tail else "") + last_error_line(tail, rc)
    return rec


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(DEFAULT_SUITE))
    ap.add_argument("--datasets", default="", help="comma-separated names (overrides --group)")
    ap.add_argument("--group", default="all", help="core | broad | all")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--budgets", default="60")
    ap.add_argument("--budget", default=None, help="one budget (old spelling of --budgets)")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--out", default=str(SCRATCH / "peers.jsonl"))
    ap.add_argument("--workdir", default=str(SCRATCH / "peers"), help="scratch; a failed run keeps peer.log here")
    ap.add_argument("--skip-done", action="store_true", help="skip runs already scored in --out")
    ap.add_argument("--python", default=str(PEERS_VENV_PYTHON) if PEERS_VENV_PYTHON.exists() else sys.executable,
                    help="the interpreter that has FLAML and AutoGluon")
    ap.add_argument("--kill-after", type=float, default=3.0, help="kill a run after this x budget + 120 s")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.budget is not None:
        args.budgets = args.budget
    unknown = set(args.systems.split(",")) - set(SYSTEMS)
    if unknown:
        ap.error(f"unknown system(s) {', '.join(sorted(unknown))}; valid: {', '.join(SYSTEMS)}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    suite_dir = Path(args.suite).resolve()  # the child runs in its scratch folder
    suite = load_suite(suite_dir)
    names = select(suite, args.datasets, args.group)
    skip = done_keys(Path(args.out)) if args.skip_done else set()
    for budget in parse_list(args.budgets):
        for seed in parse_list(args.seeds, int):
            for name in names:
                for system in args.systems.split(","):
                    if (system, name, seed, float(budget)) in skip:
                        log.info("skip %s on %s seed %s budget %s: already in %s", system, name, seed, budget, args.out)
                        continue
                    rec = run_one(args.python, suite_dir, name, suite[name], system, budget, seed, args.kill_after,
                                  Path(args.workdir).resolve())
                    append_jsonl(Path(args.out), rec)
                    print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
