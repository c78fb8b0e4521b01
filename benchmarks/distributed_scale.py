"""The distributed mode against a single-machine fit, as the table grows: rows against wall time,
memory and test score (docs/distributed.md). Not a test: it prints numbers.

    python benchmarks/distributed_scale.py [--rows 100000,1000000,10000000] [--budget 600]
        [--cpus 2] [--single-rows 1000000] [--test-rows 200000] [--workdir DIR] [--modes distributed,single]

For each row count it writes a generated table of that many rows x 30 columns (28 numeric, one
categorical, a binary target) as Parquet shards (250,000 rows each, written in chunks, so the
generator stays small) and one test table (``--test-rows``, another seed) that every fit scores
on (``data.test_path``). Then, in a subprocess each:

- ``distributed``: ``automl fit scale.mode=distributed`` on the whole table;
- ``single``: ``automl fit`` (scale.mode=single) on the first ``--single-rows`` rows (the whole
  table when it is smaller) as one Parquet file: the single-machine reference on a sample.

Each run's whole process tree (the driver, Ray's raylet and GCS and every worker) is sampled
twice a second: the driver's peak RSS, the largest peak of any one process, the peak of the
tree's summed RSS (an overestimate: shared object-store pages count once per process) and, every
2 s, the tree's PSS (shared pages split, the real footprint). The table printed at the end has,
per row count and mode: wall, wall/budget, those peaks and the test score (summary.json's
``test_score``, f1 of the positive class); then every process's peak RSS by name. The single
fit of a table larger than ``--single-rows`` is the same fit as the smaller table's (the same
seed writes the same first rows), so it runs once.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pandas as pd

GIB = 1024 ** 3
SHARD_ROWS = 250_000


def generate(folder: Path, rows: int, seed: int, shard_rows: int = SHARD_ROWS) -> Path:
    """``rows`` x 30 columns as Parquet shards under ``folder`` (kept when already there)."""
    if folder.exists() and any(folder.glob("*.parquet")):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, start in enumerate(range(0, rows, shard_rows)):
        n = min(shard_rows, rows - start)
        X = rng.normal(size=(n, 28))
        X[rng.random(size=X.shape) < 0.02] = np.nan
        color = rng.choice(["red", "green", "blue", "grey"], size=n)
        logit = (1.5 * np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 1]) + 0.5 * np.nan_to_num(X[:, 2] * X[:, 3])
                 + (color == "red") + rng.normal(scale=0.7, size=n))
        df = pd.DataFrame(X, columns=[f"f{j:02d}" for j in range(28)])
        df["color"] = color
        df["label"] = np.where(logit > 0, "yes", "no")
        df.to_parquet(folder / f"part-{i:05d}.parquet", index=False)
    return folder


def head_rows(src: Path, dest: Path, rows: int) -> Path:
    """The first ``rows`` rows of the shards in ``src`` as one Parquet file (a single-machine fit reads one file)."""
    if dest.exists():
        return dest
    parts, left = [], rows
    for f in sorted(src.glob("*.parquet")):
        if left <= 0:
            break
        parts.append(pd.read_parquet(f).head(left))
        left -= len(parts[-1])
    pd.concat(parts, ignore_index=True).to_parquet(dest, index=False)
    return dest


def process_name(p: "psutil.Process") -> str:
    """A short name for a process of the tree: Ray's title (``ray::Task``) when it set one, else the
    script it runs (``default_worker.py``, ``raylet``...)."""
    try:
        cmd, comm = p.cmdline(), p.name()
    except Exception:  # the process ended between listing and reading
        return "?"
    title = next((part for part in " ".join(cmd).split() if part.startswith("ray::")), None)
    if title or comm.startswith("ray::"):
        return title or comm
    script = next((Path(part).name for part in cmd[1:] if part.endswith(".py")), None)
    return (script or Path(cmd[0] if cmd else comm).name)[:40]


def watch(cmd: List[str], env: Dict[str, str], log_path: Path) -> Tuple[int, float, Dict[str, Any]]:
    """Run ``cmd``; (exit code, wall s, peaks in GiB: driver, largest process, summed tree RSS, tree PSS,
    and every process's peak RSS with its name).

    RSS is sampled twice a second; PSS (shared pages split between the processes that map them, so the
    tree's PSS is its real footprint) every 2 s, because reading it walks each process's page map.
    """
    import psutil

    started = time.time()
    with open(log_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        root = psutil.Process(proc.pid)
        per_pid: Dict[int, int] = {}
        names: Dict[int, str] = {proc.pid: "ray::driver (automl fit)"}
        tree_peak = pss_peak = 0
        tick = 0
        while proc.poll() is None:
            try:
                procs = [root] + root.children(recursive=True)
            except psutil.Error:
                break
            rss, pss = {}, 0
            for p in procs:
                try:
                    rss[p.pid] = p.memory_info().rss
                    if tick % 4 == 0:
                        pss += p.memory_full_info().pss
                except psutil.Error:
                    continue
                known = names.get(p.pid, "")
                if not known.startswith("ray::") or known == "ray::IDLE":  # keep the first task title seen
                    name = process_name(p)
                    names[p.pid] = name if not (known and name == "ray::IDLE") else known
            tree_peak = max(tree_peak, sum(rss.values()))
            pss_peak = max(pss_peak, pss)
            for pid, value in rss.items():
                per_pid[pid] = max(per_pid.get(pid, 0), value)
            tick += 1
            time.sleep(0.5)
    every = sorted(((names.get(pid, "?"), round(v / GIB, 3)) for pid, v in per_pid.items()),
                   key=lambda item: -item[1])
    peaks = {"driver": per_pid.get(proc.pid, 0) / GIB, "largest": max(per_pid.values(), default=0) / GIB,
             "tree": tree_peak / GIB, "tree_pss": pss_peak / GIB,
             "processes": [{"name": n, "peak_rss_gib": v} for n, v in every if v >= 0.05]}
    return proc.returncode, time.time() - started, peaks


def fit(mode: str, data: Path, test: Path, out: Path, args: argparse.Namespace) -> Dict[str, Any]:
    """One fit in a subprocess; its record."""
    exe = Path(sys.executable).parent / "automl"
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "automl"]), "fit",
           f"data.path={data}", "data.target=label", f"data.test_path={test}", f"output_dir={out}",
           f"budget.time_limit_s={args.budget}", f"ray.num_cpus={args.cpus}", f"scale.mode={mode}", "overwrite=true"]
    rc, wall, peaks = watch(cmd, {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}, out.with_suffix(".log"))
    score = None
    if rc == 0:
        score = json.loads((out / "summary.json").read_text()).get("test_score")
    return {"mode": mode, "rc": rc, "wall_s": wall, "budget_s": args.budget, **peaks, "test_score": score}


def table(records: List[Dict[str, Any]]) -> str:
    head = (f"{'rows':>11} {'mode':>12} {'fit rows':>11} {'wall s':>8} {'wall/budget':>11} {'driver GiB':>10} "
            f"{'max proc GiB':>12} {'tree GiB':>9} {'tree PSS':>9} {'test f1':>8}")
    lines = [head, "-" * len(head)]
    for r in records:
        score = "failed" if r["rc"] else f"{r['test_score']:.4f}" if r["test_score"] is not None else "-"
        lines.append(f"{r['rows']:>11,} {r['mode']:>12} {r['fit_rows']:>11,} {r['wall_s']:>8.0f} "
                     f"{r['wall_s'] / r['budget_s']:>11.2f} {r['driver']:>10.2f} {r['largest']:>12.2f} "
                     f"{r['tree']:>9.2f} {r.get('tree_pss', 0):>9.2f} {score:>8}")
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="100000,1000000,10000000")
    ap.add_argument("--budget", type=float, default=600.0)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--single-rows", type=int, default=1_000_000)
    ap.add_argument("--test-rows", type=int, default=200_000)
    ap.add_argument("--modes", default="distributed,single")
    ap.add_argument("--workdir", default="benchmarks/results/distributed_scale")
    args = ap.parse_args(argv)
    work = Path(args.workdir).resolve()
    test = next(generate(work / "test", args.test_rows, seed=99, shard_rows=args.test_rows).glob("*.parquet"))
    records: List[Dict[str, Any]] = []
    single: Dict[int, Dict[str, Any]] = {}  # fit rows -> record: every table's first rows are the same rows
    for rows in [int(r) for r in args.rows.split(",")]:
        data = generate(work / f"table-{rows}", rows, seed=0)
        for mode in args.modes.split(","):
            fit_rows = rows if mode == "distributed" else min(rows, args.single_rows)
            if mode == "single" and fit_rows in single:  # the same seed writes the same first rows: one fit
                records.append({**single[fit_rows], "rows": rows, "same_fit_as": single[fit_rows]["rows"]})
                continue
            src = data if mode == "distributed" else head_rows(data, work / f"table-{rows}-head-{fit_rows}.parquet",
                                                                fit_rows)
            rec = {"rows": rows, "fit_rows": fit_rows, **fit(mode, src, test, work / f"run-{rows}-{mode}", args)}
            if mode == "single":
                single[fit_rows] = rec
            records.append(rec)
            print(json.dumps(rec), flush=True)
    print(table(records))
    for r in records:
        if "same_fit_as" not in r:
            top = ", ".join(f"{p['name']} {p['peak_rss_gib']:.2f}" for p in r.get("processes", [])[:12])
            print(f"{r['rows']:,} {r['mode']}: peak RSS per process (GiB): {top}")
    return 0 if all(r["rc"] == 0 for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
