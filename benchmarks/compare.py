"""Tables of automl against the peers, in Markdown for docs/benchmarks.md.

    python benchmarks/compare.py --automl benchmarks/results/automl.jsonl \\
                                 --peers benchmarks/results/peers.jsonl [--budget 60] [--group broad]

Reads run_suite.py's and run_peers.py's JSON lines (several files each; a later line for the same
system, dataset, seed and budget replaces an earlier one, so a rerun of failures just appends) and
prints:

1. At --budget, per dataset: automl's median test score over its seeds and the range, each peer's
   median over its seeds, the best peer, the result (win: strictly better than every peer; tie:
   within the tolerance of the best peer; loss; BAD loss: worse than the best peer by more than the
   bad-loss margin), the seeds that reach the best peer, and the largest wall time / budget. Then
   the counts: at least the best peer, strict wins, bad losses, the same count for each seed's
   run alone (the spread), and the largest wall / budget of each system.
2. The budget curve: per system and budget, the median over datasets of the normalised score
   (score / best score any system reached on that dataset at any budget; best / score for
   error metrics; 1 is the best seen, a failed run is 0), and automl's counts at each budget.
3. With automl at two budgets or more: its median per dataset at each, and where a longer budget
   is worse than the next smaller one beyond the tie tolerance; where the runs kept their test
   predictions (run_suite.py's pred_path), a paired bootstrap over the test rows between the two
   budgets, on the seeds run at both (--suite must hold the test.csv files).

Tolerances (benchmarks/common.py METRICS): auc, accuracy and other [0, 1] scores tie within 0.002
and lose badly beyond 0.01; rmse, mae and logloss within 1% and beyond 5% of the best peer; mse
within 2.01% and beyond 10.25% (the squares of rmse's).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DEFAULT_SUITE, METRICS, best_of, better, load_suite, probas, read_jsonl, rule,  # noqa: E402
                    score, select, within)

AUTOML = "automl"
PEER_ORDER = ("flaml", "ag", "ag_best")
Key = Tuple[str, str, int, float]  # system, dataset, seed, budget


def index(rows: List[Dict[str, Any]]) -> Dict[Key, Dict[str, Any]]:
    """The last record of each (system, dataset, seed, budget); old rows without system/seed are automl, seed 0."""
    out: Dict[Key, Dict[str, Any]] = {}
    for r in rows:
        out[(r.get("system") or AUTOML, r["dataset"], int(r.get("seed") or 0), float(r["budget_s"]))] = r
    return out


class Results:
    """Scores and walls by system, dataset and budget, over seeds."""

    def __init__(self, runs: Dict[Key, Dict[str, Any]]):
        self.runs = runs
        self.systems = [AUTOML] + sorted({k[0] for k in runs if k[0] != AUTOML},
                                         key=lambda s: (PEER_ORDER.index(s) if s in PEER_ORDER else 99, s))
        self.budgets = sorted({k[3] for k in runs})

    def records(self, system: str, dataset: str, budget: float) -> List[Dict[str, Any]]:
        return [r for (s, d, _, b), r in sorted(self.runs.items()) if s == system and d == dataset and b == budget]

    def scores(self, system: str, dataset: str, budget: float) -> Dict[int, float]:
        """{seed: score} of the successful runs."""
        return {int(r.get("seed") or 0): r["score"] for r in self.records(system, dataset, budget)
                if r.get("score") is not None}

    def median(self, system: str, dataset: str, budget: float) -> Optional[float]:
        s = self.scores(system, dataset, budget)
        return statistics.median(s.values()) if s else None

    def peers(self, dataset: str, budget: float) -> Dict[str, float]:
        """{peer: median score} of the peers with a score on this dataset and budget."""
        out = {s: self.median(s, dataset, budget) for s in self.systems if s != AUTOML}
        return {s: v for s, v in out.items() if v is not None}

    def max_wall_ratio(self, system: str, datasets: List[str], budget: float) -> Optional[float]:
        walls = [r["wall_s"] / budget for d in datasets for r in self.records(system, d, budget)
                 if r.get("wall_s") is not None]
        return max(walls) if walls else None


def verdict(metric: str, ours: float, peers: Dict[str, float]) -> str:
    best = best_of(metric, peers.values())
    if all(better(metric, ours, v) for v in peers.values()):
        return "win"
    if within(metric, ours, best, "tie"):
        return "tie"
    return "loss" if within(metric, ours, best, "bad") else "BAD loss"


def fmt(v: Optional[float], metric: str) -> str:
    if v is None:
        return "fail"
    if rule(metric).kind == "abs":
        return f"{v:.4f}"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:#.4g}"  # 4 significant digits: 1% shows


def judge(res: Results, name: str, metric: str, budget: float) -> Optional[str]:
    """automl's verdict on one dataset: win / tie / loss / BAD loss, "automl failed" (every seed
    failed: counts as a miss), or None (no peer figure or no automl run to judge)."""
    peers, n_runs = res.peers(name, budget), len(res.records(AUTOML, name, budget))
    if not peers or not n_runs:
        return None
    med = res.median(AUTOML, name, budget)
    return "automl failed" if med is None else verdict(metric, med, peers)


def dataset_table(res: Results, suite: Dict[str, Dict[str, Any]], names: List[str], budget: float) -> List[str]:
    """Table 1's rows and the counts under it."""
    peers_shown = [s for s in res.systems if s != AUTOML]
    head = ["dataset", "metric", "automl median", "range (seeds)", *peers_shown, "best peer", "result",
            "seeds ≥ best peer", "max wall/budget", "max peak GiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    tally: Dict[str, List[str]] = {"reach": [], "win": [], "bad": [], "judged": [], "fail": []}
    per_seed: Dict[int, List[int]] = {}
    for name in names:
        m = suite[name]["metric"]
        sc, peers = res.scores(AUTOML, name, budget), res.peers(name, budget)
        runs = res.records(AUTOML, name, budget)
        rng = f"{fmt(min(sc.values()), m)}–{fmt(max(sc.values()), m)} ({len(sc)})" if sc else "-"
        if len(runs) > len(sc):
            rng += f", {len(runs) - len(sc)} failed"
        best = best_of(m, peers.values()) if peers else None
        result, reach = judge(res, name, m, budget), "-"
        if result is not None:
            tally["judged"].append(name)
            for key, hit in (("reach", result in ("win", "tie")), ("win", result == "win"),
                             ("bad", result == "BAD loss"), ("fail", result == "automl failed")):
                if hit:
                    tally[key].append(name)
            ok = {int(r.get("seed") or 0): r.get("score") is not None and within(m, r["score"], best, "tie")
                  for r in runs}  # a failed seed is a miss
            for seed, v in ok.items():
                per_seed.setdefault(seed, [0, 0])[0] += int(v)
                per_seed[seed][1] += 1
            reach = f"{sum(ok.values())}/{len(ok)}"
        wall = res.max_wall_ratio(AUTOML, [name], budget)
        peak = max((r["peak_rss_gib"] for r in runs if r.get("peak_rss_gib") is not None), default=None)
        cells = [name, m, fmt(res.median(AUTOML, name, budget), m) if runs else "-", rng,
                 *[fmt(res.median(s, name, budget), m) if res.records(s, name, budget) else "-" for s in peers_shown],
                 fmt(best, m) if best is not None else "-", "**BAD loss**" if result == "BAD loss" else result or "-",
                 reach, f"{wall:.2f}" if wall is not None else "-", f"{peak:.2f}" if peak is not None else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""] + summary_lines(res, names, budget, tally, per_seed)


def summary_lines(res: Results, names: List[str], budget: float, tally: Dict[str, List[str]],
                  per_seed: Dict[int, List[int]]) -> List[str]:
    n = len(tally["judged"])
    out = [f"- at least the best peer (median over seeds, within tolerance): **{len(tally['reach'])}/{n}**",
           f"- strictly better than every peer: **{len(tally['win'])}/{n}**",
           f"- bad losses: **{len(tally['bad'])}**" + (f" ({', '.join(tally['bad'])})" if tally["bad"] else "")]
    if tally["fail"]:
        out.append(f"- automl failed on every seed (counted as misses): {', '.join(tally['fail'])}")
    if per_seed:
        out.append("- per run (each seed alone, at least the best peer): "
                   + ", ".join(f"seed {s}: {a}/{b}" for s, (a, b) in sorted(per_seed.items())))
    walls = []
    for s in res.systems:
        w = res.max_wall_ratio(s, names, budget)
        if w is not None:
            walls.append(f"{s} {w:.2f}")
    out.append("- max wall time / budget (from process start): " + ", ".join(walls))
    return out


def normalised(res: Results, name: str, metric: str, system: str, budget: float) -> Optional[float]:
    """A system's median on a dataset relative to the best any system reached there (1 = best; fail = 0)."""
    everything = [v for s in res.systems for b in res.budgets for v in [res.median(s, name, b)] if v is not None]
    if not res.records(system, name, budget) or not everything:
        return None
    v = res.median(system, name, budget)
    if v is None:
        return 0.0
    best = best_of(metric, everything)
    if rule(metric).greater_is_better:
        return v / best if best else 0.0
    return best / v if v else 1.0


def curve_table(res: Results, suite: Dict[str, Dict[str, Any]], names: List[str]) -> List[str]:
    """Table 2: median normalised score per system and budget, then automl's counts per budget."""
    cols = [f"{b:g} s" for b in res.budgets]
    lines = ["| system | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for s in res.systems:
        cells = []
        for b in res.budgets:
            vals = [v for d in names for v in [normalised(res, d, suite[d]["metric"], s, b)] if v is not None]
            cells.append(f"{statistics.median(vals):.4f} ({len(vals)})" if vals else "-")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    reach, wins, walls = [], [], []
    for b in res.budgets:
        verdicts = [v for d in names for v in [judge(res, d, suite[d]["metric"], b)] if v is not None]
        reach.append(f"{sum(v in ('win', 'tie') for v in verdicts)}/{len(verdicts)}")
        wins.append(f"{sum(v == 'win' for v in verdicts)}/{len(verdicts)}")
        w = res.max_wall_ratio(AUTOML, names, b)
        walls.append(f"{w:.2f}" if w is not None else "-")
    lines += ["| automl ≥ best peer | " + " | ".join(reach) + " |",
              "| automl strict wins | " + " | ".join(wins) + " |",
              "| automl max wall/budget | " + " | ".join(walls) + " |"]
    return lines


def anytime_table(res: Results, suite: Dict[str, Dict[str, Any]], names: List[str],
                  suite_dir: Optional[Path] = None) -> List[str]:
    """Table 3: automl's median at each budget against its median at the next smaller one, per
    dataset; "worse" when beyond the metric's tie tolerance (the issue's "a longer budget must not
    give a worse model beyond noise"). Where the runs kept their test predictions (run_suite.py's
    pred_path) for the same seeds at both budgets, also the paired bootstrap over the test rows
    (``paired_bootstrap``): "beyond noise" when its 95% interval is below zero. Empty with fewer
    than two budgets."""
    budgets = [b for b in res.budgets if any(res.records(AUTOML, d, b) for d in names)]
    if len(budgets) < 2:
        return []
    cols = [f"{b:g} s" for b in budgets]
    lines = ["| dataset | metric | " + " | ".join(cols) + " | longer budget worse | paired bootstrap, 95% |",
             "|---|---|" + "---|" * (len(cols) + 2)]
    worse_total = noisy_total = 0
    for d in names:
        metric = suite[d]["metric"]
        meds = [res.median(AUTOML, d, b) for b in budgets]
        if all(m is None for m in meds):
            continue
        worse = [f"{b:g} s" for prev, cur, b in zip(meds, meds[1:], budgets[1:])
                 if prev is not None and cur is not None and not within(metric, cur, prev, "tie")]
        worse_total += bool(worse)
        boot = [bootstrap_cell(res, suite, d, prev, cur, suite_dir) for prev, cur in zip(budgets, budgets[1:])]
        noisy_total += any(b.endswith("worse beyond noise") for b in boot)
        lines.append(f"| {d} | {metric} | " + " | ".join(fmt(m, metric) if m is not None else "-" for m in meds)
                     + f" | {', '.join(worse) or '-'} | {'; '.join(b for b in boot if b) or '-'} |")
    lines += ["", f"- datasets where a longer budget is worse than the one before beyond the tie tolerance: "
                  f"**{worse_total}**",
              f"- datasets where it is worse beyond noise by the paired bootstrap over the test rows: **{noisy_total}** "
              "(only where the runs kept their predictions)"]
    return lines


def bootstrap_cell(res: Results, suite: Dict[str, Dict[str, Any]], dataset: str, short: float, long: float,
                   suite_dir: Optional[Path]) -> str:
    """The paired bootstrap of ``long`` against ``short`` on ``dataset`` as a table cell ('' without
    kept predictions for a common seed)."""
    import pandas as pd

    if suite_dir is None:
        return ""
    def kept(budget):
        return {s: Path(r["pred_path"]) for (sy, d, s, b), r in res.runs.items()
                if sy == AUTOML and d == dataset and b == budget and r.get("score") is not None
                and r.get("pred_path") and Path(r["pred_path"]).exists()}
    a, b = kept(short), kept(long)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return ""
    spec = suite[dataset]
    y = pd.read_csv(suite_dir / dataset / "test.csv")[spec["target"]]  # score() casts the labels
    positive = res.runs[(AUTOML, dataset, seeds[0], long)].get("positive_class")
    pairs = [(pd.read_csv(a[s]), pd.read_csv(b[s])) for s in seeds]
    mid, lo, hi = paired_bootstrap(spec["metric"], y, pairs, positive)
    verdict = "worse beyond noise" if hi < 0 else "better beyond noise" if lo > 0 else "within noise"
    return f"{long:g} vs {short:g} s ({len(seeds)} seeds): {mid:+.4g} [{lo:+.4g}, {hi:+.4g}] {verdict}"


def paired_bootstrap(metric: str, y_true, pairs: List[Tuple[Any, Any]], positive=None, resamples: int = 500,
                     seed: int = 0) -> Tuple[float, float, float]:
    """The change of the test score from the first to the second prediction of each pair (one pair
    per seed: a smaller and a longer budget's predictions, DataFrames with predicted_label and
    proba_*), averaged over the pairs, on the test rows and on ``resamples`` bootstrap resamples of
    them (the same rows for every pair). Returns (change, 2.5th, 97.5th percentile), signed so
    that a positive change is better (error metrics negated): how much of a difference the test
    rows can tell from noise."""
    import numpy as np

    sign = -1.0 if not rule(metric).greater_is_better else 1.0
    y = np.asarray(y_true)

    # labels and class probabilities of each prediction, taken apart once, not per resample
    parts = [[(p["predicted_label"].to_numpy(), probas(p)) for p in pair] for pair in pairs]

    def change(rows) -> float:
        out = []
        for pair in parts:
            s = [score(metric, y[rows], labels[rows], proba.iloc[rows], positive) for labels, proba in pair]
            out.append(sign * (s[1] - s[0]))
        return float(np.mean(out))

    rng = np.random.default_rng(seed)
    n = len(y)
    boot = [change(rng.integers(0, n, n)) for _ in range(resamples)]
    return change(np.arange(n)), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def provenance(res: Results) -> str:
    dates = sorted(r["date"] for r in res.runs.values() if r.get("date"))
    cores = sorted({str(r["cores"]) for r in res.runs.values() if r.get("cores")})
    when = f"{dates[0]} to {dates[-1]}" if dates else "dates not recorded"
    return f"Measured {when}; cores: {', '.join(cores) or 'not recorded'}."


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--automl", nargs="+", required=True, help="run_suite.py JSONL file(s)")
    ap.add_argument("--peers", nargs="+", default=[], help="run_peers.py JSONL file(s)")
    ap.add_argument("--suite", default=str(DEFAULT_SUITE))
    ap.add_argument("--budget", type=float, default=60, help="the budget of the per-dataset table")
    ap.add_argument("--group", default="all", help="core | broad | all")
    ap.add_argument("--datasets", default="")
    ap.add_argument("--out", default=None, help="also write the Markdown here")
    args = ap.parse_args(argv)
    suite = load_suite(Path(args.suite))
    names = select(suite, args.datasets, args.group)
    rows = [r for r in read_jsonl(args.automl) if (r.get("system") or AUTOML) == AUTOML]
    rows += [r for r in read_jsonl(args.peers) if (r.get("system") or AUTOML) != AUTOML]
    res = Results(index([r for r in rows if r["dataset"] in names]))
    md = [f"### automl and the peers at {args.budget:g} s ({len(names)} datasets)", "", provenance(res), ""]
    md += dataset_table(res, suite, names, args.budget)
    md += ["", "### Score against budget (median normalised score over datasets; n datasets)", ""]
    md += curve_table(res, suite, names)
    anytime = anytime_table(res, suite, names, Path(args.suite))
    if anytime:
        md += ["", "### automl against its own smaller budget (median over seeds)", ""] + anytime
    md += ["", "Tolerances: " + "; ".join(f"{k} {'±' if r.kind == 'abs' else ''}{r.tie:g}"
                                          f"{' relative' if r.kind == 'rel' else ''} (bad {r.bad:g})"
                                          for k, r in METRICS.items() if k in {suite[n]['metric'] for n in names})]
    text = "\n".join(md) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
