"""Single-row latency of `automl serve` with and without the explanation code path; prints the numbers.

    python benchmarks/explain_latency.py [--run-dir DIR] [--before-tree REV|DIR] [--requests 1000]
        [--explain-requests 20] [--repeats 3] [--fit-budget-s 60]

Without --run-dir it first runs `automl fit` on the digits demo with a small budget (with
--before-tree, that tree's `automl fit`, so that both trees can load the run). It starts the
endpoints below on the run, one after the other, and sends single-row CSV requests one after
another from a client on the same machine:

- ``default``: today's endpoint, requests without ``explain`` (what every client sends today);
- ``default, no explain check``: the same endpoint with the one per-request check that explain=true
  added (``explain_request``) replaced by a no-op: the default path without that check;
- ``before``: with ``--before-tree``, the endpoint of another source tree serving the same run: a
  commit (exported with ``git archive``) or a folder holding one, e.g. 85de849, the commit before
  issue 19's work, for "the default latency stays within 10% of today's" taken literally;
- ``explain=true``: requests that ask for the top-5 contributions per row (``--explain-requests 0``
  skips them: on a model without an exact method a row takes seconds).

Each is measured ``--repeats`` times, the variants interleaved; the medians of the p50s are printed
with the ratio of today's default path to each other one (issue 19: within 10%, a ratio <= 1.10).
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
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_latency import csv_rows, fit_digits, free_port, pct, stop, wait_ready  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


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
    """The endpoint (this script re-run with --serve, automl from PYTHONPATH's tree or this
    checkout); ``no_check``: explain_request is a no-op."""
    from automl.serving import app
    from automl.serving.server import serve_options, serve_uvicorn

    if no_check:
        app.explain_request = lambda *args, **kwargs: None
    serve_uvicorn(serve_options([f"run_dir={run_dir}", f"port={port}"]))


def source_tree(spec: str) -> str:
    """A folder holding automl's sources: ``spec`` itself, or commit ``spec`` exported with git archive."""
    if Path(spec).is_dir():
        return str(Path(spec).resolve())
    tree = tempfile.mkdtemp(prefix=f"automl-tree-{spec}-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", spec], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    return tree


def fit_with(tree: str, out: str, budget_s: int) -> str:
    """The digits demo fitted by the source tree ``tree``: a run folder both trees can serve (an
    older tree refuses the model files of newer releases, never the other way round)."""
    print(f"fitting the digits model with {tree} (budget.time_limit_s={budget_s}) into {out} ...", flush=True)
    subprocess.run([sys.executable, "-m", "automl", "fit", f"output_dir={out}", f"budget.time_limit_s={budget_s}"],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": tree},
                   cwd=tempfile.gettempdir())
    return out


def measure(run_dir: str, rows: List[bytes], requests: int, query: str = "", no_check: bool = False,
            tree: Optional[str] = None) -> float:
    """The p50 (ms) of ``requests`` single-row requests to a fresh endpoint (``tree``: that source tree's)."""
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", run_dir, str(port)]
    cmd += ["--no-check"] if no_check else []
    env = {**os.environ, "PYTHONPATH": tree or str(ROOT)}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=tempfile.gettempdir())
    try:
        try:
            wait_ready(port, proc)
        except SystemExit as exc:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-1:]
            raise SystemExit(f"{exc} ({tree or 'this checkout'}): {tail[0] if tail else 'no output'}") from None
        asyncio.run(single_rows(port, rows, min(100, requests), query))  # warm-up
        return pct(asyncio.run(single_rows(port, rows, requests, query)), 50)
    finally:
        stop(proc)
        log.close()


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir")
    ap.add_argument("--before-tree", help="a commit or a source folder whose endpoint is 'before'")
    ap.add_argument("--fit-budget-s", type=int, default=60)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--explain-requests", type=int, default=20, help="0: do not measure explain=true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--serve", nargs=2, metavar=("RUN_DIR", "PORT"), help=argparse.SUPPRESS)
    ap.add_argument("--no-check", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.no_check)
        return
    tree = source_tree(args.before_tree) if args.before_tree else None
    run_dir = args.run_dir or (fit_with(tree, tempfile.mkdtemp(prefix="digits-"), args.fit_budget_s) if tree
                               else fit_digits(tempfile.mkdtemp(prefix="digits-"), args.fit_budget_s))
    rows = csv_rows(run_dir)
    p50: Dict[str, List[float]] = {"default": [], "no_check": [], "before": [], "explain": []}
    for r in range(args.repeats):
        p50["default"].append(measure(run_dir, rows, args.requests))
        p50["no_check"].append(measure(run_dir, rows, args.requests, no_check=True))
        if tree:
            p50["before"].append(measure(run_dir, rows, args.requests, tree=tree))
        if args.explain_requests > 0:
            p50["explain"].append(measure(run_dir, rows, args.explain_requests, "?explain=true"))
        print(f"repeat {r + 1}: single-row p50 " + " | ".join(f"{k} {v[-1]:.2f} ms" for k, v in p50.items() if v),
              flush=True)
    summary = json.loads(Path(run_dir, "summary.json").read_text())
    med = {k: round(statistics.median(v), 3) for k, v in p50.items() if v}
    out = {"run_dir": run_dir, "model": (summary.get("best") or {}).get("candidate"), "cpus": os.cpu_count(),
           "load_avg_1m": round(os.getloadavg()[0], 2), "requests": args.requests, "repeats": args.repeats,
           "p50_ms_default": med["default"], "p50_ms_default_no_explain_check": med["no_check"],
           "default_over_no_check": round(med["default"] / med["no_check"], 3)}
    if tree:
        out.update({"before_tree": args.before_tree, "p50_ms_before": med["before"],
                    "default_over_before": round(med["default"] / med["before"], 3)})
    if "explain" in med:
        out["p50_ms_explain_true"] = med["explain"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
