"""The zero-shot portfolio builder (benchmarks/build_portfolio.py) learns from train splits only."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import make_binary_frame

ROOT = Path(__file__).resolve().parents[1]
BUILDER = ROOT / "benchmarks" / "build_portfolio.py"

# Any open() of a test split, by Python or by a library through it, ends the process with 99.
GUARD = """
import os, runpy, sys
def guard(event, args):
    if event == "open" and args and str(args[0]).endswith("test.csv"):
        os.write(2, b"opened a test split\\n"); os._exit(99)
sys.addaudithook(guard)
sys.argv = [{builder!r}] + {argv!r}
runpy.run_path({builder!r}, run_name="__main__")
"""


def fake_suite(root: Path) -> Path:
    """Two small datasets, each with train.csv and test.csv, and a suite.yaml."""
    binary = make_binary_frame(240, seed=1).drop(columns=["customer_id"])
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 3))
    reg = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "t": 3 * x[:, 0] - x[:, 1] + rng.normal(size=200)})
    spec = {"bin": {"target": "y", "problem": "binary", "metric": "auc"},
            "reg": {"target": "t", "problem": "regression", "metric": "rmse", "group": "broad"}}
    for name, df in (("bin", binary), ("reg", reg)):
        (root / name).mkdir(parents=True)
        df.iloc[:160].to_csv(root / name / "train.csv", index=False)
        df.iloc[160:].to_csv(root / name / "test.csv", index=False)
    (root / "suite.yaml").write_text(yaml.safe_dump(spec))
    return root


def guarded(argv, cwd: Path) -> subprocess.CompletedProcess:
    code = GUARD.format(builder=str(BUILDER), argv=[str(a) for a in argv])
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_guard_catches_a_test_split(tmp_path):
    suite = fake_suite(tmp_path / "suite")
    code = GUARD.split("sys.argv")[0] + f"open({str(suite / 'bin' / 'test.csv')!r}).read()\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 99 and "opened a test split" in r.stderr


@pytest.mark.slow
def test_grid_and_choice_never_open_a_test_file(tmp_path):
    suite = fake_suite(tmp_path / "suite")
    grid = tmp_path / "grid.jsonl"
    r = guarded(["grid", "--suite", suite, "--algorithms", "linear", "--configs", "2", "--max-rows", "150",
                 "--folds", "2", "--grid", grid], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in grid.read_text().splitlines()]
    assert {r["dataset"] for r in rows} == {"bin", "reg"}
    assert all(r["status"] == "completed" and r["n_rows"] <= 150 for r in rows)
    # the linear portfolio's entries + init + 2 random draws, the same configurations on both datasets
    portfolio = yaml.safe_load((ROOT / "search_spaces" / "linear.yaml").read_text())["portfolio"]
    assert len([r for r in rows if r["dataset"] == "bin"]) == len(portfolio) + 3
    again = guarded(["grid", "--suite", suite, "--algorithms", "linear", "--configs", "2", "--grid", grid], tmp_path)
    assert again.returncode == 0 and len(grid.read_text().splitlines()) == len(rows)  # resumes, adds nothing
    chosen = guarded(["choose", "--grid", grid, "--size", "3"], tmp_path)
    assert chosen.returncode == 0, chosen.stderr[-2000:]
    portfolio = yaml.safe_load(chosen.stdout)["linear"]
    assert 1 <= len(portfolio) <= 3 and all(isinstance(p, dict) for p in portfolio)


def test_greedy_choice_covers_the_datasets():
    sys.path.insert(0, str(BUILDER.parent))
    from build_portfolio import greedy_portfolio

    # config 0 is fair everywhere, 1 is best on A only, 2 best on B only
    errors = {"A": {("x", 0): 0.5, ("x", 1): 0.0, ("x", 2): 1.5},
              "B": {("x", 0): 0.5, ("x", 1): 1.5, ("x", 2): 0.0},
              "C": {("x", 0): 0.2, ("x", 1): 1.0, ("x", 2): 1.0}}
    assert greedy_portfolio(errors, "x", 1) == [0]  # the best single configuration on average
    assert greedy_portfolio(errors, "x", 3) == [0, 1, 2]
    assert greedy_portfolio({"A": {("x", 0): 0.0, ("x", 1): 0.0}}, "x", 3) == [0]  # no gain: stop
