"""Single-row latency of the exported ONNX graph (onnxruntime) beside the endpoint's; prints both.

    python benchmarks/onnx_latency.py [--run-dir DIR] [--trial ID] [--n 500] [--budget-s 30]

Without --run-dir it first fits the digits demo with the XGBoost candidate only (a model the
export converts) into a temporary folder. Then:

- `automl export format=onnx` writes the graph; onnxruntime (CPU, one thread) runs it on one row
  at a time, ``--n`` times: the median of ``session.run`` alone, and with the row's inputs built
  from a one-row DataFrame (automl.export.onnx_model.onnx_feed);
- `automl serve` (uvicorn) starts on a free loopback port; ``--n`` single-row CSV requests, one
  after another on a keep-alive connection: the median and p99 round trip seen by the client.

Needs `pip install 'automl[onnx]'`. The rows are training rows of the run.
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_latency import automl_cmd, free_port  # noqa: E402 (the same start-up as the endpoint benchmark)


def fit_digits(out: str, budget_s: int) -> str:
    print(f"fitting digits with xgboost only (budget.time_limit_s={budget_s}) into {out} ...", flush=True)
    drop = [f"~candidates.{c}" for c in ("dpp1-linear", "dpp2-mlp", "dpp3-random_forest", "dpp4-extra_trees",
                                          "dpp5-svm", "dpp6-knn", "dpp7-lightgbm", "dpp8-catboost")]
    subprocess.run(automl_cmd() + ["fit", f"output_dir={out}", f"budget.time_limit_s={budget_s}", *drop],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def onnx_latency(path: str, rows, n: int) -> dict:
    import onnx
    import onnxruntime as ort

    from automl.export.onnx_model import onnx_feed

    model = onnx.load(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feeds = [onnx_feed(rows.iloc[[i % len(rows)]], model) for i in range(min(n, len(rows)))]
    for feed in feeds[:20]:  # warm-up
        session.run(None, feed)
    run_ms, full_ms = [], []
    for i in range(n):
        t0 = time.perf_counter()
        session.run(None, feeds[i % len(feeds)])
        run_ms.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        session.run(None, onnx_feed(rows.iloc[[i % len(rows)]], model))
        full_ms.append((time.perf_counter() - t0) * 1e3)
    return {"run": statistics.median(run_ms), "run_p99": percentile(run_ms, 0.99),
            "feed_and_run": statistics.median(full_ms), "feed_and_run_p99": percentile(full_ms, 0.99)}


def endpoint_latency(run_dir: str, trial: str | None, rows, n: int) -> dict:
    port = free_port()
    cmd = automl_cmd() + ["serve", f"run_dir={run_dir}", f"port={port}"] + ([f"trial={trial}"] if trial else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bodies = [(",".join("" if v != v else str(v) for v in row) + "\n").encode()
              for row in rows.itertuples(index=False, name=None)]
    try:
        conn = None
        for _ in range(1200):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/ping")
                res = conn.getresponse()
                res.read()
                if res.status == 200:
                    break
            except OSError:
                pass
            conn = None
            time.sleep(0.1)
        if conn is None:
            raise SystemExit("automl serve did not start")
        times = []
        for i in range(n + 20):
            t0 = time.perf_counter()
            conn.request("POST", "/invocations", body=bodies[i % len(bodies)], headers={"Content-Type": "text/csv"})
            res = conn.getresponse()
            res.read()
            if res.status != 200:
                raise SystemExit(f"the endpoint answered {res.status}")
            if i >= 20:  # after the warm-up
                times.append((time.perf_counter() - t0) * 1e3)
        return {"median": statistics.median(times), "p99": percentile(times, 0.99)}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir")
    ap.add_argument("--trial")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--budget-s", type=int, default=30)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="automl-onnx-latency-")
    run_dir = args.run_dir or fit_digits(str(Path(tmp) / "run"), args.budget_s)
    out = str(Path(tmp) / "model.onnx")
    subprocess.run(automl_cmd() + ["export", f"run_dir={run_dir}", "format=onnx", f"output={out}"]
                   + ([f"trial={args.trial}"] if args.trial else []), check=True)
    summary = json.loads(Path(run_dir, "summary.json").read_text())
    rows = pd.read_parquet(Path(run_dir, "data", "train.parquet"))[summary["features"]].head(200)
    onnx_ms = onnx_latency(out, rows, args.n)
    http_ms = endpoint_latency(run_dir, args.trial, rows, args.n)
    print(f"single-row latency over {args.n} rows, model of {run_dir} ({Path(out).stat().st_size} bytes of ONNX)")
    print(f"{'onnxruntime session.run':<40} median {onnx_ms['run']:7.3f} ms  p99 {onnx_ms['run_p99']:7.3f} ms")
    print(f"{'onnxruntime, inputs from a DataFrame':<40} median {onnx_ms['feed_and_run']:7.3f} ms  "
          f"p99 {onnx_ms['feed_and_run_p99']:7.3f} ms")
    print(f"{'automl serve (CSV over HTTP, loopback)':<40} median {http_ms['median']:7.3f} ms  p99 {http_ms['p99']:7.3f} ms")


if __name__ == "__main__":
    main()
