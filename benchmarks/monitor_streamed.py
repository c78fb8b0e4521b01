"""`automl monitor`'s data checks on one pandas frame against the same checks streamed over the
files in Ray tasks (``predict.backend=ray``, docs/monitor.md): the driver's peak RSS and wall
time, and whether the violations agree. Not a test: it prints numbers.

    python benchmarks/monitor_streamed.py [--rows 1000000] [--files 8] [--workdir DIR]

It writes a generated batch (6 numeric, 2 categorical columns, ``--rows`` rows, drifted in one
column) as ``--files`` Parquet shards and a baseline built from 20,000 rows of the undrifted
generator; then, in a fresh subprocess each (so each peak RSS is its own), checks the batch with
``check_batch(read_batch(files))`` and with ``streamed_batch`` + ``check_statistics`` (Ray local,
its workers not counted: the point is the driver).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = r"""
import json, resource, sys, time
from automl.monitor.checks import check_batch, check_statistics
from automl.monitor.sources import read_batch
path, work = sys.argv[1], sys.argv[2]
stats, cons = json.load(open(f"{work}/statistics.json")), json.load(open(f"{work}/constraints.json"))
files = json.load(open(f"{work}/files.json"))
started = time.time()
if path == "pandas":
    result = check_batch(read_batch(files), stats, cons)
else:
    from automl.monitor.streamed import streamed_batch
    from automl.raystart import init_ray
    init_ray(None, None)
    started = time.time()
    batch = streamed_batch(files, stats, cons)
    result = check_statistics(batch.statistics, batch.columns, batch.evidence, stats, cons)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall_s": time.time() - started, "peak_rss_mb": peak_mb,
                  "violations": [v.to_dict() for v in result.violations]}))
"""


def _frame(n: int, seed: int, drift: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(6)})
    df["c0"] = rng.choice(["a", "b", "c", "d"], size=n)
    df["c1"] = rng.choice([f"k{i}" for i in range(50)], size=n)
    if drift:
        df["x0"] += 1.0
    return df


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    from automl.monitor.baseline import build_baseline

    work = Path(args.workdir or tempfile.mkdtemp(prefix="monitor_streamed_"))
    work.mkdir(parents=True, exist_ok=True)
    base = _frame(20_000, 0, False)
    stats, cons = build_baseline(base, {c: "numeric" if c.startswith("x") else "categorical" for c in base})
    (work / "statistics.json").write_text(json.dumps(stats))
    (work / "constraints.json").write_text(json.dumps(cons))
    files = []
    per = -(-args.rows // args.files)
    for i in range(args.files):
        f = work / f"part-{i:03d}.parquet"
        _frame(min(per, args.rows - i * per), 100 + i, True).to_parquet(f, index=False)
        files.append(str(f))
    (work / "files.json").write_text(json.dumps(files))
    size = sum(Path(f).stat().st_size for f in files) / 2**20
    print(f"{args.rows} rows in {args.files} Parquet files ({size:.0f} MB on disk)")
    out = {}
    for path in ("pandas", "ray"):
        proc = subprocess.run([sys.executable, "-c", CHILD, path, str(work)], capture_output=True, text=True,
                              check=True)
        out[path] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{'path':<8}{'wall_s':>8}{'driver peak RSS MB':>20}{'violations':>12}")
    for path, r in out.items():
        print(f"{path:<8}{r['wall_s']:>8.1f}{r['peak_rss_mb']:>20.0f}{len(r['violations']):>12}")
    print("same violations:", out["pandas"]["violations"] == out["ray"]["violations"])


if __name__ == "__main__":
    main()
