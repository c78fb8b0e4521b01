"""The fit flow's stages hand small typed values to each other (automl/stages/, automl/selection/)."""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from automl.candidates.generate import Candidate
from automl.config import compose_config
from automl.problem import ProblemInfo
from automl.search.trial import TrialContext, evaluate
from automl.selection.final import ENSEMBLE_ID, Selection, select_final
from automl.stages.plan import Plan, plan_candidates
from automl.stages.prepare import Prepared, prepare
from conftest import make_binary_frame

KEEP = ("dpp1-linear", "dpp6-knn")


def _cfg(out, **values):
    cands = {name: {"enabled": False} for name in compose_config([]).candidates if name not in KEEP}
    return compose_config(["search.executor=local", "budget.max_trials=4", "budget.time_limit_s=40",
                           f"output_dir={out}"],
                          values={"data": {"target": "y", "path": "<dataframe>"}, "candidates": cands, **values})


def test_prepare_and_plan_hand_typed_values_and_write_nothing(tmp_path):
    cfg = _cfg(tmp_path / "run")
    frame = make_binary_frame(n=120)
    frame.loc[:4, "y"] = None  # rows without a target are dropped by prepare, and counted
    prepared = prepare(cfg, frame)
    assert isinstance(prepared, Prepared) and isinstance(prepared.info, ProblemInfo)
    assert prepared.info.problem_type == "binary" and prepared.n_rows_read == 120 and len(prepared.df) == 115
    assert "customer_id" in prepared.column_types and "customer_id" not in prepared.features  # ID-like
    assert set(prepared.feature_types) == set(prepared.features) and "y" not in prepared.X.columns
    assert isinstance(prepared.y, np.ndarray) and len(prepared.y) == len(prepared.X) == len(prepared.df)
    assert prepared.test_df is None  # a frame, no test_fraction: no test rows held out
    assert len(prepared.folds) == cfg.validation.n_folds
    assert all(isinstance(tr, np.ndarray) and isinstance(va, np.ndarray) for tr, va in prepared.folds)
    plan = plan_candidates(cfg, prepared)
    assert isinstance(plan, Plan) and [c.name for c in plan.candidates] == list(KEEP)
    assert all(isinstance(c, Candidate) for c in plan.candidates) and set(plan.by_name) == set(KEEP)
    assert not (tmp_path / "run").exists()  # both stages only read


@pytest.mark.slow
def test_each_stage_hands_the_next_a_typed_value_and_publish_records_the_selection(tmp_path):
    """A tiny fit run stage by stage (local executor, no Ray): the search's outcome, the select
    stage's typed Selection, and summary.json's ``best`` written from its record."""
    from automl.search.resume import begin_run
    from automl.stages.env import RunEnv
    from automl.stages.publish import publish, write_inputs
    from automl.stages.search import SearchOutcome, search
    from automl.stages.select import select

    out = tmp_path / "run"
    out.mkdir()
    cfg = _cfg(out, data={"target": "y", "path": "<dataframe>", "test_fraction": 0.2})
    started = time.time()
    state = begin_run(cfg, str(out), {}, started)
    env = RunEnv(cfg, str(out), {}, started, started + float(cfg.budget.time_limit_s), state)
    prepared = prepare(cfg, make_binary_frame(n=200))
    plan = plan_candidates(cfg, prepared)
    state.save()
    write_inputs(env, prepared, plan)
    outcome = search(env, prepared, plan)
    assert isinstance(outcome, SearchOutcome) and isinstance(outcome.ctx, TrialContext)
    assert isinstance(outcome.leaderboard, pd.DataFrame) and len(outcome.rows) == len(outcome.leaderboard)
    assert sum(outcome.counts.values()) == len(outcome.rows) and outcome.counts.get("completed", 0) >= 1
    assert outcome.best["status"] == "completed"
    sel = select(env, prepared, outcome)
    assert isinstance(sel, Selection) and hasattr(sel.model, "predict_proba")
    assert sel.is_ensemble == (sel.trial_id == ENSEMBLE_ID) and sel.final_model["kind"] in ("refit", "bagged")
    assert (ENSEMBLE_ID in set(sel.leaderboard["trial_id"].astype(str))) == sel.is_ensemble
    assert sel.best_single()["trial_id"] != ENSEMBLE_ID and sel.best_single()["status"] == "completed"
    record = sel.record()
    assert list(record)[:3] == ["trial_id", "candidate", "score"] and record["refit_s"] == sel.refit_s
    publish(env, prepared, plan, outcome, sel)
    summary = json.loads((out / "summary.json").read_text())
    best = summary["best"]
    assert {k: v for k, v in best.items() if k not in ("params", "model_size_bytes")} == \
        {k: v for k, v in json.loads(json.dumps(record)).items() if k != "rerank"}
    assert summary["validation"]["rerank"] == record.get("rerank")
    assert summary["best_single"]["trial_id"] == str(sel.best_single()["trial_id"])
    assert summary["n_trials"] == len(outcome.rows) and summary["n_test_rows"] == 40
    assert (out / "model.skops").exists() and (out / "manifest.json").exists()


def test_finalize_is_the_select_stage_as_a_tuple(tmp_path):
    """automl.finalize.finalize (the former name) returns exactly the select stage's model, record,
    threshold and leaderboard."""
    from automl.finalize import finalize
    from automl.runner import _leaderboard

    from test_rerank import KNN, _regression_ctx

    ctx = _regression_ctx(n=200)
    ctx.output_dir = str(tmp_path)
    rows = []
    for i, k in enumerate([3, 9, 27]):
        config = {"candidate": KNN.name, f"{KNN.name}:model.n_neighbors": k, f"{KNN.name}:model.weights": "uniform"}
        rows.append({**evaluate(config, ctx, trial_id=f"t{i}"), "trial_id": f"t{i}", "config": config})
    info = ProblemInfo("regression", "rmse", False, "test")
    lb = _leaderboard(rows, ctx.candidates, info)
    sel = select_final(ctx, lb, rows, info, time.time() + 60, str(tmp_path), {}, ensemble=False)
    model, chosen, threshold, out = finalize(ctx, lb, rows, info, time.time() + 60, str(tmp_path), {},
                                             ensemble=False)
    assert isinstance(sel, Selection) and not sel.is_ensemble and sel.members is None
    assert {**chosen, "refit_s": 0} == {**sel.record(), "refit_s": 0}  # refit_s: a measured time
    assert threshold is sel.threshold is None  # regression: no threshold
    assert type(model) is type(sel.model) and model.get_params().keys() == sel.model.get_params().keys()
    pd.testing.assert_frame_equal(out, sel.leaderboard)
    assert chosen["trial_id"] == str(out[out["status"] == "completed"].iloc[0]["trial_id"])
