"""`candidates.include=[...]` and `candidates.exclude=[...]` (issue 18, point 6): shorthands over the
candidate set, by algorithm or full candidate name; an unknown name is a one-line error naming the
closest. (The end-to-end use through the real CLI is in tests/test_constraints.py.)"""
from __future__ import annotations

import pytest

from automl.candidates.generate import generate_candidates
from automl.config import compose_config
from automl.errors import ConfigError
from conftest import automl_cli

TYPES = {"x1": "numeric", "color": "categorical"}


def _plan(*overrides: str, values=None):
    cfg = compose_config(list(overrides), values=values)
    chosen, skipped = generate_candidates(cfg, "binary", 200, TYPES)
    return [c.name for c in chosen], skipped


def test_include_keeps_the_named_algorithms_and_says_why_the_others_are_out():
    names, skipped = _plan("candidates.include=[xgboost,linear]")
    assert sorted(names) == ["dpp0-xgboost", "dpp1-linear"]
    assert "candidates.include" in skipped["dpp5-svm"] and "candidates.include" in skipped["dpp2-mlp"]


def test_exclude_drops_by_algorithm_and_include_takes_full_candidate_names():
    names, skipped = _plan("candidates.exclude=[svm,dpp6-knn]")
    assert "dpp5-svm" not in names and "dpp6-knn" not in names and "dpp0-xgboost" in names
    assert "candidates.exclude" in skipped["dpp5-svm"]
    names, _ = _plan("candidates.include=[dpp3-random_forest]")
    assert names == ["dpp3-random_forest"]


def test_include_switches_on_a_candidate_that_is_disabled_by_default():
    _, skipped = _plan("candidates.include=[lightgbm,linear]")
    assert "disabled" not in skipped.get("dpp7-lightgbm", "")  # it runs, or is skipped for its package only


def test_the_shorthand_is_stored_as_its_schema_keys_and_candidates_stay_a_dict():
    cfg = compose_config(["candidates.include=[xgboost]", "+candidates.exclude=[svm]"])
    assert list(cfg.candidates_include) == ["xgboost"] and list(cfg.candidates_exclude) == ["svm"]
    assert "include" not in cfg.candidates and "dpp0-xgboost" in cfg.candidates
    cfg = compose_config([], values={"candidates": {"include": ["linear"], "dpp1-linear": {"enabled": True}}})
    assert list(cfg.candidates_include) == ["linear"] and "include" not in cfg.candidates
    names, _ = _plan("candidates_exclude=[mlp]")  # the schema key itself works too
    assert "dpp2-mlp" not in names


@pytest.mark.parametrize("override, near", [("candidates.include=[xgbost]", "xgboost"),
                                            ("candidates.exclude=[dpp5-svn]", "dpp5-svm")])
def test_an_unknown_name_is_an_error_naming_the_closest(override, near):
    with pytest.raises(ConfigError, match=f"did you mean '{near}'") as err:
        compose_config([override])
    assert "valid names:" in str(err.value) and "\n" not in str(err.value)


def test_the_cli_prints_one_line_and_exits_2_before_reading_data(tmp_path):
    res = automl_cli("fit", "candidates.exclude=[svn]", f"output_dir={tmp_path / 'run'}", cwd=str(tmp_path))
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert "candidates.exclude" in last and "'svm'" in last
    assert not (tmp_path / "run").exists()


def test_filtering_everything_out_is_the_no_candidate_error():
    with pytest.raises(ConfigError, match="no candidate applies"):
        _plan("candidates.include=[svm]", "candidates.exclude=[svm]")
