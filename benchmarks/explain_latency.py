"""Single-row latency of `automl serve` with and without the explanation code path; prints the numbers.

    python benchmarks/explain_latency.py [--run-dir DIR] [--requests 1000] [--repeats 3]

Without --run-dir it first runs `automl fit` on the digits demo with a small budget. It starts two
endpoints on the run, one after the other, and sends single-row CSV requests one after another
from a client on the same machine:

- ``default``: today's endpoint, requests without ``explain`` (what every client sends today);
- ``default, no explain check``: the same endpoint with the one per-request check that explain=true
  added (``explain_request``) replaced by a no-op: the default path as it was before the feature;
- ``explain=true``: requests that ask for the top-5 contributions per row.

Each is measured ``--repeats`` times, the two default variants interleaved; the medians of the
p50s are printed with the ratio of the two default paths (issue 19: within 10%).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_latency import csv_rows, fit_digits, free_port, pct, wait_ready  # noqa: E402


async def single_rows(port: int, rows: List[bytes], n: int, query: str = "") -> List[float]:
    """``n`` single-row POSTs one after another on one keep-alive connection; their latencies (s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    for i in range(n):
        body = rows[i % len(rows)]
        head = (f"POST /invocations{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        t = time.perf_counter()
        writer.write(head + body)
        status = int((await reader.readline()).split()[1])
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        times.append(time.perf_counter() - t)
        if status != 200:
            raise SystemExit(f"request {i} ({query or 'default'}) answered {status}")
    writer.close()
    return times


def serve(run_dir: str, port: int, no_check: bool) -> None:
    """The endpoint (this script re-run with --serve); ``no_check``: explain_request is a no-op."""
    from automl.serving import app
    from automl.serving.server import serve_options, serve_uvicorn

    if no_check:
        app.explain_request = lambda *args, **kwargs: None
    serve_uvicorn(serve_options([f"run_dir={run_dir}", f"port={port}"]))


def measure(run_dir: str, rows: List[bytes], no_check: bool, requests: int, query: str = "") -> float:
    port = free_port()
    cmd = [sys.executable, __file__, "--serve", run_dir, str(port)] + (["--no-check"] if no_check else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        asyncio.run(single_rows(port, rows, min(100, requests), query))  # warm-up
        return pct(asyncio.run(single_rows(port, rows, requests, query)), 50)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir")
    ap.add_argument("--fit-budget-s", type=int, default=60)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--explain-requests", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--serve", nargs=2, metavar=("RUN_DIR", "PORT"), help=argparse.SUPPRESS)
    ap.add_argument("--no-check", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.no_check)
        return
    run_dir = args.run_dir or fit_digits(tempfile.mkdtemp(prefix="digits-"), args.fit_budget_s)
    rows = csv_rows(run_dir)
    default, before, explained = [], [], []
    for r in range(args.repeats):
        default.append(measure(run_dir, rows, False, args.requests))
        before.append(measure(run_dir, rows, True, args.requests))
        explained.append(measure(run_dir, rows, False, args.explain_requests, "?explain=true"))
        print(f"repeat {r + 1}: single-row p50 default {default[-1]:.2f} ms | default, no explain check "
              f"{before[-1]:.2f} ms | explain=true {explained[-1]:.2f} ms", flush=True)
    summary = json.loads(Path(run_dir, "summary.json").read_text())
    d, b = statistics.median(default), statistics.median(before)
    print(json.dumps({
        "run_dir": run_dir, "model": (summary.get("best") or {}).get("candidate"), "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2), "requests": args.requests, "repeats": args.repeats,
        "p50_ms_default": round(d, 3), "p50_ms_default_no_explain_check": round(b, 3),
        "default_over_no_check": round(d / b, 3), "p50_ms_explain_true": round(statistics.median(explained), 3),
    }))


if __name__ == "__main__":
    main()
