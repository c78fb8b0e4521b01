"""summary.json's typed reader (automl/rundir/summary.py): one owner for the run's summary."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from automl.errors import ArtifactError
from automl.rundir.summary import RunSummary, read_summary

LEGACY = Path(__file__).parent / "fixtures" / "legacy_run" / "run"


def test_reads_a_run_written_by_the_previous_code():
    s = read_summary(str(LEGACY))
    raw = json.loads((LEGACY / "summary.json").read_text())
    assert s.problem_type == raw["problem_type"] and s.metric == raw["metric"] and s.target == raw["target"]
    assert s.features == raw["features"] and s.column_types == raw["column_types"]
    assert s.best is not None and s.best.trial_id == raw["best"]["trial_id"]
    assert s.best.score == pytest.approx(raw["best"]["score"])
    # still every key as written: old readers' summary["..."] and .get keep working
    assert dict(s) == raw and s["best_single"] == raw["best_single"] and s.get("absent") is None


def test_problem_info_is_the_fits():
    s = read_summary(str(LEGACY))
    info = s.problem_info()
    assert (info.problem_type, info.metric, info.classes) == (s.problem_type, s.metric, s.classes)
    assert info.greater_is_better is bool(json.loads((LEGACY / "summary.json").read_text())["greater_is_better"])


def test_missing_or_foreign_summary_is_one_line(tmp_path):
    with pytest.raises(ArtifactError, match="holds no summary.json"):
        read_summary(str(tmp_path))
    (tmp_path / "summary.json").write_text(json.dumps({"metric": "auc"}))
    with pytest.raises(ArtifactError, match="lacks problem_type, target"):
        read_summary(str(tmp_path))


def test_run_summary_is_typed_and_compares_as_a_mapping(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(LEGACY, run)
    from automl.run import Run

    r = Run(str(run), allow_pickle=True)
    assert isinstance(r.summary, RunSummary) and r.summary == read_summary(str(run))
    assert r.summary.to_dict() == json.loads((run / "summary.json").read_text())
