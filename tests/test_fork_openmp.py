"""Forked workers after OpenMP: a second search in one process must not hang its XGBoost trials.

GNU OpenMP's thread pool does not survive a fork once the parent has used it; XGBoost then hangs
in the child. automl checks with a canary child and searches on Ray instead. Each case runs in a
fresh interpreter, so the state of this pytest process does not matter.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

CANARY = textwrap.dedent("""
    import numpy as np, xgboost
    from automl.search.local import openmp_survives_fork
    before = openmp_survives_fork()
    xgboost.XGBClassifier(n_estimators=5, n_jobs=1).fit(np.random.rand(200, 3), np.arange(200) % 2)
    print(before, openmp_survives_fork())
""")

TWO_FITS = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    import automl
    from conftest import make_binary_frame
    df = make_binary_frame(300)
    runs = []
    for i in range(2):
        run = automl.fit(df, target="y", output_dir={out!r} + f"/run{{i}}", seed=i,
                         search={{"executor": "local"}}, budget={{"time_limit_s": 45, "max_trials": 3}},
                         candidates={{"include": ["xgboost"]}}, report=False, notebooks=False)
        runs.append({{k: run.summary.get(k) for k in ("n_trials_completed", "n_trials_stopped", "fallback")}})
    print("RESULT", json.dumps(runs))
""")


def python(code: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


def test_the_canary_sees_openmp_used_before_the_fork():
    r = python(CANARY, 120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["True", "False"]  # safe in a fresh process, broken after one fit


@pytest.mark.slow
def test_a_second_fit_in_one_process_still_completes_its_xgboost_trials(tmp_path):
    from pathlib import Path

    code = TWO_FITS.format(tests=str(Path(__file__).parent), out=str(tmp_path))
    r = python(code, 400)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = json.loads(r.stdout.split("RESULT", 1)[1])
    for run in runs:  # before the check, the second fit's trials hung until stopped: 0 completed
        assert run["n_trials_completed"] >= 1 and not run.get("fallback"), runs
    assert "searching on Ray instead" in r.stderr
