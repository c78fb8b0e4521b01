"""Small budgets (issue 17, point 6): search.executor=auto measures Ray's start-up and searches
in forked workers instead when the start-up leaves too little of the budget; a 30 s budget on the
digits ends with a model even when Ray starts slowly (fault injection: AUTOML_RAY_START_DELAY_S)."""
from __future__ import annotations

import json

import pytest

from conftest import automl_cli
from automl.config import compose_config
from automl.stages.env import EXIT_S, RAY_EXIT_S
from automl.stages.search import (MIN_RAY_SEARCH_S, RAY_START_EXPECTED_S, RAY_START_SHARE, auto_may_fork,
                                  ray_fallback_reason, ray_not_worth_starting)


def _cfg(*overrides: str):
    return compose_config(["budget.time_limit_s=30", *overrides])


def test_auto_leaves_ray_when_its_start_up_takes_over_a_quarter_of_the_budget_or_starves_the_search(monkeypatch):
    import automl.stages.search as search_stage

    assert RAY_START_SHARE == 0.25 and MIN_RAY_SEARCH_S == 10
    slow = ray_fallback_reason(30, start_s=12.7, search_left_s=1.0)
    assert slow == "Ray took 12.7 s to start, more than 25% of the 30 s budget"
    starved = ray_fallback_reason(30, start_s=5.0, search_left_s=6.0)
    assert starved == "Ray's start-up (5.0 s) left the search 6.0 s, less than 10 s"
    assert ray_fallback_reason(30, start_s=5.0, search_left_s=15.0) == ""  # Ray is kept
    # Only where auto may fork: asked for Ray, or for a cluster, Ray is never left.
    monkeypatch.setattr(search_stage, "fork_is_safe", lambda warn=False: True)  # this pytest process may have used OpenMP
    assert auto_may_fork(_cfg())
    assert not auto_may_fork(_cfg("search.executor=ray")) and not auto_may_fork(_cfg("ray.address=auto"))
    # Forked workers that would hang (OpenMP used in this process, tests/test_fork_openmp.py): Ray is kept.
    monkeypatch.setattr(search_stage, "fork_is_safe", lambda warn=False: False)
    assert not auto_may_fork(_cfg())


def test_auto_does_not_start_ray_when_its_usual_start_up_would_starve_the_search():
    """The fall-back above pays Ray's start-up and shutdown (4.7 s and 2 s at the median on 2
    cores) before it leaves Ray: at 30 s, suite runs started Ray, then searched 9.8 s in forked
    workers. The same rule, applied to Ray's expected start-up and shutdown before starting it,
    goes to the forked workers at once."""
    cost = RAY_START_EXPECTED_S + RAY_EXIT_S - EXIT_S
    starved = ray_not_worth_starting(search_left_s=15.5)
    assert starved == (f"Ray's expected start-up and shutdown ({RAY_START_EXPECTED_S:.1f} + {RAY_EXIT_S - EXIT_S:.1f} s) "
                       f"would leave the search {15.5 - cost:.1f} s, less than 10 s")
    assert ray_not_worth_starting(search_left_s=MIN_RAY_SEARCH_S + cost) == ""


@pytest.mark.slow
def test_a_30_s_budget_searches_without_starting_ray(tmp_path):
    res = automl_cli("fit", "budget.time_limit_s=30", "budget.max_trials=4", f"output_dir={tmp_path}/run",
                     cwd=str(tmp_path), timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "would leave the search" in res.stderr and "ray ready" not in res.stderr, res.stderr[-3000:]
    assert not (tmp_path / "run" / "logs" / "ray.log").exists()  # Ray never started
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (tmp_path / "run" / "model.skops").is_file() and summary["test_score"] > 0.9
    assert summary["fallback"] == (summary["n_trials_completed"] == 0)  # a loaded machine may finish no trial


@pytest.mark.slow
def test_a_40_s_budget_with_ray_starting_slowly_ends_with_a_model_and_says_why(tmp_path):
    """Ray's start-up is delayed by 9 s (more than a quarter of 40 s): the fit falls back to forked
    workers, says so, and ends with a model (a searched one, unless the machine is so loaded that
    nothing of the budget is left for a search: then the fallback model, tests/test_fallback.py)."""
    res = automl_cli("fit", "budget.time_limit_s=40", "budget.max_trials=4", f"output_dir={tmp_path}/run",
                     env={"AUTOML_RAY_START_DELAY_S": "9"}, cwd=str(tmp_path), timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "more than 25% of the 40 s budget: searching without Ray (forked workers) instead" in res.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (tmp_path / "run" / "model.skops").is_file() and summary["test_score"] > 0.9
    assert summary["fallback"] == (summary["n_trials_completed"] == 0)
    assert (tmp_path / "run" / "logs" / "ray.log").is_file()  # Ray did start: its messages are kept
