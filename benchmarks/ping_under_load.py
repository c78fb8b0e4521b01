"""How fast `/ping` answers while `automl serve` handles large requests; prints the latencies.

    python benchmarks/ping_under_load.py [--run-dir DIR] [--rows 22000] [--requests 10] [--format csv|json|both]
        [--serve-arg KEY=VALUE ...]

Without --run-dir it first runs `automl fit` on the digits demo with a small budget. Then it
starts `automl serve` on a free loopback port, and from this process: one thread posts
``--requests`` bodies of ``--rows`` rows each (rows of the training data, repeated), one after
another, while another process sends GET /ping every 10 ms on a keep-alive connection. It prints
the median, 99th percentile and maximum /ping latency seen during the large requests (target:
max under 50 ms), and the large requests' status codes and mean time. A first line gives the same
figures with no large request (``--idle-s`` seconds): the machine's own jitter, for comparison.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_latency import automl_cmd, fit_digits, free_port  # noqa: E402  (benchmarks are scripts)


def large_bodies(run_dir: str, rows: int) -> Dict[str, bytes]:
    """The first training rows repeated to ``rows`` rows, as a CSV body and a JSON body."""
    import pandas as pd

    summary = json.loads(Path(run_dir, "summary.json").read_text())
    df = pd.read_parquet(Path(run_dir, "data", "train.parquet"))[summary["features"]]
    df = pd.concat([df] * (rows // len(df) + 1), ignore_index=True).head(rows)
    csv_body = df.to_csv(index=False, header=False).encode()
    json_body = json.dumps({"instances": json.loads(df.to_json(orient="records"))}).encode()
    return {"text/csv": csv_body, "application/json": json_body}


def wait_ping(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"automl serve exited with {proc.returncode}")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit(f"{url}/ping did not answer in {timeout} s")


def pinger(url: str, stop: "mp.synchronize.Event", out: "mp.Queue") -> None:
    """GET /ping every 10 ms on a keep-alive connection until ``stop``; puts the latencies (ms).
    It runs in a process of its own, so the client posting 20 MB bodies cannot delay it."""
    pings: List[float] = []
    with requests.Session() as s:
        while not stop.is_set():
            t = time.perf_counter()
            s.get(f"{url}/ping", timeout=30)
            pings.append((time.perf_counter() - t) * 1000)
            time.sleep(0.01)
    out.put(pings)


def measure(url: str, body: bytes, content_type: str, n_requests: int, idle_s: float = 0.0) -> Dict[str, float]:
    """Ping latencies (ms) while ``n_requests`` large requests are answered one after another
    (none: for ``idle_s`` seconds)."""
    if n_requests:  # one request first, unmeasured: lazy imports and thread start-up happen once
        requests.post(f"{url}/invocations", data=body, headers={"Content-Type": content_type}, timeout=300)
    stop, out = mp.Event(), mp.Queue()
    proc = mp.Process(target=pinger, args=(url, stop, out), daemon=True)
    proc.start()
    time.sleep(idle_s or 1.0)
    statuses, times = [], []
    with requests.Session() as s:
        for _ in range(n_requests):
            t = time.perf_counter()
            res = s.post(f"{url}/invocations", data=body, headers={"Content-Type": content_type}, timeout=300)
            times.append(time.perf_counter() - t)
            statuses.append(res.status_code)
    stop.set()
    pings = sorted(out.get(timeout=60))
    proc.join(10)
    return {"pings": len(pings), "median_ms": statistics.median(pings), "p99_ms": pings[int(0.99 * (len(pings) - 1))],
            "max_ms": pings[-1], "top5_ms": pings[-5:], "request_s": statistics.mean(times) if times else 0.0,
            "statuses": sorted(set(statuses))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir")
    ap.add_argument("--rows", type=int, default=22000)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--format", choices=("csv", "json", "both"), default="both")
    ap.add_argument("--fit-budget-s", type=int, default=20)
    ap.add_argument("--idle-s", type=float, default=10.0)
    ap.add_argument("--serve-arg", action="append", default=[], help="extra `automl serve` key=value (repeatable)")
    args = ap.parse_args()
    run_dir = args.run_dir or fit_digits(tempfile.mkdtemp(prefix="ping-under-load-"), args.fit_budget_s)
    bodies = large_bodies(run_dir, args.rows)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(automl_cmd() + ["serve", f"run_dir={run_dir}", f"port={port}",
                                            f"max_body_bytes={2 * max(len(b) for b in bodies.values())}",
                                            *args.serve_arg],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ping(url, proc)
        r = measure(url, b"", "", 0, idle_s=args.idle_s)
        print(f"{'idle':16s} no large request for {args.idle_s:g} s: /ping over {r['pings']} pings: "
              f"median {r['median_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms", flush=True)
        kinds = {"csv": ["text/csv"], "json": ["application/json"], "both": ["text/csv", "application/json"]}
        for kind in kinds[args.format]:
            r = measure(url, bodies[kind], kind, args.requests)
            print(f"{kind:16s} {args.rows} rows x {args.requests} requests ({len(bodies[kind]) / 1e6:.1f} MB each, "
                  f"{r['request_s']:.2f} s each, HTTP {r['statuses']}): /ping over {r['pings']} pings: "
                  f"median {r['median_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms "
                  f"(5 slowest: {', '.join(f'{v:.0f}' for v in r['top5_ms'])})", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
