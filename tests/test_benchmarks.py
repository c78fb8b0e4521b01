"""The benchmark harness: suite selection, tolerances, the compare tables, peers and the real CLI run."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import common  # noqa: E402
import compare  # noqa: E402
import run_peers  # noqa: E402

SPECS = {
    "alpha": {"target": "y", "problem": "binary", "metric": "auc"},
    "beta": {"target": "y", "problem": "regression", "metric": "rmse"},
    "gamma": {"target": "y", "problem": "multiclass", "metric": "accuracy", "group": "broad"},
}


def write_suite(tmp_path: Path, specs=SPECS) -> Path:
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(specs, sort_keys=False))
    return tmp_path


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rec(system, dataset, score, seed=0, budget=60, wall=50.0):
    return {"system": system, "dataset": dataset, "seed": seed, "budget_s": budget, "score": score,
            "wall_s": wall, "error": None if score is not None else "boom", "date": "2026-11-30T00:00:00Z",
            "cores": 2}


def test_groups_select_core_broad_all_and_unknown_names_are_refused(tmp_path):
    suite = common.load_suite(write_suite(tmp_path))
    assert common.select(suite, group="core") == ["alpha", "beta"]
    assert common.select(suite, group="broad") == ["gamma"]
    assert common.select(suite, group="all") == ["alpha", "beta", "gamma"]
    assert common.select(suite, datasets="gamma,alpha") == ["gamma", "alpha"]
    with pytest.raises(SystemExit, match="unknown dataset.*delta"):
        common.select(suite, datasets="delta")
    with pytest.raises(SystemExit, match="valid groups: all, broad, core"):
        common.select(suite, group="wide")


@pytest.mark.skipif(not (common.DEFAULT_SUITE / "suite.yaml").exists(),
                    reason="the shared benchmark folder (../shared/benchmarks) is not next to this checkout")
def test_the_real_suite_yaml_has_nine_core_and_sixteen_broad_datasets():
    suite = common.load_suite(common.DEFAULT_SUITE)
    assert len(common.select(suite, group="core")) == 9
    assert len(common.select(suite, group="broad")) == 16


def test_tolerances_are_absolute_for_auc_and_relative_for_rmse():
    assert common.within("auc", 0.8481, 0.85)          # 0.0019 below: a tie
    assert not common.within("auc", 0.8479, 0.85)      # 0.0021 below
    assert common.within("rmse", 100.9, 100.0)         # 0.9% worse: a tie
    assert not common.within("rmse", 101.1, 100.0)
    assert common.within("rmse", 104.9, 100.0, "bad") and not common.within("rmse", 105.1, 100.0, "bad")
    assert common.better("rmse", 99.0, 100.0) and common.better("auc", 0.9, 0.8)
    with pytest.raises(SystemExit, match="valid: .*auc"):
        common.rule("kappa")


def test_compare_counts_medians_wins_ties_bad_losses_and_each_seed(tmp_path):
    suite = write_suite(tmp_path)
    automl = write_jsonl(tmp_path / "automl.jsonl", [
        rec("automl", "alpha", 0.90, 0), rec("automl", "alpha", 0.80, 1), rec("automl", "alpha", 0.95, 2),
        rec("automl", "beta", 10.6, 0), rec("automl", "beta", 10.6, 1), rec("automl", "beta", 9.0, 2, wall=66.0),
        rec("automl", "gamma", 0.70, 0), rec("automl", "gamma", 0.999, 0),  # the later line replaces the earlier
    ])
    peers = write_jsonl(tmp_path / "peers.jsonl", [
        rec("flaml", "alpha", 0.85), rec("ag", "alpha", 0.89),     # automl median 0.90: a strict win
        rec("flaml", "beta", 10.0), rec("ag", "beta", None),       # median 10.6 is 6% worse: a bad loss
        rec("flaml", "gamma", 0.9995), rec("ag_best", "gamma", 0.5),  # 0.999 within 0.002: a tie
    ])
    out = tmp_path / "table.md"
    compare.main(["--automl", str(automl), "--peers", str(peers), "--suite", str(suite), "--out", str(out)])
    text = out.read_text()
    assert "| alpha | auc | 0.9000 | 0.8000–0.9500 (3) | 0.8500 | 0.8900 | - | 0.8900 | win | 2/3 |" in text
    assert "| beta | rmse | 10.60 | 9.000–10.60 (3) | 10.00 | fail | - | 10.00 | **BAD loss** | 1/3 | 1.10 |" in text
    assert "| gamma | accuracy | 0.9990 |" in text and "| tie | 1/1 |" in text
    assert "at least the best peer (median over seeds, within tolerance): **2/3**" in text
    assert "strictly better than every peer: **1/3**" in text
    assert "bad losses: **1** (beta)" in text
    assert "seed 0: 2/3, seed 1: 0/2, seed 2: 2/2" in text
    assert "max wall time / budget (from process start): automl 1.10, flaml 0.83" in text


def test_compare_budget_curve_normalises_to_the_best_seen_and_a_failure_scores_zero(tmp_path):
    suite = write_suite(tmp_path, {"beta": SPECS["beta"]})
    automl = write_jsonl(tmp_path / "a.jsonl", [rec("automl", "beta", 12.0, budget=30),
                                                rec("automl", "beta", 10.0, budget=60)])
    peers = write_jsonl(tmp_path / "p.jsonl", [rec("flaml", "beta", None, budget=30),
                                               rec("flaml", "beta", 8.0, budget=60)])
    out = tmp_path / "t.md"
    compare.main(["--automl", str(automl), "--peers", str(peers), "--suite", str(suite), "--out", str(out)])
    text = out.read_text()
    assert "| automl | 0.6667 (1) | 0.8000 (1) |" in text
    assert "| flaml | 0.0000 (1) | 1.0000 (1) |" in text
    assert "| automl ≥ best peer | 0/0 | 0/1 |" in text


def test_old_records_without_system_or_seed_count_as_automl_seed_0(tmp_path):
    suite = write_suite(tmp_path, {"alpha": SPECS["alpha"]})
    old = {"dataset": "alpha", "metric": "auc", "budget_s": 60, "wall_s": 55.0, "peak_rss_gib": 1.0,
           "score": 0.9, "error": None}
    automl = write_jsonl(tmp_path / "old.jsonl", [old])
    peers = write_jsonl(tmp_path / "p.jsonl", [rec("ag", "alpha", 0.905)])
    out = tmp_path / "t.md"
    compare.main(["--automl", str(automl), "--peers", str(peers), "--suite", str(suite), "--out", str(out)])
    assert "| alpha | auc | 0.9000 | 0.9000–0.9000 (1) | 0.9050 | 0.9050 | loss | 0/1 |" in out.read_text()


def test_peer_split_loading_ignores_drop_columns_the_split_lacks(tmp_path):
    """births drops `lowbirthweight`, which its split files no longer have: every peer failed on it."""
    (tmp_path / "train.csv").write_text("a,y\n1,2\n3,4\n")
    (tmp_path / "test.csv").write_text("a,y\n5,6\n")
    train, test = run_peers.load_split({"drop": ["lowbirthweight"]}, tmp_path)
    assert list(train.columns) == ["a", "y"] and len(test) == 1


def test_a_peer_that_is_not_installed_is_a_recorded_error_not_a_crash(tmp_path):
    suite = write_suite(tmp_path, {"alpha": SPECS["alpha"]})
    (suite / "alpha").mkdir()
    pd.DataFrame({"x": [0, 1] * 10, "y": ["a", "b"] * 10}).to_csv(suite / "alpha" / "train.csv", index=False)
    pd.DataFrame({"x": [0, 1], "y": ["a", "b"]}).to_csv(suite / "alpha" / "test.csv", index=False)
    out = tmp_path / "peers.jsonl"
    # the project's venv has neither FLAML nor AutoGluon, so this is a real missing-library run
    rc = run_peers.main(["--suite", str(suite), "--out", str(out), "--systems", "flaml", "--budgets", "5",
                         "--python", sys.executable, "--workdir", str(tmp_path / "work")])
    assert rc == 0
    (row,) = common.read_jsonl([out])
    assert row["score"] is None and row["error"].startswith("not installed: ")
    assert row["system"] == "flaml" and row["seed"] == 0 and row["cores"] >= 1 and row["date"]
    (kept,) = (tmp_path / "work").iterdir()
    assert "ModuleNotFoundError" in (kept / "peer.log").read_text()  # a failed run keeps its log


@pytest.mark.slow
def test_run_suite_fits_and_scores_through_the_real_cli_per_seed(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    df = pd.DataFrame({"x": x, "noise": rng.normal(size=200), "drop_me": 1.0,
                       "y": np.where(x + rng.normal(scale=0.3, size=200) > 0, "yes", "no")})
    suite = write_suite(tmp_path, {"tiny": {"target": "y", "problem": "binary", "metric": "auc",
                                            "drop": ["drop_me"]}})
    (suite / "tiny").mkdir()
    df[:150].to_csv(suite / "tiny" / "train.csv", index=False)
    df[150:].to_csv(suite / "tiny" / "test.csv", index=False)
    write_jsonl(suite / "peers_60.jsonl", [rec("ag", "tiny", 0.5, budget=30)])
    out = tmp_path / "automl.jsonl"
    proc = subprocess.run([sys.executable, str(BENCH / "run_suite.py"), "--suite", str(suite), "--seeds", "1",
                           "--budgets", "30", "--out", str(out), "--workdir", str(tmp_path / "runs"),
                           "--extra", "search.executor=local budget.max_trials=3"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = common.read_jsonl([out])
    assert row["error"] is None, row["error"]
    assert row["system"] == "automl" and row["seed"] == 1 and row["budget_s"] == 30
    assert 0.5 < row["score"] <= 1.0 and row["n_trials"] >= 1 and row["best_candidate"]
    assert row["wall_s"] > 0 and row["peak_rss_gib"] > 0 and row["cores"] >= 1
    assert row["best_peer"] == 0.5 and row["result"] in ("win", "tie", "loss", "BAD loss")
    kept = sorted(p.name for p in (Path(row["run_dir"]) / "run").iterdir())
    assert kept == ["config.yaml", "leaderboard.csv", "summary.json"]  # model files pruned, records kept
    pred = pd.read_csv(row["pred_path"])  # the test predictions, kept for the bootstrap between budgets
    assert len(pred) == 50 and list(pred.columns) == ["predicted_label", "proba_no", "proba_yes"]
    assert row["positive_class"] == "yes"
    config = yaml.safe_load((Path(row["run_dir"]) / "run" / "config.yaml").read_text())
    assert config["seed"] == 1 and config["data"]["drop"] == ["drop_me"]


def binary_preds(y, signal, seed):
    """A prediction frame for string labels ``y`` ("no"/"yes"): probabilities with ``signal`` of the truth."""
    rng = np.random.default_rng(seed)
    p = np.clip(signal * (y == "yes") + (1 - signal) * rng.random(len(y)), 0, 1)
    return pd.DataFrame({"predicted_label": np.where(p > 0.5, "yes", "no"), "proba_no": 1 - p, "proba_yes": p})


def test_the_paired_bootstrap_tells_a_real_loss_from_the_test_rows_noise():
    y = np.where(np.random.default_rng(0).random(400) > 0.7, "yes", "no")
    good, bad = binary_preds(y, 0.6, 1), binary_preds(y, 0.1, 2)
    same = compare.paired_bootstrap("auc", y, [(good, good)], "yes", resamples=200)
    assert same == (0.0, 0.0, 0.0)
    change, lo, hi = compare.paired_bootstrap("auc", y, [(good, bad), (good, bad)], "yes", resamples=200)
    assert change < 0 and hi < 0  # clearly worse: the interval is below zero
    near = binary_preds(y, 0.6, 3)  # as good, other noise: the interval straddles zero
    change, lo, hi = compare.paired_bootstrap("auc", y, [(good, near)], "yes", resamples=200)
    assert lo < 0 < hi
    # error metrics: a larger error is a negative change
    t = np.linspace(0, 10, 300)
    close, far = (pd.DataFrame({"predicted_label": t + e}) for e in (0.1, 2.0))
    change, lo, hi = compare.paired_bootstrap("rmse", t, [(close, far)], resamples=100)
    assert change == pytest.approx(-1.9) and hi < 0


def test_the_anytime_table_runs_the_bootstrap_on_kept_predictions(tmp_path):
    suite_dir = write_suite(tmp_path, {"alpha": SPECS["alpha"]})
    y = np.where(np.random.default_rng(0).random(400) > 0.7, "yes", "no")
    (suite_dir / "alpha").mkdir()
    pd.DataFrame({"y": y}).to_csv(suite_dir / "alpha" / "test.csv", index=False)
    rows = []
    for seed in (0, 1):
        for budget, signal in ((60, 0.6), (300, 0.1)):
            path = tmp_path / f"p{seed}-{budget}.csv.gz"
            binary_preds(y, signal, seed * 10 + budget).round(6).to_csv(path, index=False)
            rows.append({**rec("automl", "alpha", 0.9 if budget == 60 else 0.6, seed, budget),
                         "pred_path": str(path), "positive_class": "yes"})
    res = compare.Results(compare.index(rows))
    suite = common.load_suite(suite_dir)
    lines = compare.anytime_table(res, suite, ["alpha"], suite_dir)
    assert "300 vs 60 s (2 seeds)" in lines[2] and "worse beyond noise" in lines[2], lines
    assert any("beyond noise by the paired bootstrap over the test rows: **1**" in ln for ln in lines)
    assert "worse beyond noise" not in compare.anytime_table(res, suite, ["alpha"])[2]  # no suite: no bootstrap


def test_an_automl_run_that_failed_on_every_seed_counts_as_a_miss(tmp_path):
    suite = write_suite(tmp_path, {"alpha": SPECS["alpha"]})
    automl = write_jsonl(tmp_path / "a.jsonl", [rec("automl", "alpha", None, 0), rec("automl", "alpha", None, 1)])
    peers = write_jsonl(tmp_path / "p.jsonl", [rec("ag", "alpha", 0.8)])
    out = tmp_path / "t.md"
    compare.main(["--automl", str(automl), "--peers", str(peers), "--suite", str(suite), "--out", str(out)])
    text = out.read_text()
    assert "| alpha | auc | fail | -, 2 failed | 0.8000 | 0.8000 | automl failed | 0/2 |" in text
    assert "at least the best peer (median over seeds, within tolerance): **0/1**" in text
    assert "seed 0: 0/1, seed 1: 0/1" in text


def test_skip_done_skips_scored_runs_only(tmp_path):
    old = {"dataset": "alpha", "budget_s": 60, "score": 0.9}  # an old automl line: no system, no seed
    path = write_jsonl(tmp_path / "a.jsonl", [old, rec("automl", "beta", None, 1), rec("ag", "beta", 1.0, 2, 30)])
    assert common.done_keys(path) == {("automl", "alpha", 0, 60.0), ("ag", "beta", 2, 30.0)}
    assert common.done_keys(path, "automl") == {("automl", "alpha", 0, 60.0)}
