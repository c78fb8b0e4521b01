"""Large data: a generated 1,000,000-row x 30-column table through the real `automl fit`.

    python benchmarks/large_data.py [--rows 1000000] [--time-limit 600] [--cpus 2] [--workdir DIR]

The table (CSV) mixes 18 numeric columns (normal, log-normal, integer, one with huge values),
10 categorical columns (3 to 5,000 levels), a date column and a binary target, with about 5%
missing values per column; it is written in chunks so the generator itself stays small.
The fit runs as a subprocess (`automl fit ... ray.num_cpus=CPUS`); this script samples the
memory of its whole process tree (driver, Ray's raylet/GCS and every worker) twice a second and
prints the peak RSS summed over the tree (issue 20's strict reading; an overestimate: shared
object-store pages count once per process that maps them), the peak PSS (shared pages split
between processes), the driver's own peak, the largest single process's peak and, at the tree's
peak, its largest processes with their RSS and USS (private pages), then every phase of the run
with its time, from the run's log lines (each carries its own duration; the gap to the previous
line is shown too).
Bounds checked: wall time <= 1.1 x the budget (issue 20: the clock holds at any size; the time
plan's records from summary.json are printed: how early the search ended for the predicted refit,
and any fallback of the final model) and the tree's summed peak RSS <= 6 GiB (issue 20).
Exit 0 when the fit succeeded within both bounds.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

GIB = 1024 ** 3
RSS_BOUND = 6 * GIB  # issue 20: the whole tree's summed RSS
WALL_BOUND = 1.1  # x budget.time_limit_s


def generate(path: Path, rows: int, seed: int = 0, chunk: int = 100_000) -> None:
    """Write the table in chunks; the target depends on several columns (learnable, noisy)."""
    rng = np.random.default_rng(seed)
    levels = {f"cat_{i}": n for i, n in enumerate([3, 5, 8, 12, 20, 50, 100, 500, 1000, 5000])}
    names = {k: np.array([f"{k}_v{j}" for j in range(n)]) for k, n in levels.items()}
    first = True
    with open(path, "w") as fh:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            cols = {}
            for i in range(12):
                cols[f"num_{i}"] = rng.normal(size=n)
            for i in range(3):
                cols[f"lognum_{i}"] = rng.lognormal(mean=2, sigma=1, size=n)
            cols["count_0"] = rng.poisson(3, size=n)
            cols["count_1"] = rng.integers(0, 1000, size=n)
            cols["huge"] = rng.normal(size=n) * 1e12
            for k, m in levels.items():
                # Zipf-like level frequencies, as in real data
                p = 1.0 / np.arange(1, m + 1)
                cols[k] = names[k][rng.choice(m, size=n, p=p / p.sum())]
            cols["date"] = (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, size=n), "D")
                            ).strftime("%Y-%m-%d")
            logit = (1.2 * cols["num_0"] - 0.8 * cols["num_1"] + 0.5 * np.log(cols["lognum_0"])
                     + (cols["cat_0"] == "cat_0_v1") * 1.0 - (cols["cat_3"] == "cat_3_v0") * 0.7
                     + rng.normal(scale=1.0, size=n) - 1.0)
            df = pd.DataFrame(cols)
            for c in df.columns:
                df.loc[rng.random(n) < 0.05, c] = np.nan
            df["target"] = np.where(logit > 0, "yes", "no")
            df.to_csv(fh, index=False, header=first)
            first = False


class TreeSampler:
    """Peak memory of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.5):
        import psutil

        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_rss = self.peak_pss = self.peak_driver = self.peak_single = 0
        self.peak_at_s = 0.0
        self._t0 = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._n = 0
        self.peak_parts: list = []

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root] + self.root.children(recursive=True)
            except psutil.Error:
                break
            full = self._n % 4 == 0  # PSS/USS read smaps: every 4th sample only
            rss = pss = 0
            parts = []
            for p in procs:
                try:
                    info = p.memory_full_info() if full else p.memory_info()
                    rss += info.rss
                    pss += getattr(info, "pss", 0)
                    parts.append((info.rss, getattr(info, "uss", 0), p.name()[:40]))
                    self.peak_single = max(self.peak_single, info.rss)
                    if p.pid == self.root.pid:
                        self.peak_driver = max(self.peak_driver, info.rss)
                except psutil.Error:
                    continue
            if rss > self.peak_rss:
                self.peak_parts = sorted(parts, reverse=True)[:8]
                self.peak_at_s = time.time() - self._t0
                self.peak_rss = rss
            if full:
                self.peak_pss = max(self.peak_pss, pss)
            self._n += 1
            self._stop.wait(self.interval_s)

    def start(self) -> "TreeSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--time-limit", type=float, default=600)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/automl-large-data")
    ap.add_argument("--extra", nargs="*", default=[], help="more `automl fit` overrides")
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"table_{args.rows}.csv"
    if not data.exists():
        t = time.time()
        generate(data, args.rows)
        print(f"generated {data} ({data.stat().st_size / 1e6:.0f} MB) in {time.time() - t:.0f} s", flush=True)
    out = work / f"run_{args.rows}_{int(time.time())}"
    exe = Path(sys.executable).parent / "automl"
    cmd = [str(exe), "fit", f"data.path={data}", "data.target=target", f"output_dir={out}",
           f"budget.time_limit_s={args.time_limit}", f"ray.num_cpus={args.cpus}", *args.extra]
    print("command:", " ".join(cmd), flush=True)
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid).start()
    lines = []

    def pump_stdout() -> None:
        for line in proc.stdout:
            lines.append((time.time() - started, "stdout", line.rstrip()))

    reader = threading.Thread(target=pump_stdout, daemon=True)
    reader.start()
    for line in proc.stderr:
        stamp = time.time() - started
        lines.append((stamp, "stderr", line.rstrip()))
        if line.startswith("[automl]"):
            print(f"{stamp:7.1f}s {line.rstrip()}", flush=True)
    rc = proc.wait()
    reader.join(timeout=5)
    sampler.stop()
    wall = time.time() - started

    print("\n== phases (time since start | gap since the previous log line | line) ==")
    prev = 0.0
    for stamp, stream, line in lines:
        if stream == "stderr" and line.startswith("[automl]") and not line.startswith("[automl] trials:"):
            print(f"{stamp:7.1f}s  +{stamp - prev:6.1f}s  {line[9:][:150]}")
            prev = stamp
    print("\n== result ==")
    for stamp, stream, line in lines:
        if stream == "stdout" or "error" in line:
            print(line[:300])
    print(f"rows: {args.rows:,}  time limit: {args.time_limit:.0f} s  cpus: {args.cpus}  exit code: {rc}")
    print(f"wall time: {wall:.0f} s")
    print(f"peak RSS, process tree (sum; shared pages counted per process): {sampler.peak_rss / GIB:.2f} GiB")
    print(f"peak PSS, process tree (shared pages split): {sampler.peak_pss / GIB:.2f} GiB")
    print(f"peak RSS, driver process: {sampler.peak_driver / GIB:.2f} GiB")
    print(f"peak RSS, largest single process: {sampler.peak_single / GIB:.2f} GiB")
    print(f"at the tree's peak ({sampler.peak_at_s:.0f} s), largest processes (RSS GiB / USS GiB, USS when sampled): "
          + ", ".join(f"{name} {r / GIB:.2f}/{u / GIB:.2f}" for r, u, name in sampler.peak_parts))
    print_plans(out)
    ratio = wall / args.time_limit
    print(f"wall / budget: {ratio:.3f} (bound <= {WALL_BOUND}: {'met' if ratio <= WALL_BOUND else 'NOT met'})")
    ok = rc == 0 and sampler.peak_rss <= RSS_BOUND and ratio <= WALL_BOUND
    met = 'met' if sampler.peak_rss <= RSS_BOUND else 'NOT met'
    print(f"bound peak RSS (tree sum) <= {RSS_BOUND / GIB:.0f} GiB: {met}")
    return 0 if ok else 1


def print_plans(run: Path) -> None:
    """The time and memory plans' records in the run's summary.json (docs/scale.md)."""
    import json

    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        print("no summary.json")
        return
    final = (summary.get("best") or {}).get("final_model") or {}
    print(f"search clock: {summary.get('search_clock')}")
    print(f"final model: {final.get('kind')} ({final.get('reason')}); time plan: {final.get('time_plan')}")
    print(f"memory plan: {summary.get('memory_plan')}")
    print(f"wall time recorded in summary.json: {summary.get('wall_time_s')} s")


if __name__ == "__main__":
    sys.exit(main())
