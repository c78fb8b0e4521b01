"""Learn each algorithm's warm-start portfolio across the suite (zero-shot, as in TabRepo/FLAML).

    python benchmarks/build_portfolio.py grid   [--group all] [--configs 8] [--max-rows 4000] [--folds 3]
                                                [--algorithms xgboost,linear,...] [--out FILE]
    python benchmarks/build_portfolio.py choose [--size 5] [--grid FILE] [--write]

``grid`` scores, once and offline, a fixed set of configurations per algorithm on every suite
dataset: the search space's current portfolio, its ``init`` point and ``--configs`` random draws
(seeded per algorithm, so every dataset sees the same configurations). Each is cross-validated
with automl's own trial code (automl.search.trial.evaluate: same processing, early stopping and
metric as a fit) on the dataset's TRAIN split only, at most ``--max-rows`` rows. It never opens a
test file (tests/test_portfolio_builder.py runs it under an audit hook that fails on any).
One JSON line per (dataset, configuration) goes to --out; a rerun skips what is there.

``choose`` turns the grid into portfolios. Per dataset, every configuration's score becomes a
normalised error: 0 for the best configuration of any algorithm, 1 at the median one, clipped to
[0, 2] (failures count 2). Per algorithm, the portfolio is chosen greedily: each step adds the
configuration that most lowers the suite's mean of the per-dataset minimum error over the
configurations chosen so far. The ordered list is printed as YAML; --write stores it as the
``portfolio`` of search_spaces/<algorithm>.yaml (only that block is replaced).
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_SUITE, ROOT, SCRATCH, append_jsonl, load_suite, read_jsonl, rule, select  # noqa: E402

log = logging.getLogger("build_portfolio")
DEFAULT_GRID = SCRATCH / "portfolio_grid.jsonl"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["grid", "choose"])
    ap.add_argument("--suite", default=str(DEFAULT_SUITE))
    ap.add_argument("--datasets", default="")
    ap.add_argument("--group", default="all")
    ap.add_argument("--algorithms", default="", help="comma-separated; default: the default candidates'")
    ap.add_argument("--configs", type=int, default=8, help="random configurations per algorithm")
    ap.add_argument("--max-rows", type=int, default=4000, help="train rows per dataset (a seeded sample)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--trial-limit-s", type=float, default=60.0, help="per configuration and dataset")
    ap.add_argument("--grid", "--out", dest="grid", default=str(DEFAULT_GRID))
    ap.add_argument("--size", type=int, default=5, help="portfolio length per algorithm")
    ap.add_argument("--write", action="store_true", help="store the portfolios in search_spaces/")
    return ap.parse_args(argv)


# ---------------------------------------------------------------- configurations

def algorithm_configs(algorithm: str, space: Dict[str, Any], problem_type: str, n_random: int) -> List[Dict[str, Any]]:
    """The portfolio entries, the init point and ``n_random`` seeded draws, as parameter dicts.

    Draws depend on the algorithm only (not the dataset), so a configuration means the same
    thing on every dataset; parameters that do not apply to the problem type are left out."""
    import optuna

    from automl.candidates.space import SEP, init_point, suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    configs = [dict(e or {}) for e in space["portfolio"]]
    configs.append(init_point(space, problem_type))
    every_kind = {**space, "params": {k: {**v, "only": None} for k, v in space["params"].items()}}  # all of them
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=sum(map(ord, algorithm))))
    for _ in range(n_random):
        drawn = suggest(study.ask(), algorithm, every_kind, "regression")
        configs.append({k.split(SEP, 1)[1]: v for k, v in drawn.items()})
    return configs


def applicable_params(params: Dict[str, Any], space: Dict[str, Any], problem_type: str) -> Dict[str, Any]:
    from automl.candidates.space import applicable, init_point

    base = init_point(space, problem_type)
    return {**base, **{k: v for k, v in params.items() if k in space["params"]
                       and applicable(space["params"][k], problem_type)}}


# ---------------------------------------------------------------- grid

def screen_datasets(doc: str, out_name: str, folds: int):
    """The shared loop of the CV screens (catboost_native_cv.py, spline_linear_cv.py): their
    options, then ``(name, spec, ctx, plan)`` per suite dataset not yet in --out, and the args."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(DEFAULT_SUITE))
    ap.add_argument("--datasets", default="", help="comma-separated names (default: all)")
    ap.add_argument("--max-rows", type=int, default=3000)
    ap.add_argument("--folds", type=int, default=folds)
    ap.add_argument("--limit-s", type=float, default=120.0, help="per configuration and dataset")
    ap.add_argument("--out", default=str(SCRATCH / out_name))
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    suite_dir, out = Path(args.suite), Path(args.out)
    done = {r["dataset"] for r in read_jsonl([out])} if out.exists() else set()

    def items():
        for name, spec in load_suite(suite_dir).items():
            if name in done or (args.datasets and name not in args.datasets.split(",")):
                continue
            yield (name, spec) + tuple(dataset_context(spec, suite_dir / name / "train.csv", args.max_rows,
                                                       args.folds, args.limit_s))
    return args, out, items()


def dataset_context(spec: Dict[str, Any], train_csv: Path, max_rows: int, folds: int, limit_s: float):
    """automl's own prepared data, candidates and trial context for one TRAIN split."""
    import pandas as pd

    from automl.config import compose_config
    from automl.search.trial import TrialContext, make_folds
    from automl.stages.plan import plan_candidates
    from automl.stages.prepare import prepare

    frame = pd.read_csv(train_csv)
    if len(frame) > max_rows:
        frame = frame.sample(max_rows, random_state=0).reset_index(drop=True)
    overrides = [f"data.path={train_csv}", f"data.target={spec['target']}", f"problem_type={spec['problem']}",
                 f"metric={spec['metric']}", "seed=0"]
    if spec.get("drop"):
        overrides.append(f"data.drop=[{','.join(spec['drop'])}]")
    cfg = compose_config(overrides)
    prepared = prepare(cfg, frame)
    plan = plan_candidates(cfg, prepared)
    info = prepared.info
    from automl.data.compact import compact_features

    types = prepared.feature_types
    ctx = TrialContext(X=compact_features(prepared.X[prepared.features], types), y=prepared.y,
                       folds=make_folds(prepared.y, info.problem_type, folds, 10**9, 0.2, 0),
                       column_types=types, candidates=plan.by_name, problem_type=info.problem_type,
                       metric=info.metric, n_classes=len(info.classes), pos_index=info.pos_index, seed=0,
                       trial_time_limit_s=limit_s)
    return ctx, plan


def run_grid(args: argparse.Namespace) -> None:
    from automl.search.trial import evaluate

    suite_dir = Path(args.suite)
    suite = load_suite(suite_dir)
    wanted = [a for a in args.algorithms.split(",") if a]
    grid = Path(args.grid)
    done = {(r["dataset"], r["candidate"], r["config"]) for r in read_jsonl([grid])} if grid.exists() else set()
    for name in select(suite, args.datasets, args.group):
        spec = suite[name]
        ctx, plan = dataset_context(spec, suite_dir / name / "train.csv", args.max_rows, args.folds,
                                    args.trial_limit_s)
        for cand in plan.candidates:
            if wanted and cand.algorithm not in wanted:
                continue
            configs = algorithm_configs(cand.algorithm, cand.space, ctx.problem_type, args.configs)
            for i, params in enumerate(configs):
                if (name, cand.name, i) in done:
                    continue
                point = {"candidate": cand.name, **{f"{cand.name}:{k}": v for k, v in
                                                     applicable_params(params, cand.space, ctx.problem_type).items()}}
                started = time.time()
                res = evaluate(point, ctx)
                rec = {"dataset": name, "metric": spec["metric"], "candidate": cand.name, "algorithm": cand.algorithm,
                       "config": i, "params": params, "status": res["status"], "objective": res.get("objective"),
                       "fit_s": round(time.time() - started, 2), "n_rows": int(len(ctx.y))}
                append_jsonl(grid, rec)
                log.info("%s %s #%d: %s %s in %.1f s", name, cand.name, i, res["status"], res.get("objective"),
                         rec["fit_s"])


# ---------------------------------------------------------------- choose

def normalised_errors(rows: List[Dict[str, Any]]) -> Dict[str, Dict[tuple, float]]:
    """{dataset: {(algorithm, config): error}}: 0 at the dataset's best, 1 at its median, <= 2."""
    by_ds: Dict[str, List[Dict[str, Any]]] = {}
    for r in rows:
        by_ds.setdefault(r["dataset"], []).append(r)
    out: Dict[str, Dict[tuple, float]] = {}
    for ds, rs in by_ds.items():
        sign = 1.0 if rule(rs[0]["metric"]).greater_is_better else -1.0
        ok = [sign * r["objective"] for r in rs if r["status"] == "completed" and r["objective"] is not None]
        if not ok:
            continue
        best, med = max(ok), statistics.median(ok)
        span = max(best - med, 1e-12)
        out[ds] = {(r["algorithm"], r["config"]): (min(2.0, max(0.0, (best - sign * r["objective"]) / span))
                                                  if r["status"] == "completed" else 2.0) for r in rs}
    return out


def greedy_portfolio(errors: Dict[str, Dict[tuple, float]], algorithm: str, size: int) -> List[int]:
    """Config indices, in order: each minimises the mean over datasets of the best error so far."""
    datasets = [d for d, e in errors.items() if any(k[0] == algorithm for k in e)]
    configs = sorted({k[1] for d in datasets for k in errors[d] if k[0] == algorithm})
    chosen: List[int] = []
    current = {d: 2.0 for d in datasets}
    while configs and len(chosen) < size:
        def gain(c: int) -> float:
            return statistics.fmean(min(current[d], errors[d].get((algorithm, c), 2.0)) for d in datasets)

        pick = min((c for c in configs if c not in chosen), key=gain, default=None)
        if pick is None or (chosen and gain(pick) >= statistics.fmean(current.values()) - 1e-9):
            break  # nothing left that helps any dataset
        chosen.append(pick)
        current = {d: min(current[d], errors[d].get((algorithm, pick), 2.0)) for d in datasets}
        log.info("%s: + config %d -> mean best error %.4f", algorithm, pick, statistics.fmean(current.values()))
    return chosen


def run_choose(args: argparse.Namespace) -> Dict[str, List[Dict[str, Any]]]:
    rows = read_jsonl([Path(args.grid)])
    errors = normalised_errors(rows)
    params = {(r["algorithm"], r["config"]): r["params"] for r in rows}
    portfolios = {}
    for algorithm in sorted({r["algorithm"] for r in rows}):
        picks = greedy_portfolio(errors, algorithm, args.size)
        portfolios[algorithm] = [params[(algorithm, c)] for c in picks]
    import yaml

    print(yaml.safe_dump(portfolios, sort_keys=False, default_flow_style=None))
    if args.write:
        for algorithm, entries in portfolios.items():
            write_portfolio(ROOT / "search_spaces" / f"{algorithm}.yaml", entries)
    return portfolios


def write_portfolio(path: Path, entries: List[Dict[str, Any]]) -> None:
    """Replace the ``portfolio:`` block of a search-space file, keeping everything above it."""
    import yaml

    text = path.read_text()
    head, sep, _ = text.partition("\nportfolio:")
    lines = [yaml.safe_dump(e, default_flow_style=True, sort_keys=False).strip() for e in entries] or ["{}"]
    block = "\n".join(f"  - {line}" for line in lines)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(f"{head}\nportfolio:  # learned by benchmarks/build_portfolio.py\n{block}\n")
    tmp.replace(path)


def main(argv: Optional[List[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("automl", "py.warnings"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parse_args(argv)
    if args.step == "grid":
        run_grid(args)
    else:
        run_choose(args)


if __name__ == "__main__":
    main()
