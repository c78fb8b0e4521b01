"""What the benchmark scripts share: the suite, its metrics and tolerances, scoring, run records.

Imported by run_suite.py (the project's venv), run_peers.py (the peers' venv) and compare.py, so
it needs only numpy, pandas, scikit-learn, PyYAML and psutil, never automl itself.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SUITE = ROOT.parent / "shared" / "benchmarks"
RESULTS = ROOT / "benchmarks" / "results"
SCRATCH = RESULTS / "tmp"  # ignored by git; everything under results/ but tmp/ can be committed
CORE_GROUP = "core"  # the nine datasets listed first in suite.yaml (no `group:` key)


@dataclass(frozen=True)
class MetricRule:
    """How a metric compares: direction, the tie tolerance and the bad-loss margin.

    ``kind`` "abs": the margins are in the metric's units; "rel": a fraction of the reference.
    """
    greater_is_better: bool
    kind: str
    tie: float
    bad: float


# Tolerances of issue 16: 0.002 for auc/accuracy (bad loss 0.01), 1% relative for rmse (bad 5%).
# Other score-like metrics in [0, 1] follow auc; other error metrics follow rmse; mse is rmse
# squared, so its margins are the squares (1.01**2 - 1, 1.05**2 - 1).
METRICS: Dict[str, MetricRule] = {
    "auc": MetricRule(True, "abs", 0.002, 0.01),
    "accuracy": MetricRule(True, "abs", 0.002, 0.01),
    "balanced_accuracy": MetricRule(True, "abs", 0.002, 0.01),
    "f1": MetricRule(True, "abs", 0.002, 0.01),
    "f1_macro": MetricRule(True, "abs", 0.002, 0.01),
    "r2": MetricRule(True, "abs", 0.002, 0.01),
    "rmse": MetricRule(False, "rel", 0.01, 0.05),
    "mae": MetricRule(False, "rel", 0.01, 0.05),
    "mse": MetricRule(False, "rel", 0.0201, 0.1025),
    "logloss": MetricRule(False, "rel", 0.01, 0.05),
}


def rule(metric: str) -> MetricRule:
    """The comparison rule of ``metric``; an unknown name stops with the valid ones."""
    if metric not in METRICS:
        raise SystemExit(f"metric {metric!r} has no comparison rule in benchmarks/common.py; "
                         f"valid: {', '.join(sorted(METRICS))}")
    return METRICS[metric]


def better(metric: str, a: float, b: float) -> bool:
    """True when ``a`` is strictly better than ``b``."""
    return a > b if rule(metric).greater_is_better else a < b


def within(metric: str, ours: float, ref: float, margin: str = "tie") -> bool:
    """True when ``ours`` is at least ``ref`` less the metric's ``margin`` ("tie" or "bad")."""
    r = rule(metric)
    m = r.tie if margin == "tie" else r.bad
    slack = m * abs(ref) if r.kind == "rel" else m
    return ours >= ref - slack if r.greater_is_better else ours <= ref + slack


def best_of(metric: str, values: Iterable[float]) -> float:
    vals = list(values)
    return max(vals) if rule(metric).greater_is_better else min(vals)


# ---------------------------------------------------------------- the suite

def load_suite(suite_dir: Path) -> Dict[str, Dict[str, Any]]:
    """suite.yaml as {name: spec}, each spec with its ``group`` filled in (``core`` when absent)."""
    suite = yaml.safe_load((Path(suite_dir) / "suite.yaml").read_text())
    for spec in suite.values():
        spec.setdefault("group", CORE_GROUP)
        rule(spec["metric"])
    return suite


def select(suite: Dict[str, Dict[str, Any]], datasets: str = "", group: str = "") -> List[str]:
    """Dataset names in suite order: ``datasets`` (comma-separated) or a ``group`` ("all": every one)."""
    if datasets:
        names = [n.strip() for n in datasets.split(",") if n.strip()]
        unknown = [n for n in names if n not in suite]
        if unknown:
            raise SystemExit(f"unknown dataset(s) {', '.join(unknown)}; the suite has: {', '.join(suite)}")
        return names
    if not group or group == "all":
        return list(suite)
    names = [n for n, s in suite.items() if s["group"] == group]
    if not names:
        groups = sorted({s["group"] for s in suite.values()} | {"all"})
        raise SystemExit(f"group {group!r} has no dataset; valid groups: {', '.join(groups)}")
    return names


def parse_list(text: str, cast=float) -> list:
    """'0,1,2' -> [0, 1, 2]; budgets keep integers integral (60, not 60.0)."""
    out = []
    for part in str(text).split(","):
        if part.strip():
            v = cast(part)
            out.append(int(v) if isinstance(v, float) and v.is_integer() else v)
    return out


# ---------------------------------------------------------------- scoring

def probas(pred):
    """The proba_* columns of an `automl predict` output frame, named by class (``score``'s form)."""
    cols = [c for c in pred.columns if c.startswith("proba_")]
    out = pred[cols]
    out.columns = [c[len("proba_"):] for c in cols]
    return out


def score(metric: str, y_true, labels, proba=None, positive=None) -> float:
    """The test score of one run.

    ``labels``: predicted labels; ``proba``: a DataFrame of class probabilities whose column names
    are the classes as text (needed for auc and logloss); ``positive``: the positive class for auc
    (default: the second class, as the peers order them).
    """
    import numpy as np
    import pandas as pd
    from sklearn import metrics as skm

    rule(metric)
    if metric in ("rmse", "mse", "mae", "r2"):
        y, p = pd.Series(y_true).astype(float).to_numpy(), pd.Series(labels).astype(float).to_numpy()
        mse = skm.mean_squared_error(y, p)
        return float({"rmse": np.sqrt(mse), "mse": mse, "mae": skm.mean_absolute_error(y, p),
                      "r2": skm.r2_score(y, p)}[metric])
    y = pd.Series(y_true).astype(str).to_numpy()
    if metric in ("auc", "logloss"):
        cols = [str(c) for c in proba.columns]
        if metric == "logloss":
            return float(skm.log_loss(y, proba.to_numpy(), labels=cols))
        pos = str(positive) if positive is not None and str(positive) in cols else cols[1]
        return float(skm.roc_auc_score((y == pos).astype(int), proba.to_numpy()[:, cols.index(pos)]))
    lab = pd.Series(labels).astype(str).to_numpy()
    fn = {"accuracy": skm.accuracy_score, "balanced_accuracy": skm.balanced_accuracy_score,
          "f1_macro": lambda a, b: skm.f1_score(a, b, average="macro")}
    if metric == "f1":
        return float(skm.f1_score((y == str(positive)).astype(int), (lab == str(positive)).astype(int)))
    return float(fn[metric](y, lab))


# ---------------------------------------------------------------- runs and records

def run_tree_peak_rss(cmd: Sequence[str], env=None, log_path=None, timeout_s: Optional[float] = None,
                      cwd=None) -> Tuple[int, float, float, str]:
    """Run a command; return (exit code, wall s, peak RSS GiB of its process tree, stderr tail).

    ``log_path``: also keep the whole stderr there. ``timeout_s``: kill the whole tree after this
    long (exit code -9; a peer that never stops must not stall the suite). ``cwd``: where it runs
    (a peer killed mid-run leaves its scratch there: FLAML's CatBoost writes catboost_<time>/).
    """
    import psutil

    start = time.time()
    with (open(log_path, "w+") if log_path else tempfile.TemporaryFile("w+")) as err:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd)
        ps = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                procs = [ps] + ps.children(recursive=True)
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            if timeout_s is not None and time.time() - start > timeout_s:
                _kill_tree(ps)
            time.sleep(0.25)
        err.seek(0)
        tail = err.read()[-1500:]
    return proc.returncode, time.time() - start, peak / 2**30, tail


def _kill_tree(ps) -> None:
    import psutil

    try:
        procs = ps.children(recursive=True) + [ps]
    except psutil.Error:
        procs = [ps]
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def machine() -> Dict[str, Any]:
    """Fields every record carries: when and where it was measured."""
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cores": os.cpu_count(), "host": platform.node()}


def last_error_line(tail: str, rc: int) -> str:
    lines = [ln for ln in tail.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else f"exit {rc}"


def read_jsonl(paths: Iterable[Path]) -> List[Dict[str, Any]]:
    """All records of the given JSONL files (missing files are skipped; blank lines ignored)."""
    rows: List[Dict[str, Any]] = []
    for p in paths:
        p = Path(p)
        if p.exists():
            rows += [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
    return rows


def append_jsonl(path: Path, rec: Dict[str, Any]) -> None:
    """Append one record (a whole line per write, so an interrupted run leaves whole lines)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(rec) + "\n")


def done_keys(path: Path, system: Optional[str] = None) -> set:
    """(system, dataset, seed, budget) of the successful records already in ``path`` (for --skip-done)."""
    keys = set()
    for r in read_jsonl([path]):
        if r.get("score") is not None and (system is None or r.get("system", "automl") == system):
            keys.add((r.get("system", "automl"), r["dataset"], r.get("seed", 0), float(r["budget_s"])))
    return keys
