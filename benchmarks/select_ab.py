"""Paired comparison of final-model choices (``select.*``) on the same search.

    python benchmarks/select_ab.py [--group all|core|broad | --datasets a,b] [--budget 60] [--seed 0]
                                   [--variants A_refit_score,P_pool3,...] [--prefix-from <results.jsonl>]
                                   [--out benchmarks/results/tmp/select_ab.jsonl]

For each dataset, one process runs automl's prepare, plan and search stages on train.csv with the
given budget (as `automl fit` would: Ray start-up included), then the select stage once per
variant on the SAME trials, each with the time the fit keeps back for it, and scores each final
model on test.csv. Comparing variants on one search removes the search's own noise (which trials
ran), so a difference is the selection's alone. Variants (``VARIANTS``): refit or bagged fold
models (``select.final_model``) crossed with the ensemble gate (``select.gate``), plus stacking,
and (``O``-``U``) other ways to choose the ensemble's pool and weights, patched in for the call.

``--prefix-from`` (a results file of automl runs at a smaller budget) selects every variant a
second time from the first ``n_trials`` finished trials only, ``n_trials`` as that file has it
for the dataset and seed: what a longer search changes in the choice, on one search (a 300 s
search against its own first trials stands in for a 60 s run; a real 60 s run also differs in
its trial time limit and its search path).

``--from-runs`` selects again from run folders this script left in /tmp (each run's trials and
their OOF files; no new search): a new variant measured on searches already made, in a minute or
two a dataset. ``--singles N`` also refits and scores each of the best N trials and the best two
of every other candidate alone: how validation scores carry to test.csv, trial by trial.

The search's wall time is not the user's: use run_suite.py for the end-to-end figures.
"""
from __future__ import annotations

import argparse
import json
import shutil
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
    # How the ensemble's pool and weights are chosen (``patch``: a function below that changes it for the call).
    # Since 26fabcf the default pool (A) is P's (selection/choose.py ensemble_pool); O is the one before.
    "O_top30": {"final_model": "refit", "gate": "score", "patch": "top30"},
    "P_pool3": {"final_model": "refit", "gate": "score", "patch": "pool3"},
    "Q_bagsel": {"final_model": "refit", "gate": "score", "patch": "bagsel"},
    "R_pool3_bagsel": {"final_model": "refit", "gate": "score", "patch": "pool3+bagsel"},
    "S_pool3_bootstrap": {"final_model": "refit", "gate": "bootstrap", "patch": "pool3"},
    "T_cap3": {"final_model": "refit", "gate": "score", "patch": "cap3"},
    "U_cap5": {"final_model": "refit", "gate": "score", "patch": "cap5"},
    "X_cvsel": {"final_model": "refit", "gate": "score", "patch": "cvsel"},
}
BAGS, BAG_SHARE = 20, 0.5  # bagsel: Caruana on 20 random halves of the pool, weights averaged


def bagged_caruana(preds, y, metric, pos_index=1, max_iter=40, score_fn=None):
    """Bagged ensemble selection (Caruana et al., 2006): greedy selection on random halves of
    the pool, the weights averaged; the best single model of the whole pool leads."""
    import numpy as np

    from automl.ensemble import Selection, _better, caruana_select

    score = score_fn or (lambda yy, p: metric.fn(yy, p, pos_index))
    singles = np.array([score(y, p) for p in preds])
    best = int(np.argmax(singles) if metric.greater_is_better else np.argmin(singles))
    rng = np.random.default_rng(0)
    total = np.zeros(len(preds))
    k = max(2, int(round(BAG_SHARE * len(preds))))
    for _ in range(BAGS):
        sub = rng.choice(len(preds), size=min(k, len(preds)), replace=False)
        sel = caruana_select([preds[i] for i in sub], y, metric, pos_index, max_iter, score_fn)
        if sel is None:
            sub_best = sub[int(np.argmax(singles[sub]) if metric.greater_is_better else np.argmin(singles[sub]))]
            total[sub_best] += 1.0
        else:
            total[sub] += sel.weights
    weights = total / total.sum()
    if (weights > 0).sum() < 2:
        return None
    mix = sum(w * preds[i] for i, w in enumerate(weights) if w > 0)
    got = score(y, mix)
    if not _better(metric, got, singles[best]):
        return None
    others = [i for i in np.argsort(-weights) if weights[i] > 0 and i != best]
    return Selection([best] + [int(i) for i in others], weights, float(got), float(singles[best]))


def cv_caruana(preds, y, metric, pos_index=1, max_iter=40, score_fn=None):
    """Cross-validated ensemble selection: Caruana's greedy steps on one random half of the OOF
    rows, its length (how many steps) chosen on the other half; both ways round, the two weight
    vectors averaged. A step that only fits one half's noise is not taken. (Sample weights are not
    sliced: the suite has none.)"""
    import numpy as np

    from automl.ensemble import Selection, _better

    score = score_fn or (lambda yy, p: metric.fn(yy, p, pos_index))
    singles = [score(y, p) for p in preds]
    best = int(np.argmax(singles) if metric.greater_is_better else np.argmin(singles))
    perm = np.random.default_rng(0).permutation(len(y))
    halves = (perm[: len(y) // 2], perm[len(y) // 2:])
    total = np.zeros(len(preds))
    for fit_rows, check_rows in (halves, halves[::-1]):
        fit = [p[fit_rows] for p in preds]
        first = int(np.argmax([score(y[fit_rows], p) for p in fit]) if metric.greater_is_better
                    else np.argmin([score(y[fit_rows], p) for p in fit]))
        chosen, run = [first], fit[first].astype(float).copy()
        trace = [(score(y[check_rows], preds[first][check_rows]), [first])]
        for _ in range(max_iter - 1):
            n = len(chosen) + 1
            cand = [score(y[fit_rows], (run + p) / n) for p in fit]
            j = int(np.argmax(cand) if metric.greater_is_better else np.argmin(cand))
            chosen.append(j)
            run += fit[j]
            mix = sum(preds[i][check_rows] for i in chosen) / n
            trace.append((score(y[check_rows], mix), list(chosen)))
        pick = (max if metric.greater_is_better else min)(trace, key=lambda t: t[0])[1]
        total += np.bincount(pick, minlength=len(preds)) / len(pick)
    weights = total / total.sum()
    if (weights > 0).sum() < 2:
        return None
    got = score(y, sum(w * preds[i] for i, w in enumerate(weights) if w > 0))
    if not _better(metric, got, singles[best]):
        return None
    order = [best] + [int(i) for i in np.argsort(-weights) if weights[i] > 0 and i != best]
    return Selection(order, weights, float(got), float(singles[best]))


def patched(names: str):
    """A context manager that applies the variant's patches (``top30``, ``pool3``, ``cap3``, ``cap5``,
    ``bagsel``, ``cvsel``) to automl's selection."""
    import contextlib

    from automl.selection import choose

    @contextlib.contextmanager
    def apply():
        saved = (choose.caruana_select, choose.ensemble_pool)
        pool = choose.ensemble_pool
        if "top30" in names:  # the pool before 26fabcf: the best 30 by validation score
            choose.ensemble_pool = lambda done, **_: done["trial_id"].astype(str).head(
                choose.MAX_MEMBERS_CONSIDERED).tolist()
        if "pool3" in names:  # the best 3 of every candidate, then the best of the rest up to 30
            choose.ensemble_pool = lambda done, **_: pool(done, choose.MAX_MEMBERS_CONSIDERED, 3)
        for n in (3, 5):
            if f"cap{n}" in names:  # the best n of every candidate only (size 0: no filling up)
                choose.ensemble_pool = lambda done, _n=n, **_: pool(done, 0, _n)
        if "bagsel" in names:
            choose.caruana_select = bagged_caruana
        if "cvsel" in names:
            choose.caruana_select = cv_caruana
        try:
            yield
        finally:
            choose.caruana_select, choose.ensemble_pool = saved
    return apply()


def only_trials(outcome, ids: set):
    """The search's outcome as if only the trials ``ids`` had finished."""
    import dataclasses

    lb = outcome.leaderboard
    lb = lb[lb["trial_id"].astype(str).isin(ids)].reset_index(drop=True)
    rows = [r for r in outcome.rows if str(r["trial_id"]) in ids]
    return dataclasses.replace(outcome, leaderboard=lb, rows=rows,
                               counts={"completed": int((lb["status"] == "completed").sum())})


def single_sets(outcome, top: int) -> list:
    """(name, outcome) for the ``top`` best trials and the best two of every other candidate, each alone."""
    done = outcome.leaderboard[outcome.leaderboard["status"] == "completed"]
    ids = list(done["trial_id"].astype(str).head(top))
    for _, group in done.groupby("candidate", sort=False):
        ids += [t for t in group["trial_id"].astype(str).head(2) if t not in ids]
    return [(f"single:{t}", only_trials(outcome, {t})) for t in ids]


def first_trials(outcome, n: int):
    """The search's outcome as if it had stopped after its first ``n`` finished trials."""
    lb = outcome.leaderboard
    return only_trials(outcome, set(lb.loc[lb["trial_number"] < n, "trial_id"].astype(str)))


def saved_outcome(env, prepared, plan, rows: list):
    """The search's outcome rebuilt from a saved run's trials (their result.json, in the order they
    finished, and their OOF files, which the select stage reads from the run folder)."""
    from automl.stages.search import SearchOutcome, leaderboard_frame, trial_context

    ctx = trial_context(env, prepared, plan)
    lb = leaderboard_frame(rows, ctx.candidates, prepared.info)
    return SearchOutcome(ctx, rows, lb, lb["status"].value_counts().to_dict())


def saved_run_spec(run: Path) -> tuple:
    """(dataset, seed, budget) of a run folder select_ab.py left (/tmp/automl-selab-<dataset>-*/run)."""
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    return Path(cfg["data"]["path"]).parent.name, int(cfg["seed"]), float(cfg["budget"]["time_limit_s"])


def run_one(suite_dir: Path, name: str, spec: dict, budget: float, seed: int, variants: list,
            prefix: int = 0, saved: str = "", singles: int = 0) -> list:
    """One dataset: one search, every variant's selection (and, with ``prefix``, each again on the
    first ``prefix`` finished trials only). Returns one record per variant and trial set. With
    ``saved`` (a run folder this script left), no search: the selection runs on that run's trials."""
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
    if saved:  # a copy of the saved run: the select stage writes into its run folder
        shutil.copytree(saved, f"{out}/run")
    overrides = [f"data.path={d / 'train.csv'}", f"data.test_path={d / 'test.csv'}", f"data.target={spec['target']}",
                 f"problem_type={spec['problem']}", f"metric={spec['metric']}", f"budget.time_limit_s={budget}",
                 f"seed={seed}", f"output_dir={out}/run"]
    if spec.get("drop"):
        overrides.append(f"data.drop=[{','.join(spec['drop'])}]")
    cfg = compose_config(overrides + (["resume=true"] if saved else []))
    run_dir = f"{out}/run"
    state = begin_run(cfg, run_dir, {}, started)
    env = RunEnv(cfg, run_dir, {}, started, started + budget, state)
    prepared = prepare(cfg, None)
    plan = plan_candidates(cfg, prepared)
    if saved:
        outcome = saved_outcome(env, prepared, plan, state.previous_rows)
    else:
        state.save()
        write_inputs(env, prepared, plan)
        outcome = search(env, prepared, plan)
    searched_s = time.time() - started
    reserve = search_reserve_s(budget)
    records = []
    sets = [("all", outcome)] + ([(f"first{prefix}", first_trials(outcome, prefix))] if prefix else [])
    jobs = [(t, v) for t in sets for v in variants]
    if singles:  # each of these trials alone, refit and scored (no re-rank): what any choice could reach
        cfg.validation.rerank_top = 0
        jobs += [(t, variants[0]) for t in single_sets(outcome, singles)]
    for (trials_set, trials_outcome), variant in jobs:
        keys = dict(VARIANTS[variant])
        patch = keys.pop("patch", "")
        for key, value in {"final_model": "refit", "gate": "score", "stack": False, **keys}.items():
            cfg.select[key] = value
        t0 = time.time()
        venv = RunEnv(cfg, run_dir, {}, t0, t0 + reserve, state)  # each variant: the fit's reserve
        with patched(patch):
            sel = select(venv, prepared, trials_outcome)
        info = prepared.info
        bundle = ModelBundle(pipeline=sel.model, problem_type=info.problem_type, target=cfg.data.target,
                             feature_columns=prepared.features, column_types=prepared.feature_types,
                             classes=info.classes, positive_class=info.positive_class, threshold=sel.threshold,
                             calibration=sel.calibration, trial_id=str(sel.trial_id), candidate=str(sel.candidate))
        scored = score_test_data(env, prepared, bundle) or {}
        rec = sel.record()
        records.append({"dataset": name, "variant": variant, "trials": trials_set, "metric": spec["metric"],
                        "budget_s": budget, "seed": seed, "score": scored.get("test_score"),
                        "validation": float(sel.score) if getattr(sel, "score", None) is not None else None,
                        "select_s": round(time.time() - t0, 2), "search_s": round(searched_s, 1),
                        "n_trials": int(trials_outcome.counts.get("completed", 0)),
                        "chosen": str(sel.candidate), "final_model": (rec.get("final_model") or {}).get("kind"),
                        "gate_passed": (rec.get("gate") or {}).get("passed"),
                        "members": [m["candidate"] for m in (sel.members or [])],
                        "trial_id": str(sel.trial_id)})
    if saved:  # the copy; the saved run stays as it was
        shutil.rmtree(out, ignore_errors=True)
    return records


def peer_reference(suite_dir: Path) -> dict:
    """The peers' reference figures shipped with the suite: {dataset: {system: score}}."""
    peers: dict = {}
    for rec in read_jsonl(sorted(suite_dir.glob("peers_*60.jsonl"))):
        if rec.get("score") is not None:
            peers.setdefault(rec["dataset"], {})[rec["system"]] = rec["score"]
    return peers


def summarise(rows: list, peers: dict) -> None:
    """A table per dataset and seed; each variant against the first (on all trials); and, where
    the prefix ran, each variant on all trials against itself on the first trials (anytime)."""
    singles = [r for r in rows if str(r.get("trials", "")).startswith("single:")]
    rows = [r for r in rows if r not in singles]
    for (ds, seed) in dict.fromkeys((r["dataset"], r.get("seed", 0)) for r in singles):
        print(f"{ds}, seed {seed}: single trials, refit and scored alone (validation -> test)")
        for r in sorted((r for r in singles if (r["dataset"], r.get("seed", 0)) == (ds, seed)),
                        key=lambda r: -(r.get("validation") or 0)):
            print(f"  {r['trials'][7:]} {r['chosen']}: {r.get('validation') or 0:.5f} -> {r.get('score') or 0:.5f}")
    by = {}
    for r in rows:
        trials = "all" if r.get("trials", "all") == "all" else "first"  # "first<n>": the first n trials
        by.setdefault((r["dataset"], r.get("seed", 0)), {})[(r["variant"], trials)] = r
    cols = sorted({k for vs in by.values() for k in vs}, key=lambda k: (k[1] != "all", k[1], k[0]))
    print("| dataset | seed | metric | " + " | ".join(f"{v} {t}" for v, t in cols) + " | best peer |")
    print("|---|---|---|" + "---|" * (len(cols) + 1))
    wins = {c: 0 for c in cols}
    for (ds, seed), vs in by.items():
        metric = next(iter(vs.values()))["metric"]
        ref = peers.get(ds, {})
        best_peer = (min(ref.values()) if metric == "rmse" else max(ref.values())) if ref else None
        cells = []
        for c in cols:
            s = vs.get(c, {}).get("score")
            cells.append("-" if s is None else f"{s:.5g}")
            if s is not None and best_peer is not None and within(metric, s, best_peer, "tie"):
                wins[c] += 1
        peer = "-" if best_peer is None else f"{best_peer:.5g}"
        print(f"| {ds} | {seed} | {metric} | " + " | ".join(cells) + f" | {peer} |")

    def tally(pairs, label, beyond_note=False):
        """``pairs``: (reference score, compared score, metric); prints how often the second is better."""
        if not pairs:
            return
        up = sum(better(m, b, a) for a, b, m in pairs)
        down = sum(better(m, a, b) for a, b, m in pairs)
        beyond = sum(not within(m, b, a, "tie") for a, b, m in pairs)
        worse = f"worse on {down} ({beyond} beyond the tie tolerance)" if beyond_note else f"worse on {down}"
        print(f"{label}: better on {up}, {worse}, equal on {len(pairs) - up - down} of {len(pairs)}")

    def paired(a_key, b_key):
        return [(vs[a_key]["score"], vs[b_key]["score"], vs[b_key]["metric"]) for vs in by.values()
                if vs.get(a_key, {}).get("score") is not None and vs.get(b_key, {}).get("score") is not None]

    names = list(dict.fromkeys(v for v, _ in cols))
    for v in names[1:]:
        tally(paired((names[0], "all"), (v, "all")), f"{v} vs {names[0]} (all trials)")
    for v in names:
        tally(paired((v, "first"), (v, "all")), f"{v}: all trials vs the first trials (anytime)", beyond_note=True)
    print("at least the best peer (within tolerance): " + ", ".join(f"{v} {t} {n}" for (v, t), n in wins.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(Path(__file__).resolve().parents[2] / "shared" / "benchmarks"))
    ap.add_argument("--group", default="all")
    ap.add_argument("--datasets", default="")
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "tmp" / "select_ab.jsonl"))
    ap.add_argument("--variants", default=",".join(list(VARIANTS)[:5]),
                    help="comma-separated names of VARIANTS (default: the first five)")
    ap.add_argument("--prefix-from", default="",
                    help="a results file of automl runs (e.g. at 60 s): each variant is also selected from the "
                         "first n_trials finished trials of the search, n_trials as that file has it for the "
                         "dataset and seed: how the choice changes with a longer search, on the same trials")
    ap.add_argument("--from-runs", default="",
                    help="comma-separated run folders this script left (/tmp/automl-selab-<dataset>-*/run): "
                         "no new search, the variants select from each run's saved trials (dataset, seed and "
                         "budget from its config.yaml)")
    ap.add_argument("--singles", type=int, default=0,
                    help="also refit and score, each alone, the best N trials and the best two of every other "
                         "candidate (trials set 'single:<id>'; no re-rank): what any choice from the search reaches")
    ap.add_argument("--saved", default="", help=argparse.SUPPRESS)  # internal: for --one
    ap.add_argument("--prefix", type=int, default=0, help=argparse.SUPPRESS)  # internal: for --one
    ap.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: run one dataset in this process
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args()
    suite_dir = Path(args.suite)
    suite = load_suite(suite_dir)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    if args.one:
        for rec in run_one(suite_dir, args.one, suite[args.one], args.budget, args.seed, variants, args.prefix,
                           args.saved, args.singles):
            print("RECORD " + json.dumps(rec), flush=True)
        return 0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        earlier = {(r["dataset"], r.get("seed")): r.get("n_trials") for r in read_jsonl([Path(args.prefix_from)])
                   if r.get("system", "automl") == "automl"} if args.prefix_from else {}
        if args.from_runs:
            jobs = [(*saved_run_spec(Path(r)), r) for r in args.from_runs.split(",") if r]
        else:
            jobs = [(name, args.seed, args.budget, "") for name in pick_datasets(suite, args.datasets, args.group)]
        for name, seed, budget, saved in jobs:
            prefix = int(earlier.get((name, seed)) or 0)
            proc = subprocess.run([sys.executable, __file__, "--one", name, "--suite", str(suite_dir),
                                   "--budget", str(budget), "--seed", str(seed), "--variants", args.variants,
                                   "--prefix", str(prefix), "--saved", saved, "--singles", str(args.singles)],
                                  capture_output=True, text=True)
            got = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RECORD ")]
            if not got:
                tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                got = [{"dataset": name, "variant": v, "metric": suite[name]["metric"], "score": None,
                        "error": tail[-300:]} for v in variants]
            with open(args.out, "a") as fh:
                for rec in got:
                    fh.write(json.dumps(rec) + "\n")
            print(name, " ".join(f"{r['variant']}/{r.get('trials', 'all')}={r.get('score')}" for r in got), flush=True)
    rows = [json.loads(line) for line in Path(args.out).read_text().splitlines() if line.strip()]
    summarise(rows, peer_reference(suite_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
