"""More budget for a finished run (issue 18, point 5): `automl fit resume=true output_dir=RUN
budget.time_limit_s=S` on a completed run continues its search for S more seconds, warm-started
from its trials, then selects and publishes again, built next to the run and swapped in only when
complete. The run's history (history.json, summary.json "attempts") records both attempts."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import automl_cli, make_binary_frame
from test_safety_rundir import snapshot

SECONDS = "16"  # from process start; leaves the search ~8 s on a busy 2-core machine


def _trials(run: Path) -> pd.DataFrame:
    lb = pd.read_csv(run / "leaderboard.csv", dtype={"trial_id": str})
    return lb[lb["trial_id"] != "ensemble"]


@pytest.mark.slow
def test_a_finished_run_continues_with_more_budget_and_records_both_attempts(tmp_path):
    import automl

    run = tmp_path / "run"
    make_binary_frame(300, seed=2).to_csv(tmp_path / "train.csv", index=False)
    first = automl_cli("fit", f"data.path={tmp_path / 'train.csv'}", "data.target=y", f"output_dir={run}",
                       f"budget.time_limit_s={SECONDS}", "budget.max_trials=4", "search.executor=local",
                       "candidates.include=[linear,knn,svm]",
                       cwd=str(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    s1, lb1 = json.loads((run / "summary.json").read_text()), _trials(run)
    results1 = {p.parent.name: p.read_bytes() for p in (run / "trials").glob("*/result.json")}
    assert (lb1["status"] == "completed").any(), first.stderr[-2000:]  # a searched model, not the fallback
    assert set(lb1.loc[lb1["status"] != "stopped", "trial_id"]) <= set(results1) <= set(lb1["trial_id"])

    # a continuation that fails (here: other training rows than the run's) leaves the run as it was
    before = snapshot(run)
    bad = automl_cli("fit", "resume=true", f"output_dir={run}", f"budget.time_limit_s={SECONDS}",
                     "data.test_fraction=0.5", cwd=str(tmp_path))
    assert bad.returncode == 2, bad.stderr[-3000:]
    assert "other training rows" in bad.stderr.strip().splitlines()[-1]
    assert snapshot(run) == before and sorted(p.name for p in tmp_path.iterdir()) == ["run", "train.csv"]

    # the command line, as is: the data, target and candidates come from the run's config.yaml
    second = automl_cli("fit", "resume=true", f"output_dir={run}", f"budget.time_limit_s={SECONDS}",
                        cwd=str(tmp_path))
    assert second.returncode == 0, second.stderr[-3000:]
    assert "continuing the finished run" in second.stderr and "searcher continues from" in second.stderr
    s2, lb2 = json.loads((run / "summary.json").read_text()), _trials(run)
    assert set(lb2["algorithm"]) <= {"linear", "knn", "svm"} and s2["target"] == "y"
    assert lb2["trial_id"].is_unique and set(results1) < set(lb2["trial_id"])  # both attempts' trials
    assert {p.parent.name: p.read_bytes() for p in (run / "trials").glob("*/result.json")
            if p.parent.name in results1} == results1  # the earlier trials as they were
    print(f"attempt 1: {len(results1)} trials, {s1['metric']} {s1['best']['score']:.5f}; attempt 2: "
          f"{len(lb2) - len(results1)} more, {s2['best']['score']:.5f}")
    assert s2["best"]["score"] >= s1["best"]["score"], (s1["best"], s2["best"])
    assert s2["continued"] is True and s2["n_trials"] == len(lb2)
    attempts = s2["attempts"]
    assert [a["kind"] for a in attempts] == ["first", "continued"] and [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[1]["n_trials_before"] == len(results1) and attempts[1]["n_trials"] == len(lb2) - len(results1)
    assert attempts[0]["best_score"] == s1["best"]["score"] and attempts[1]["best_score"] == s2["best"]["score"]
    assert json.loads((run / "history.json").read_text()) == attempts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "train.csv"]  # no staging folder left
    loaded = automl.load(str(run))  # the manifest verifies the swapped-in run
    rows = pd.read_parquet(run / "data" / "train.parquet").drop(columns=["y"]).head(3)
    assert len(loaded.predict(rows)) == 3


def _finished_run(folder: Path, *overrides: str) -> None:
    """A run folder that says it finished, with the config.yaml a fit with ``overrides`` writes."""
    from automl.config import compose_config
    from automl.redact import redacted_yaml

    folder.mkdir()
    (folder / "config.yaml").write_text(redacted_yaml(compose_config([*overrides, f"output_dir={folder}"])))
    (folder / "run_state.json").write_text(json.dumps({"run_id": "r1", "status": "finished", "spent_s": 3}))
    (folder / "manifest.json").write_text("{}")


def test_the_continuation_takes_the_runs_config_and_only_the_keys_given(tmp_path):
    from automl.config import compose_config

    run = tmp_path / "run"
    _finished_run(run, "data.path=train.csv", "data.target=y", "candidates.include=[linear]", "seed=7",
                  "budget.time_limit_s=30")
    cfg = compose_config(["resume=true", f"output_dir={run}", "budget.time_limit_s=5", "~candidates.dpp6-knn"])
    assert cfg.data.path == "train.csv" and cfg.data.target == "y" and cfg.seed == 7
    assert list(cfg.candidates_include) == ["linear"] and "dpp6-knn" not in cfg.candidates
    assert cfg.budget.time_limit_s == 5 and cfg.resume is True
    cfg = compose_config(["resume=true", f"output_dir={run}", "seed=8"], values={"data": {"target": "z"}})
    assert cfg.seed == 8 and cfg.data.target == "z" and cfg.budget.time_limit_s == 30
    # a run that did not finish (a crash) composes from the command line, as before
    (run / "run_state.json").write_text(json.dumps({"run_id": "r1", "status": "running", "spent_s": 3}))
    assert compose_config(["resume=true", f"output_dir={run}"]).data.path == "sklearn:digits"


def test_a_masked_secret_of_the_run_must_be_given_again(tmp_path):
    from automl.config import compose_config
    from automl.errors import ConfigError

    run = tmp_path / "run"
    _finished_run(run, "+data.storage_options.secret=TopSecretValue-1")
    with pytest.raises(ConfigError, match=r"data.storage_options.secret is masked .* pass data.storage_options.secret"):
        compose_config(["resume=true", f"output_dir={run}"])
    cfg = compose_config(["resume=true", f"output_dir={run}", "+data.storage_options.secret=TopSecretValue-1"])
    assert cfg.data.storage_options.secret == "TopSecretValue-1"
