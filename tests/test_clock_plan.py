"""The clock after the search (automl/selection/timeplan.py): the refit's time predicted from the
trials' fold times, the search ending early to leave it, and the fallback when it would not fit.

End to end through the real CLI with a model that is slow by construction (its fit sleeps per
training row: tests/clock_memory_algorithms.py): trials fit on a small sample of rows
(``validation.max_train_rows``), so the folds are quick and the refit on all rows is predicted far
past the budget; the run falls back to the best trial's kept fold model, says so in one log line
and in summary.json, and completes.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from automl.search.trial import TrialContext
from automl.selection.timeplan import REFIT_MARGIN, refit_seconds, rows_within, scaled_seconds
from conftest import automl_cli, make_binary_frame

TESTS_DIR = str(Path(__file__).resolve().parent)
SPACE = "# test-only: the sleeper's one parameter, fixed\nparams: {}\nfixed: {model.seconds_per_row: 0.02}\nportfolio:\n  - {}\n"


def _ctx(rows: int, folds: list) -> TrialContext:
    return TrialContext(X=None, y=np.zeros(rows), folds=folds, column_types={}, candidates={},
                        problem_type="binary", metric="auc")


def test_refit_time_scales_the_fold_time_as_n_log_n():
    assert scaled_seconds(1.0, 1000, 2000) == pytest.approx(2 * math.log(2000) / math.log(1000))
    five_fold = _ctx(1000, [(np.arange(800), np.arange(200))] * 5)
    # fit_s covers 5 folds of 800 rows: one fold 2 s, scaled from 800 to 1000 rows
    assert refit_seconds(five_fold, 10.0) == pytest.approx(2.0 * 1000 * math.log(1000) / (800 * math.log(800)))
    sampled = _ctx(100_000, [(np.arange(1000), np.arange(1000, 21_000))])  # holdout, trials on a 1,000-row sample
    assert refit_seconds(sampled, 1.0) > 100  # 100x the rows, more than 100x the time


def test_rows_within_is_the_largest_sample_predicted_to_fit():
    ctx = _ctx(100_000, [(np.arange(1000), np.arange(1000, 21_000))])
    n = rows_within(ctx, 1.0, 30.0)
    assert refit_seconds(ctx, 1.0, n) * REFIT_MARGIN <= 30.0 < refit_seconds(ctx, 1.0, n + 1) * REFIT_MARGIN
    assert rows_within(ctx, 1e-6, 30.0) == 100_000


def _env():
    return {"PYTHONPATH": os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


@pytest.mark.slow
def test_refit_predicted_past_the_deadline_falls_back_to_the_kept_fold_model(tmp_path):
    make_binary_frame(3000, seed=5).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "space.yaml").write_text(SPACE)
    res = automl_cli("fit", f"data.path={tmp_path}/train.csv", "data.target=y", f"output_dir={tmp_path}/run",
                     "candidates.include=[dpp1-linear]", "candidates.dpp1-linear.algorithm=clock_memory_algorithms:slow_per_row",
                     f"candidates.dpp1-linear.search_space={tmp_path}/space.yaml",
                     # a holdout split whose trials fit 60 of the 2,400 training rows: 1.2 s a fold, and a
                     # refit on all 3,000 rows predicted at about 140 s (it would sleep 60 s), past the budget;
                     # once a trial completes the search ends (its predicted refit leaves it no time)
                     "validation.cv_max_rows=500", "validation.max_train_rows=60",
                     "budget.time_limit_s=40", "budget.max_trials=6", "search.executor=local", "report=false",
                     "notebooks=false", env=_env(), cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "final model: the refit on all 3000 rows was predicted at" in res.stderr, res.stderr[-3000:]
    assert "the best trial's 1 kept fold model(s), bagged" in res.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    final = summary["best"]["final_model"]
    assert final["kind"] == "bagged" and final["requested"] == "refit"
    plan = final["time_plan"]
    assert plan["predicted_refit_s"] > plan["time_left_s"] and plan["scaling"] == "n log n"
    assert plan["rows"] == 3000 and plan["fold_rows"] == 60 and "kept fold model" in plan["decision"]
    # the search left the predicted time after it: it ended early, logged once
    assert summary["search_clock"]["ended_early_s"] > 0 and "search ends" in res.stderr
    # only the best trial's fold model stays in the run folder
    kept = list((tmp_path / "run" / "trials").glob("*/fold_models.*"))
    assert [p.parent.name for p in kept] == [summary["best"]["trial_id"]]
    import automl

    pred = automl.load(str(tmp_path / "run"), allow_pickle=True).predict(make_binary_frame(20, seed=9))
    assert len(pred) == 20


def test_time_ample_keeps_the_refit_on_all_rows(tiny_run):
    summary = tiny_run.summary
    assert summary["best"]["final_model"]["kind"] == "refit"
    assert "time_plan" not in summary["best"]["final_model"]  # recorded only when it changed the model
    assert summary["search_clock"]["ended_early_s"] == 0
    assert summary["memory_plan"]["skipped"] == {}


def test_without_kept_fold_models_a_refit_past_the_deadline_uses_the_largest_sample_that_fits(tmp_path):
    """k-fold trials keep no fold model; when neither the refit nor bagging the k folds fits, the
    chosen configuration is refit on a sample (the largest predicted to fit, at least 1,000 rows)."""
    import time

    from automl.problem import ProblemInfo
    from automl.search.trial import evaluate
    from automl.selection.final import select_final
    from automl.stages.search import leaderboard_frame
    from test_rerank import KNN, _regression_ctx

    ctx = _regression_ctx(n=3000)
    ctx.output_dir = str(tmp_path)
    rows = []
    for i, k in enumerate([5, 15]):
        config = {"candidate": KNN.name, f"{KNN.name}:model.n_neighbors": k, f"{KNN.name}:model.weights": "uniform"}
        rows.append({**evaluate(config, ctx, trial_id=f"t{i}"), "trial_id": f"t{i}", "config": config})
        rows[-1]["fit_s"] = 1000.0  # as if each trial's 5 folds had taken 1,000 s: the refit cannot fit
    info = ProblemInfo("regression", "rmse", False, "test")
    sel = select_final(ctx, leaderboard_frame(rows, ctx.candidates, info), rows, info, time.time() + 60,
                       str(tmp_path), {}, ensemble=False)
    plan = sel.final_model["time_plan"]
    assert sel.final_model["kind"] == "refit" and plan["sample_rows"] == 1000 and "sample of 1000" in plan["decision"]
    assert plan["predicted_refit_s"] > plan["time_left_s"]
    assert sel.model.steps[-1][1].n_samples_fit_ == 1000  # the model really saw 1,000 rows


def test_a_refit_predicted_under_the_grace_runs_on_all_rows_even_with_no_time_left(tmp_path):
    """A refit predicted at a fraction of a second is done on all rows even when the deadline has
    passed: a sample of 1,000 rows would save less time than that and drop most of the data
    (kershaw at 60 s: a 0.12 s refit of 2,551 rows became a 1,000-row sample after a long re-rank)."""
    import time

    from automl.problem import ProblemInfo
    from automl.search.trial import evaluate
    from automl.selection.final import select_final
    from automl.selection.timeplan import REFIT_GRACE_S
    from automl.stages.search import leaderboard_frame
    from test_rerank import KNN, _regression_ctx

    ctx = _regression_ctx(n=3000)
    ctx.output_dir = str(tmp_path)
    config = {"candidate": KNN.name, f"{KNN.name}:model.n_neighbors": 5, f"{KNN.name}:model.weights": "uniform"}
    row = {**evaluate(config, ctx, trial_id="t0"), "trial_id": "t0", "config": config}
    row["fit_s"] = 0.05  # five folds in 0.05 s: the refit on all rows is predicted far under the grace
    info = ProblemInfo("regression", "rmse", False, "test")
    sel = select_final(ctx, leaderboard_frame([row], ctx.candidates, info), [row], info, time.time() - 1.0,
                       str(tmp_path), {}, ensemble=False)
    assert REFIT_GRACE_S <= 1.0
    assert sel.final_model["kind"] == "refit" and "time_plan" not in sel.final_model, sel.final_model
    assert sel.model.steps[-1][1].n_samples_fit_ == 3000  # all rows, not a 1,000-row sample


def test_the_model_write_is_planned_per_tree_not_only_per_megabyte():
    """skops writes a forest tree by tree: ~2.6 ms of CPU a tree (dump and type audit) whatever its
    size, so 300 two-level trees (0.3 MB pickled) take ~0.8 s to write where a per-MB plan said
    milliseconds (hpc at 60 s: a 10-member ensemble of forests took 9.5 s to dump under cProfile).
    A trial records its model's tree count and the plan charges for each tree."""
    from automl.candidates.candidate import Candidate
    from automl.search.trial import evaluate
    from automl.selection.build import SAVE_S_PER_PART, save_seconds
    from test_rerank import _regression_ctx

    forest = Candidate("dpp3-random_forest", "random_forest", {"scale": "none"}, {"params": {}, "fixed": {}})
    ctx = _regression_ctx(n=400)
    ctx.candidates = {forest.name: forest}
    config = {"candidate": forest.name, f"{forest.name}:model.n_estimators": 300,
              f"{forest.name}:model.max_depth": 2}
    row = evaluate(config, ctx, trial_id="t0")
    assert row["status"] == "completed", row.get("error")
    assert row["model_parts"] == 300
    assert save_seconds(ctx, row["model_size_bytes"], row["model_parts"]) >= 300 * SAVE_S_PER_PART >= 0.5


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: BLAS runs one thread anyway")
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_every_fit_runs_blas_on_one_thread_like_the_trials(tmp_path, executor):
    """The refit's time is predicted from the trials' fold times, measured with one BLAS thread per
    trial (Ray sets that in its workers). The final refit in the driver used every core's BLAS
    thread: OpenBLAS on two threads fitted happiness' logistic regression 6x slower than on one
    (3.0 s vs 0.5 s a fold), so a refit predicted at 0.8 s took 11 s and the run overran."""
    make_binary_frame(400, seed=3).to_csv(tmp_path / "train.csv", index=False)
    log = tmp_path / "blas.log"
    (tmp_path / "space.yaml").write_text("# test-only: nothing to tune\nparams: {}\nportfolio:\n  - {}\n")
    res = automl_cli("fit", f"data.path={tmp_path}/train.csv", "data.target=y", f"output_dir={tmp_path}/run",
                     "candidates.include=[dpp1-linear]", "candidates.dpp1-linear.algorithm=clock_memory_algorithms:blas_recorder",
                     f"candidates.dpp1-linear.search_space={tmp_path}/space.yaml", "budget.time_limit_s=30", "budget.max_trials=2", f"search.executor={executor}", "report=false",
                     "notebooks=false", env={**_env(), "AUTOML_TEST_BLAS_LOG": str(log)}, cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    fits = [line.split() for line in log.read_text().splitlines()]
    assert any(int(rows) == 400 for _, rows, _ in fits), fits  # the final refit on all rows is among them
    assert {int(threads) for _, _, threads in fits} == {1}, fits


def test_the_exit_of_a_local_ray_is_kept_back_from_the_budget(monkeypatch):
    """The budget counts from process start to exit; stopping the Ray this process started takes
    1.2-1.4 s after the last step (ray.shutdown waits for its raylet and GCS), so the steps end
    that much earlier, from where Ray starts. A cluster (ray.address) or the local search has no
    such exit. Where the trials run is decided once (choose_executor)."""
    import time

    import automl.raystart
    import automl.stages.search as search_stage
    from automl.config import compose_config
    from automl.stages.env import EXIT_S, RAY_EXIT_S, RunEnv
    from automl.stages.search import choose_executor, start_executor

    monkeypatch.setattr(search_stage, "fork_is_safe", lambda warn=False: True)  # this pytest process may have used OpenMP

    def env(budget, *overrides, spent=0.0):
        now = time.time()
        return RunEnv(compose_config([f"budget.time_limit_s={budget}", *overrides]), "", {}, now - spent,
                      now - spent + budget - EXIT_S, None)

    assert choose_executor(env(60)) == (True, True)  # (start Ray, may leave it after a slow start)
    assert choose_executor(env(60, "search.executor=ray")) == (True, False)
    assert choose_executor(env(60, "ray.address=ray://host:10001")) == (True, False)
    assert choose_executor(env(60, "search.executor=local")) == (False, False)
    assert choose_executor(env(10)) == (False, False)  # below search.local_below_s
    assert choose_executor(env(30, spent=5.5)) == (False, False)  # 5.5 s in (notebooks): Ray would starve the search
    monkeypatch.setattr(search_stage, "fork_is_safe", lambda warn=False: False)  # OpenMP ran: forks would hang
    assert choose_executor(env(10)) == (True, False)

    monkeypatch.setattr(automl.raystart, "init_ray", lambda *args, **kwargs: None)  # the wiring, not Ray itself
    local_ray, cluster = env(60), env(60, "ray.address=ray://host:10001")
    ends = local_ray.deadline, cluster.deadline
    for e in (local_ray, cluster):
        assert start_executor(e, "", may_fork=False) is False
    assert ends[0] - local_ray.deadline == pytest.approx(RAY_EXIT_S - EXIT_S) and RAY_EXIT_S > EXIT_S
    assert cluster.deadline == ends[1]


def test_the_report_reserve_covers_its_slow_side_at_30_s_and_its_median_from_60_s():
    """The report's time (1.3-4.7 s, median 2.0, suite at 60 s) against what the budget's 10%
    tolerance absorbs: 3 s at 30 s, 6 s at 60 s. The search time grows with the budget throughout."""
    from automl.stages.search import (REPORT_RESERVE_LONG_S, REPORT_RESERVE_S, SEARCH_TEARDOWN_S, report_reserve_s,
                                      search_reserve_s)

    assert report_reserve_s(30) == pytest.approx(REPORT_RESERVE_S + SEARCH_TEARDOWN_S)
    assert report_reserve_s(15) == pytest.approx(REPORT_RESERVE_S / 2 + SEARCH_TEARDOWN_S)
    for budget in (60, 300, 3600):
        assert report_reserve_s(budget) == pytest.approx(REPORT_RESERVE_LONG_S + SEARCH_TEARDOWN_S)
    assert REPORT_RESERVE_LONG_S < report_reserve_s(45) - SEARCH_TEARDOWN_S < REPORT_RESERVE_S
    budgets = np.arange(10, 400, 0.5)
    search = budgets - np.array([search_reserve_s(b) for b in budgets])
    assert np.all(np.diff(search) > 0)
