"""No trial finished (issue 16, a defect seen under load): the fit ends with a model anyway, the
cheapest candidate's default configuration fitted on all rows, marked in summary.json; when every
trial failed with an error, the run still fails with the commonest cause."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import automl_cli
from automl.errors import SearchError
from automl.stages.search import no_trial_finished


@pytest.mark.slow
def test_every_trial_stopped_by_its_time_limit_still_ends_with_a_model(tmp_path, binary_frame):
    """budget.trial_time_limit_s=0.01: no trial can finish one cross-validation (before this
    change: "all 4 trial(s) failed; commonest cause: trial would exceed its time limit")."""
    import automl

    binary_frame.to_csv(tmp_path / "train.csv", index=False)
    res = automl_cli("fit", f"data.path={tmp_path}/train.csv", "data.target=y", f"output_dir={tmp_path}/run",
                     "data.test_fraction=0.25", "budget.time_limit_s=20", "budget.max_trials=4",
                     "budget.trial_time_limit_s=0.01", "search.executor=local", cwd=str(tmp_path))
    err = res.stderr
    assert res.returncode == 0, err[-3000:]
    assert "no trial finished within the search budget (0 completed, 4 stopped, 0 failed)" in err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["fallback"] is True and summary["best"]["fallback"] is True
    assert summary["best"]["trial_id"] == "fallback" and summary["best"]["candidate"] == "dpp1-linear"
    assert summary["best"]["score"] is None and summary["n_trials"] == 4 and summary["n_trials_timeout"] == 4
    assert summary["test_score"] > 0.6  # a real model: the linear learner's default on the held-out rows
    lb = pd.read_csv(tmp_path / "run" / "leaderboard.csv")
    assert lb.iloc[0]["trial_id"] == "fallback" and lb.iloc[0]["status"] == "fallback"
    run = automl.load(str(tmp_path / "run"))
    assert len(run.predict(binary_frame.drop(columns="y").head(5))) == 5


def test_the_fallback_reason_counts_stopped_trials_and_all_failed_ones_still_fail():
    lb = pd.DataFrame({"status": ["stopped", "timeout", "failed"], "error": ["deadline", "limit", "boom"]})
    assert no_trial_finished(lb) == "no trial finished within the search budget (0 completed, 2 stopped, 1 failed)"
    assert no_trial_finished(lb.iloc[:0]) == "no trial could start within the search budget"
    failed = pd.DataFrame({"status": ["failed"] * 3, "error": ["ValueError: boom", "ValueError: boom", "x"]})
    with pytest.raises(SearchError, match=r"all 3 trial\(s\) failed; commonest cause: ValueError: boom"):
        no_trial_finished(failed)
