"""Paired comparison of final-model choices (``select.*``) on the same search.

    python benchmarks/select_ab.py [--group all|core|broad | --datasets a,b] [--budget 60] [--seed 0]
                                   [--out benchmarks/results/tmp/select_ab.jsonl]

For each dataset, one process runs automl's prepare, plan and search stages on train.csv with the
given budget (as `automl fit` would: Ray start-up included), then the select stage once per
variant on the SAME trials, each with the time the fit keeps back for it, and scores each final
model on test.csv. Comparing variants on one search removes the search's own noise (which trials
ran), so a difference is the selection's alone. Variants (``VARIANTS``): refit or bagged fold
models (``select.final_model``) crossed with the ensemble gate (``select.gate``), plus stacking.

The search's wall time is not the user's: use run_suite.py for the end-to-end figures.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import better, load_suite, read_jsonl, select as pick_datasets, within  # noqa: E402

VARIANTS = {
    "A_refit_score": {"final_model": "refit", "gate": "score"},
    "B_auto_bootstrap": {"final_model": "auto", "gate": "bootstrap"},
    "C_refit_bootstrap": {"final_model": "refit", "gate": "bootstrap"},
    "D_auto_score": {"final_model": "auto", "gate": "score"},
    "E_auto_bootstrap_stack": {"final_model": "auto", "gate": "bootstrap", "stack": True},
}


def run_one(suite_dir: Path, name: str, spec: dict, budget: float, seed: int) -> list:
    """One dataset: one search, every variant's selection. Returns one record per variant."""
    from automl.config import compose_config
    from automl.model import ModelBundle
    from automl.search.resume import begin_run
    from automl.stages.env import RunEnv
    from automl.stages.plan import plan_candidates
    from automl.stages.publish import score_test_data, write_inputs
    from automl.stages.prepare import prepare
    from automl.stages.search import search, search_reserve_s
    from automl.stages.select import select

    started = time.time()
    d = suite_dir / name
    out = tempfile.mkdtemp(prefix=f"automl-selab-{name}-")
    overrides = [f"data.path={d / 'train.csv'}", f"data.test_path={d / 'test.csv'}", f"data.target={spec['target']}",
                 f"problem_type={spec['problem']}", f"metric={spec['metric']}", f"budget.time_limit_s={budget}",
                 f"seed={seed}", f"output_dir={out}/run"]
    if spec.get("drop"):
        overrides.append(f"data.drop=[{','.join(spec['drop'])}]")
    cfg = compose_config(overrides)
    run_dir = f"{out}/run"
    state = begin_run(cfg, run_dir, {}, started)
    env = RunEnv(cfg, run_dir, {}, started, started + budget, state)
    prepared = prepare(cfg, None)
    plan = plan_candidates(cfg, prepared)
    state.save()
    write_inputs(env, prepared, plan)
    outcome = search(env, prepared, plan)
    searched_s = time.time() - started
    reserve = search_reserve_s(budget)
    records = []
    for variant, keys in VARIANTS.items():
        for key, value in {"final_model": "refit", "gate": "score", "stack": False, **keys}.items():
            cfg.select[key] = value
        t0 = time.time()
        venv = RunEnv(cfg, run_dir, {}, t0, t0 + reserve, state)  # each variant: the fit's reserve
        sel = select(venv, prepared, outcome)
        info = prepared.info
        bundle = ModelBundle(pipeline=sel.model, problem_type=info.problem_type, target=cfg.data.target,
                             feature_columns=prepared.features, column_types=prepared.feature_types,
                             classes=info.classes, positive_class=info.positive_class, threshold=sel.threshold,
                             calibration=sel.calibration, trial_id=str(sel.trial_id), candidate=str(sel.candidate))
        scored = score_test_data(env, prepared, bundle) or {}
        rec = sel.record()
        records.append({"dataset": name, "variant": variant, "metric": spec["metric"], "budget_s": budget,
                        "seed": seed, "score": scored.get("test_score"), "select_s": round(time.time() - t0, 2),
                        "search_s": round(searched_s, 1), "n_trials": int(outcome.counts.get("completed", 0)),
                        "chosen": str(sel.candidate), "final_model": (rec.get("final_model") or {}).get("kind"),
                        "gate_passed": (rec.get("gate") or {}).get("passed")})
    return records


def peer_reference(suite_dir: Path) -> dict:
    """The peers' reference figures shipped with the suite: {dataset: {system: score}}."""
    peers: dict = {}
    for rec in read_jsonl(sorted(suite_dir.glob("peers_*60.jsonl"))):
        if rec.get("score") is not None:
            peers.setdefault(rec["dataset"], {})[rec["system"]] = rec["score"]
    return peers


def summarise(rows: list, peers: dict) -> None:
    by = {}
    for r in rows:
        by.setdefault(r["dataset"], {})[r["variant"]] = r
    names = list(VARIANTS)
    print("| dataset | metric | " + " | ".join(names) + " | best peer |")
    print("|---|---|" + "---|" * (len(names) + 1))
    wins = {v: 0 for v in names}
    for ds, vs in by.items():
        metric = next(iter(vs.values()))["metric"]
        ref = peers.get(ds, {})
        best_peer = (min(ref.values()) if metric == "rmse" else max(ref.values())) if ref else None
        cells = []
        for v in names:
            s = vs.get(v, {}).get("score")
            cells.append("-" if s is None else f"{s:.5g}")
            if s is not None and best_peer is not None and within(metric, s, best_peer, "tie"):
                wins[v] += 1
        print(f"| {ds} | {metric} | " + " | ".join(cells) + f" | {best_peer if best_peer is None else f'{best_peer:.5g}'} |")
    base = names[0]
    for v in names[1:]:
        pairs = [(vs[base]["score"], vs[v]["score"], vs[v]["metric"]) for vs in by.values()
                 if vs.get(base, {}).get("score") is not None and vs.get(v, {}).get("score") is not None]
        up = sum(better(m, b, a) for a, b, m in pairs)
        down = sum(better(m, a, b) for a, b, m in pairs)
        print(f"{v} vs {base}: better on {up}, worse on {down}, equal on {len(pairs) - up - down} of {len(pairs)}")
    print("at least the best peer (within tolerance): " + ", ".join(f"{v} {n}" for v, n in wins.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(Path(__file__).resolve().parents[2] / "shared" / "benchmarks"))
    ap.add_argument("--group", default="all")
    ap.add_argument("--datasets", default="")
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "tmp" / "select_ab.jsonl"))
    ap.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: run one dataset in this process
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args()
    suite_dir = Path(args.suite)
    suite = load_suite(suite_dir)
    if args.one:
        for rec in run_one(suite_dir, args.one, suite[args.one], args.budget, args.seed):
            print("RECORD " + json.dumps(rec), flush=True)
        return 0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        for name in pick_datasets(suite, args.datasets, args.group):
            proc = subprocess.run([sys.executable, __file__, "--one", name, "--suite", str(suite_dir),
                                   "--budget", str(args.budget), "--seed", str(args.seed)],
                                  capture_output=True, text=True)
            got = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RECORD ")]
            if not got:
                tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                got = [{"dataset": name, "variant": v, "metric": suite[name]["metric"], "score": None,
                        "error": tail[-300:]} for v in VARIANTS]
            with open(args.out, "a") as fh:
                for rec in got:
                    fh.write(json.dumps(rec) + "\n")
            print(name, " ".join(f"{r['variant']}={r.get('score')}" for r in got), flush=True)
    rows = [json.loads(line) for line in Path(args.out).read_text().splitlines() if line.strip()]
    summarise(rows, peer_reference(suite_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
