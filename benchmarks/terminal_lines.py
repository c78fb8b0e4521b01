"""What the README's demo prints off a terminal, and how long Ray takes to start; prints the numbers.

    python benchmarks/terminal_lines.py [--budget 20] [--executor ray] [--repeats 1] [--ray-start-delay 0]

Runs `automl fit` (the digits demo) through pipes, as CI or `automl fit > log` would, and reports
per run: the lines on stdout plus stderr (issue 17: at most 20), how many of them are progress
lines, Ray's measured start-up (the fit's `ray ready in N s`), whether the search fell back to
forked workers, the trial counts and the wall time. ``--ray-start-delay`` sets
AUTOML_RAY_START_DELAY_S (fault injection, docs/search.md).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def run_once(budget: float, executor: str, delay: float, workdir: Path) -> dict:
    out = workdir / f"run-{time.time_ns()}"
    env = {**os.environ, "AUTOML_RAY_START_DELAY_S": str(delay)} if delay else dict(os.environ)
    started = time.time()
    res = subprocess.run([str(BIN / "automl"), "fit", f"budget.time_limit_s={budget}", f"search.executor={executor}",
                          f"output_dir={out}"], capture_output=True, text=True, env=env, cwd=str(workdir))
    wall = time.time() - started
    lines = (res.stdout + res.stderr).splitlines()
    ready = re.search(r"ray ready in ([0-9.]+) s", res.stderr)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    return {"exit": res.returncode, "lines": len(lines), "progress_lines": sum("trials: " in ln for ln in lines),
            "ray_start_s": float(ready.group(1)) if ready else None,
            "fell_back": "searching without Ray (forked workers) instead" in res.stderr,
            "trials": summary.get("n_trials"), "completed": summary.get("n_trials_completed"),
            "fallback_model": summary.get("fallback"), "ray_log": (out / "logs" / "ray.log").exists(),
            "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--executor", default="ray", choices=["auto", "ray", "local"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--ray-start-delay", type=float, default=0.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="automl-terminal-") as tmp:
        for i in range(args.repeats):
            print(json.dumps({"run": i, "budget_s": args.budget, "executor": args.executor,
                              **run_once(args.budget, args.executor, args.ray_start_delay, Path(tmp))}))


if __name__ == "__main__":
    main()
