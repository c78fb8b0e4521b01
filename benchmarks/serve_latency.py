"""Endpoint latency and throughput of `automl serve` on the digits model; prints the numbers.

    python benchmarks/serve_latency.py [--run-dir DIR] [--trial ID] [--requests 2000] [--seconds 30]
        [--clients 16] [--repeats 3] [--backend uvicorn|ray] [--replicas N]

Without --run-dir it first runs `automl fit` on the digits demo with a small budget. Then it
starts `automl serve` on a free loopback port and measures, from a client on the same machine:
single-row CSV requests one after another (p50/p99 latency) and ``--clients`` concurrent
keep-alive clients for ``--seconds`` (requests/s, errors). Each measurement is repeated
``--repeats`` times and the median is printed. Targets: p50 <= 5 ms, p99 <= 20 ms, >= 500 req/s
with zero errors.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

import psutil

BIN = Path(sys.executable).parent


def automl_cmd() -> List[str]:
    exe = BIN / "automl"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "automl"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fit_digits(out: str, budget_s: int) -> str:
    print(f"fitting the digits model (budget.time_limit_s={budget_s}) into {out} ...", flush=True)
    subprocess.run(automl_cmd() + ["fit", f"output_dir={out}", f"budget.time_limit_s={budget_s}"], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def csv_rows(run_dir: str, n: int = 200) -> List[bytes]:
    import pandas as pd

    summary = json.loads(Path(run_dir, "summary.json").read_text())
    df = pd.read_parquet(Path(run_dir, "data", "train.parquet"))[summary["features"]].head(n)
    return [(",".join(str(v) for v in row) + "\n").encode() for row in df.itertuples(index=False, name=None)]


class Client:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams (little client-side CPU)."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, body: bytes) -> Tuple[int, bytes]:
        head = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def sequential(port: int, rows: List[bytes], n: int) -> List[float]:
    c = Client(port)
    await c.connect()
    times = []
    for i in range(n):
        t = time.perf_counter()
        status, _ = await c.post(rows[i % len(rows)])
        times.append(time.perf_counter() - t)
        if status != 200:
            raise SystemExit(f"request {i} answered {status}")
    c.close()
    return times


async def concurrent(port: int, rows: List[bytes], clients: int, seconds: float) -> Tuple[int, int, float]:
    ok = errors = 0
    stop = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        nonlocal ok, errors
        c = Client(port)
        await c.connect()
        i = k
        while time.perf_counter() < stop:
            try:
                status, _ = await c.post(rows[i % len(rows)])
                ok += status == 200
                errors += status != 200
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                errors += 1
                c.close()
                c = Client(port)
                await c.connect()
            i += clients
        c.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    return ok, errors, time.perf_counter() - started


def server_cpu(server: "psutil.Process") -> float:
    """CPU seconds of the server and its children (robust to other load on a shared machine)."""
    total = 0.0
    for p in [server] + server.children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def pct(values: List[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))] * 1000


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    import urllib.request

    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"automl serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("automl serve did not answer /ping in time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir")
    ap.add_argument("--fit-budget-s", type=int, default=60)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", default="uvicorn", choices=["uvicorn", "ray"])
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--trial", help="serve this trial instead of the run's model")
    args = ap.parse_args()
    run_dir = args.run_dir or fit_digits(tempfile.mkdtemp(prefix="digits-"), args.fit_budget_s)
    rows = csv_rows(run_dir)
    port = free_port()
    cmd = automl_cmd() + ["serve", f"run_dir={run_dir}", f"port={port}", f"serve.backend={args.backend}",
                          f"serve.replicas={args.replicas}"] + ([f"trial={args.trial}"] if args.trial else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        asyncio.run(sequential(port, rows, 200))  # warm-up
        server = psutil.Process(proc.pid)
        p50s, p99s, rates, errs, cpu_seq, cpu_conc = [], [], [], [], [], []
        for r in range(args.repeats):
            c0 = server_cpu(server)
            times = asyncio.run(sequential(port, rows, args.requests))
            cpu_seq.append((server_cpu(server) - c0) / args.requests * 1000)
            p50s.append(pct(times, 50))
            p99s.append(pct(times, 99))
            c0 = server_cpu(server)
            ok, errors, took = asyncio.run(concurrent(port, rows, args.clients, args.seconds))
            cpu_conc.append((server_cpu(server) - c0) / max(1, ok) * 1000)
            rates.append(ok / took)
            errs.append(errors)
            print(f"repeat {r + 1}: single-row p50 {p50s[-1]:.2f} ms, p99 {p99s[-1]:.2f} ms "
                  f"(server CPU {cpu_seq[-1]:.2f} ms/request) | {args.clients} clients x {args.seconds:.0f} s: "
                  f"{rates[-1]:.0f} req/s, {errors} errors (server CPU {cpu_conc[-1]:.2f} ms/request)", flush=True)
        print(json.dumps({
            "backend": args.backend, "trial": args.trial or "(run's model)", "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
            "requests": args.requests, "repeats": args.repeats,
            "p50_ms_median": round(statistics.median(p50s), 2), "p99_ms_median": round(statistics.median(p99s), 2),
            "clients": args.clients, "seconds": args.seconds,
            "req_per_s_median": round(statistics.median(rates), 1), "errors_total": int(sum(errs)),
            "server_cpu_ms_per_request_sequential": round(statistics.median(cpu_seq), 3),
            "server_cpu_ms_per_request_concurrent": round(statistics.median(cpu_conc), 3),
        }))
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """End a server started for a measurement: SIGTERM, then SIGKILL after 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


if __name__ == "__main__":
    main()
