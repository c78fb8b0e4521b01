"""Run automl on the benchmark suite through its real CLI, over seeds and budgets.

    python benchmarks/run_suite.py [--group core|broad|all | --datasets digits,credit]
                                   [--seeds 0,1,2] [--budgets 30,60,300] [--out FILE] [--skip-done]
                                   [--suite ../shared/benchmarks] [--extra "k=v ..."] [--peers]

For each (budget, seed, dataset): `automl fit` on train.csv with budget.time_limit_s=BUDGET and
seed=SEED as a separate process (so Ray start-up counts), `automl predict` on test.csv, score it
with the dataset's metric, and append one JSON line to --out: test score, wall time from process
start, peak RSS of the whole process tree, best candidate, trial count, the date and the core
count. Groups: `core` is the nine datasets listed first in suite.yaml, `broad` the 16 with
`group: broad`, `all` (default) every one. `--budget 60` is the old spelling of `--budgets 60`.

Each line is also compared with the peers' figures at the same budget (every peers*.jsonl in the
suite folder, or --peers-file): best_peer and result (win: better than every peer; tie: within
the tolerance; loss; BAD loss). benchmarks/compare.py makes the tables over seeds and budgets.
The run folder (workdir/<dataset>-s<seed>-b<budget>-<time>/) keeps fit.log, config.yaml,
summary.json and leaderboard.csv, and pred.csv.gz (the test predictions, recorded as pred_path,
for compare.py's paired bootstrap between budgets); the model files are deleted after scoring
unless --keep-runs.
`--peers` then runs benchmarks/run_peers.py on the same datasets, seeds and budgets.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    DEFAULT_SUITE,
    ROOT,
    SCRATCH,
    append_jsonl,
    best_of,
    better,
    done_keys,
    last_error_line,
    load_suite,
    machine,
    parse_list,
    probas,
    read_jsonl,
    run_tree_peak_rss,
    score,
    select,
    within,
)

log = logging.getLogger("run_suite")
KEEP_FILES = ("summary.json", "leaderboard.csv", "config.yaml")
PRED_FILE = "pred.csv.gz"  # beside run/: predicted_label and proba_* of the test rows, 6 decimals


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(DEFAULT_SUITE))
    ap.add_argument("--datasets", default="", help="comma-separated names (overrides --group)")
    ap.add_argument("--group", default="all", help="core | broad | all")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--budgets", default="60")
    ap.add_argument("--budget", default=None, help="one budget (old spelling of --budgets)")
    ap.add_argument("--out", default=str(SCRATCH / "suite.jsonl"))
    ap.add_argument("--workdir", default=str(SCRATCH / "runs"))
    ap.add_argument("--keep-runs", action="store_true", help="keep each run's model files")
    ap.add_argument("--skip-done", action="store_true", help="skip runs already scored in --out")
    ap.add_argument("--extra", default="", help="extra `automl fit` overrides, space-separated")
    ap.add_argument("--peers-file", action="append", default=None,
                    help="peers' JSONL to compare with (repeatable; default: the suite's peers*.jsonl)")
    ap.add_argument("--peers", action="store_true", help="then run benchmarks/run_peers.py too")
    args = ap.parse_args(argv)
    if args.budget is not None:
        args.budgets = args.budget
    return args


def peer_scores(files: List[Path]) -> Dict[tuple, Dict[str, float]]:
    """{(dataset, budget): {system: median score over its seeds}} from peers' JSONL files."""
    acc: Dict[tuple, Dict[str, List[float]]] = {}
    for r in read_jsonl(files):
        if r.get("score") is not None:
            acc.setdefault((r["dataset"], float(r["budget_s"])), {}).setdefault(r["system"], []).append(r["score"])
    return {k: {s: statistics.median(v) for s, v in d.items()} for k, d in acc.items()}


def fit_command(exe: str, spec: Dict[str, Any], data: Path, budget: float, seed: int, run_dir: Path,
                extra: str) -> List[str]:
    cmd = [exe, "fit", f"data.path={data / 'train.csv'}", f"data.target={spec['target']}",
           f"problem_type={spec['problem']}", f"metric={spec['metric']}", f"budget.time_limit_s={budget}",
           f"seed={seed}", f"output_dir={run_dir}"]
    if spec.get("drop"):
        cmd.append(f"data.drop=[{','.join(spec['drop'])}]")
    return cmd + [a for a in extra.split() if a]


def run_one(exe: str, suite_dir: Path, name: str, spec: Dict[str, Any], budget: float, seed: int,
            args: argparse.Namespace) -> Dict[str, Any]:
    """Fit, predict and score one (dataset, seed, budget); the record never raises."""
    import pandas as pd

    d = suite_dir / name
    work = Path(args.workdir) / f"{name}-s{seed}-b{budget}-{time.strftime('%Y%m%d-%H%M%S')}"
    work.mkdir(parents=True, exist_ok=True)
    run_dir = work / "run"
    rc, wall, peak, tail = run_tree_peak_rss(fit_command(exe, spec, d, budget, seed, run_dir, args.extra),
                                             log_path=work / "fit.log")
    rec = {"system": "automl", "dataset": name, "group": spec["group"], "metric": spec["metric"],
           "seed": seed, "budget_s": budget, "wall_s": round(wall, 1), "peak_rss_gib": round(peak, 2),
           "score": None, "error": None, "best_candidate": None, "n_trials": None, **machine(),
           "commit": _commit(), "extra": args.extra or None, "run_dir": str(work)}
    if rc != 0:
        rec["error"] = last_error_line(tail, rc)
        return rec
    pred_path = work / "pred.csv"
    pr = subprocess.run([exe, "predict", f"run_dir={run_dir}", f"input={d / 'test.csv'}", f"output={pred_path}"],
                        capture_output=True, text=True)
    if pr.returncode != 0:
        rec["error"] = "predict: " + last_error_line(pr.stderr, pr.returncode)
        return rec
    summary = json.loads((run_dir / "summary.json").read_text())
    test, pred = pd.read_csv(d / "test.csv"), pd.read_csv(pred_path)
    rec["score"] = score(spec["metric"], test[spec["target"]], pred["predicted_label"], probas(pred),
                         summary.get("positive_class"))
    rec["best_candidate"] = (summary.get("best") or {}).get("candidate")
    rec["n_trials"] = summary.get("n_trials_completed")
    rec["fit_wall_s"] = summary.get("wall_time_s")
    rec["positive_class"] = summary.get("positive_class")
    # The test predictions, compact, for compare.py's paired bootstrap between budgets (test rows resampled).
    keep = pred[["predicted_label"] + [f"proba_{c}" for c in probas(pred).columns]]
    keep.round(6).to_csv(work / PRED_FILE, index=False)
    rec["pred_path"] = str(work / PRED_FILE)
    if not args.keep_runs:
        _prune(run_dir)
        pred_path.unlink(missing_ok=True)
    return rec


def _prune(run_dir: Path) -> None:
    """Delete a scored run's model files, keeping its small records (KEEP_FILES)."""
    for p in run_dir.iterdir():
        if p.name not in KEEP_FILES:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def _commit() -> Optional[str]:
    """The commit measured: this checkout's, or AUTOML_BENCH_COMMIT for a frozen tree without git
    (benchmarks/side_by_side.sh sets it)."""
    if os.environ.get("AUTOML_BENCH_COMMIT"):
        return os.environ["AUTOML_BENCH_COMMIT"]
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (r.stdout.strip() + ("+dirty" if dirty else "")) if r.returncode == 0 else None


def judge(rec: Dict[str, Any], ref: Dict[str, float]) -> None:
    """Add best_peer and result (win / tie / loss / BAD loss) to a scored record."""
    if not ref or rec["score"] is None:
        return
    m = rec["metric"]
    rec["best_peer"] = best_of(m, ref.values())
    if all(better(m, rec["score"], v) for v in ref.values()):
        rec["result"] = "win"
    elif within(m, rec["score"], rec["best_peer"], "tie"):
        rec["result"] = "tie"
    else:
        rec["result"] = "loss" if within(m, rec["score"], rec["best_peer"], "bad") else "BAD loss"


def print_table(rows: List[Dict[str, Any]]) -> None:
    print(f"\n{'dataset':13} {'metric':8} {'seed':>4} {'budget':>6} {'automl':>10} {'best peer':>10} "
          f"{'result':>8} {'wall/budget':>11} {'peak GiB':>8}")
    for r in rows:
        s = "-" if r["score"] is None else f"{r['score']:.4f}"
        bp = "-" if r.get("best_peer") is None else f"{r['best_peer']:.4f}"
        print(f"{r['dataset']:13} {r['metric']:8} {r['seed']:>4} {r['budget_s']:>6} {s:>10} {bp:>10} "
              f"{r.get('result') or ('error' if r.get('error') else '-'):>8} {r['wall_s'] / r['budget_s']:>11.2f} "
              f"{r['peak_rss_gib']:>8.2f}")
    judged = [r for r in rows if r.get("result")]
    wins = sum(r["result"] in ("win", "tie") for r in judged)
    strict = sum(r["result"] == "win" for r in judged)
    print(f"\nat least the best peer (within tolerance): {wins}/{len(judged)} runs with a peer figure; "
          f"strictly better than all: {strict}; failed runs: {sum(r['score'] is None for r in rows)}")


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    suite_dir = Path(args.suite)
    suite = load_suite(suite_dir)
    names = select(suite, args.datasets, args.group)
    seeds, budgets = parse_list(args.seeds, int), parse_list(args.budgets)
    peers = peer_scores([Path(p) for p in args.peers_file] if args.peers_file
                        else sorted(suite_dir.glob("peers*.jsonl")))
    exe = str(Path(sys.executable).parent / "automl")
    skip = done_keys(Path(args.out), "automl") if args.skip_done else set()
    rows = []
    for budget in budgets:
        for seed in seeds:
            for name in names:
                if ("automl", name, seed, float(budget)) in skip:
                    log.info("skip %s seed %s budget %s: already in %s", name, seed, budget, args.out)
                    continue
                rec = run_one(exe, suite_dir, name, suite[name], budget, seed, args)
                judge(rec, peers.get((name, float(budget)), {}))
                append_jsonl(Path(args.out), rec)
                print(json.dumps(rec), flush=True)
                rows.append(rec)
    print_table(rows)
    if args.peers:
        _run_peers(args, names)
    return 0


def _run_peers(args: argparse.Namespace, names: List[str]) -> None:
    """benchmarks/run_peers.py on the same datasets, seeds and budgets (it finds the peers' venv)."""
    print("\npeer runs on this machine (benchmarks/run_peers.py):", flush=True)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_peers.py"), "--suite", args.suite,
                    "--datasets", ",".join(names), "--seeds", args.seeds, "--budgets", str(args.budgets)],
                   check=False)


if __name__ == "__main__":
    sys.exit(main())
