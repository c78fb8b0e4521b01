"""Gates (selection/gates.py): an ensemble must beat the best single model by more than noise, for every metric."""
import json
import time

import numpy as np
import pandas as pd

from automl.selection import SelectSpec
from automl.ensemble import caruana_select
from automl.metrics import get_metric
from automl.selection.gates import gate, paired_bootstrap_lower

AUC = get_metric("auc", "binary")
RMSE = get_metric("rmse", "regression")


def auc(y, p):
    return AUC.fn(y, p, 1)


def rmse(y, p):
    return RMSE.fn(y, p, 1)


def _binary_members(n=1000, members=9, jitter=0.03, seed=0):
    """One noisy score, and members that are the same score with a little private noise each:
    a Caruana blend of them gains a hair on these rows and nothing real."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    base = y * 0.6 + rng.normal(size=n)
    preds = []
    for _ in range(members):
        s = 1 / (1 + np.exp(-(base + rng.normal(scale=jitter, size=n))))
        preds.append(np.c_[1 - s, s])
    return y, preds


def test_gate_refuses_a_noise_level_auc_gain_of_a_nine_member_ensemble():
    y, preds = _binary_members()
    sel = caruana_select(preds, y, AUC)
    assert sel is not None  # Caruana alone keeps it: it is better on these rows ...
    blend = sum(w * p for w, p in zip(sel.weights, preds))
    single = preds[sel.indices[0]]
    gain = auc(y, blend) - auc(y, single)
    assert 0 < gain < 0.002  # ... by a noise-level gain
    assert gate(y, blend, single, auc, True, "auc", method="score").passed  # the old rule lets it through
    result = gate(y, blend, single, auc, True, "auc")
    assert not result.passed and result.lower <= 0 and "within noise" in result.reason


def test_gate_refuses_a_noise_level_rmse_gain():
    rng = np.random.default_rng(1)
    n = 1000
    y = rng.normal(size=n)
    base = y + rng.normal(scale=1.0, size=n)
    preds = [base + rng.normal(scale=0.05, size=n) for _ in range(9)]
    sel = caruana_select(preds, y, RMSE)
    assert sel is not None
    blend = sum(w * p for w, p in zip(sel.weights, preds))
    single = preds[sel.indices[0]]
    assert 0 < rmse(y, single) - rmse(y, blend) < 0.01 * rmse(y, single)
    assert gate(y, blend, single, rmse, False, "rmse", method="score").passed
    result = gate(y, blend, single, rmse, False, "rmse")
    assert not result.passed and result.lower <= 0


def test_gate_accepts_a_real_gain_for_auc_and_rmse():
    rng = np.random.default_rng(2)
    n = 1000
    y = rng.integers(0, 2, n)
    # two models with independent errors: their average is clearly better than either
    s1 = 1 / (1 + np.exp(-(y * 1.0 + rng.normal(size=n))))
    s2 = 1 / (1 + np.exp(-(y * 1.0 + rng.normal(size=n))))
    p1, p2 = np.c_[1 - s1, s1], np.c_[1 - s2, s2]
    result = gate(y, (p1 + p2) / 2, p1, auc, True, "auc")
    assert result.passed and result.lower > 0 and result.gain > 0.02
    yr = rng.normal(size=n)
    a, b = yr + rng.normal(size=n), yr + rng.normal(size=n)
    result = gate(yr, (a + b) / 2, a, rmse, False, "rmse")
    assert result.passed and result.lower > 0


def test_gate_refuses_a_worse_ensemble_and_keeps_mcnemar_for_accuracy():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    single = np.eye(2)[y] * 0.8 + 0.1
    worse = single.copy()
    worse[:20] = worse[:20, ::-1]
    acc = get_metric("accuracy", "binary")
    score = lambda yy, p: acc.fn(yy, p, 1)  # noqa: E731
    assert not gate(y, worse, single, score, True, "accuracy").passed
    # 3 rows better, 1 worse: better, but McNemar says noise (ensemble.significant_count_gain)
    base = np.eye(2)[y] * 0.8 + 0.1
    base[:10] = base[:10, ::-1]
    near = base.copy()
    near[:3] = near[:3, ::-1]
    near[50] = near[50, ::-1]
    result = gate(y, near, base, score, True, "accuracy", method="score")
    assert not result.passed and "3 row(s) right" in result.reason


def test_paired_bootstrap_uses_the_same_rows_for_both():
    """Identical predictions give a gain of exactly 0 on every resample (paired), so the bound is 0."""
    y, preds = _binary_members(n=300, members=1)
    assert paired_bootstrap_lower(y, preds[0], preds[0].copy(), auc, True, n_resamples=50) == 0.0


def test_finalize_drops_a_noise_level_ensemble_and_records_the_gate(tmp_path):
    """End to end through finalize: trials whose OOF predictions differ by noise only give no ensemble."""
    from automl.finalize import finalize
    from automl.problem import ProblemInfo
    from automl.runner import _leaderboard
    from automl.search.trial import evaluate

    from test_rerank import KNN, _regression_ctx

    ctx = _regression_ctx(n=300)
    ctx.output_dir = str(tmp_path)
    rows = []
    for i, k in enumerate([10, 11, 12, 13, 14, 15]):
        config = {"candidate": KNN.name, f"{KNN.name}:model.n_neighbors": k, f"{KNN.name}:model.weights": "uniform"}
        rows.append({**evaluate(config, ctx, trial_id=f"t{i}"), "trial_id": f"t{i}", "config": config})
    info = ProblemInfo("regression", "rmse", False, "test")
    lb = _leaderboard(rows, ctx.candidates, info)
    _, chosen, _, out = finalize(ctx, lb, rows, info, time.time() + 60, str(tmp_path), {}, ensemble=True,
                                 select=SelectSpec(gate="bootstrap"))
    assert chosen["trial_id"] != "ensemble" and "ensemble" not in set(out["trial_id"])
    assert chosen["gate"]["method"] == "bootstrap" and not chosen["gate"]["passed"]
    assert chosen["final_model"]["kind"] == "refit"
    json.dumps(chosen)  # it goes into summary.json as is
    assert isinstance(out, pd.DataFrame)
