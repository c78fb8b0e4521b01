"""Feature-attribution drift (issue 19): `automl monitor`'s optional attribution_drift_check compares
the live batch's ranking of the features by mean |SHAP| with the baseline's written at fit time
(NDCG at k, SageMaker Clarify's measure); it fires below its threshold."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.cli import main
from automl.explain import ndcg_at_k
from conftest import automl_cli

WEIGHTS = (3.0, 1.0, 0.6, 0.3, 0.15, 0.05)  # x1 is by far the strongest feature
FEATURES = [f"x{i + 1}" for i in range(len(WEIGHTS))]
ONLY_XGBOOST = {"include": ["dpp0-xgboost"]}


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    df["y"] = df[FEATURES].to_numpy() @ np.array(WEIGHTS) + rng.normal(scale=0.3, size=n)
    return df


@pytest.fixture(scope="module")
def drift_run(tmp_path_factory):
    """One small XGBoost fit, and its constraints.json with attribution_drift_check switched on."""
    import automl

    out = tmp_path_factory.mktemp("attribution")
    run = automl.fit(frame(400, 0), target="y", output_dir=str(out / "run"),
                     budget={"max_trials": 2, "time_limit_s": 15}, candidates=ONLY_XGBOOST)
    cons = json.loads((Path(run.run_dir) / "baseline" / "constraints.json").read_text())
    assert cons["monitoring"]["attribution_drift_check"]["enabled"] is False  # optional: off by default
    cons["monitoring"]["attribution_drift_check"]["enabled"] = True
    edited = out / "constraints.json"
    edited.write_text(json.dumps(cons))
    return run, edited, out


def batch(path: Path, seed: int, noise_in_x1: bool = False) -> Path:
    df = frame(300, seed).drop(columns=["y"])
    if noise_in_x1:  # the strongest feature replaced by noise around its training mean
        df["x1"] = np.random.default_rng(seed + 100).normal(0.0, 0.01, size=len(df))
    df.to_csv(path, index=False)
    return path


def results(folder: Path) -> tuple[list, dict]:
    violations = json.loads((folder / "constraint_violations.json").read_text())["violations"]
    return violations, json.loads((folder / "statistics.json").read_text())


def test_ndcg_at_k_against_hand_computed_values():
    base = {"a": 3.0, "b": 2.0, "c": 1.0}
    assert ndcg_at_k(base, {"a": 0.9, "b": 0.5, "c": 0.1}) == 1.0  # same order, other sizes
    dcg = 1.0 / 1 + 2.0 / math.log2(3) + 3.0 / 2  # live order c, b, a graded by the baseline's values
    idcg = 3.0 / 1 + 2.0 / math.log2(3) + 1.0 / 2
    assert ndcg_at_k(base, {"a": 1.0, "b": 2.0, "c": 3.0}) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(base, {"a": 1.0, "b": 2.0, "c": 3.0}, k=1) == pytest.approx(1.0 / 3.0)


def test_fit_writes_the_attribution_baseline(drift_run):
    run, _, _ = drift_run
    doc = json.loads((Path(run.run_dir) / "baseline" / "attributions.json").read_text())
    assert set(doc["features"]) == set(FEATURES) and doc["exact"] and doc["space"] == "value"
    ranked = sorted(doc["features"], key=lambda f: -doc["features"][f])
    assert ranked[:2] == ["x1", "x2"]


@pytest.mark.slow
def test_strongest_feature_replaced_by_noise_fires_the_check(drift_run):
    run, edited, out = drift_run
    data = batch(out / "noise.csv", 1, noise_in_x1=True)
    res = automl_cli("monitor", f"run_dir={run.run_dir}", f"data={data}", f"constraints={edited}",
                     f"output={out / 'noise-check'}")
    assert res.returncode == 3, res.stderr
    assert "feature attributions: attribution_drift_check" in res.stdout
    violations, stats = results(out / "noise-check")
    fired = [v for v in violations if v["constraint_check_type"] == "attribution_drift_check"]
    assert len(fired) == 1 and "below the threshold 0.9" in fired[0]["description"]
    assert stats["feature_attributions"]["ndcg"] < 0.9
    # with the run's own constraints (the check is off) the same batch raises no attribution violation
    assert main(["monitor", f"run_dir={run.run_dir}", f"data={data}", f"output={out / 'off'}"]) == 3
    violations, stats = results(out / "off")
    assert not [v for v in violations if v["constraint_check_type"] == "attribution_drift_check"]
    assert "feature_attributions" not in stats


def test_fair_batches_do_not_fire_it(drift_run):
    run, edited, out = drift_run
    for seed in range(2, 7):
        data = batch(out / f"fair-{seed}.csv", seed)
        main(["monitor", f"run_dir={run.run_dir}", f"data={data}", f"constraints={edited}",
              f"output={out / f'fair-{seed}'}"])
        violations, stats = results(out / f"fair-{seed}")
        assert not [v for v in violations if v["constraint_check_type"] == "attribution_drift_check"], violations
        assert stats["feature_attributions"]["ndcg"] >= 0.9


def test_bad_attribution_settings_are_a_one_line_error(drift_run, capsys):
    run, edited, out = drift_run
    cons = json.loads(edited.read_text())
    cons["monitoring"]["attribution_drift_check"]["k"] = 0
    bad = out / "bad.json"
    bad.write_text(json.dumps(cons))
    code = main(["monitor", f"run_dir={run.run_dir}", f"data={batch(out / 'one.csv', 9)}", f"constraints={bad}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "attribution_drift_check" in err and "k >= 1" in err
