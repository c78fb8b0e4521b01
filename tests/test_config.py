"""Config composition: every config file composes, overrides and Python values validate."""
from pathlib import Path

import pytest

from automl.candidates.space import load_space
from automl.config import compose_config, expand_sweep, project_dir
from automl.errors import ConfigError

CONF = project_dir("conf")


@pytest.mark.parametrize("group_file", sorted(p.relative_to(CONF) for p in CONF.glob("*/*.yaml")),
                         ids=str)
def test_every_config_file_composes(group_file):
    group, option = group_file.parent.name, group_file.stem
    cfg = compose_config([f"{group}={option}"])
    assert cfg[group] is not None


@pytest.mark.parametrize("name", sorted(p.stem for p in project_dir("search_spaces").glob("*.yaml")))
def test_every_search_space_loads(name):
    space = load_space(name)
    assert space["params"] and space["portfolio"]


def test_every_default_candidate_has_a_search_space():
    cfg = compose_config([])
    for name, cand in cfg.candidates.items():
        load_space(cand.search_space or cand.algorithm)


def test_python_values_add_free_form_keys_but_not_unknown_ones():
    cfg = compose_config([], values={"data": {"storage_options": {"anon": True}},
                                     "candidates": {"my-linear": {"algorithm": "linear"}}})
    assert cfg.data.storage_options.anon is True and "my-linear" in cfg.candidates
    with pytest.raises(ConfigError, match="bogus"):
        compose_config([], values={"data": {"bogus": 1}})
    with pytest.raises(ConfigError, match="algorithm 'nope' is unknown"):
        compose_config([], values={"candidates": {"x": {"algorithm": "nope"}}})


def test_sweep_expansion():
    runs = expand_sweep(["metric=accuracy,f1_macro", "seed=1"])
    assert runs == [["metric=accuracy", "seed=1"], ["metric=f1_macro", "seed=1"]]


def test_warm_start_runs_portfolios_round_robin_and_skips_evaluated_points():
    """Every candidate's first point (candidate order: cheap first), then every second point ..."""
    from automl.candidates.generate import Candidate
    from automl.search.searcher import warm_points

    def cand(name, depths):
        space = {"params": {"model.max_depth": {"type": "int", "low": 1, "high": 9, "init": 1}}, "fixed": {},
                 "portfolio": [{"model.max_depth": d} for d in depths]}
        return Candidate(name, "xgboost", {}, space)

    points = warm_points([cand("a", [1, 2, 3]), cand("b", [4, 5]), cand("c", [6])], "binary", True)
    assert [(p["candidate"], p[f"{p['candidate']}:model.max_depth"]) for p in points] == \
        [("a", 1), ("b", 4), ("c", 6), ("a", 2), ("b", 5), ("a", 3)]
    assert warm_points([cand("a", [1, 2])], "binary", False) == []
    done = [{"config": {"candidate": "a", "a:model.max_depth": 2}}]  # rows of an earlier attempt
    assert [p["a:model.max_depth"] for p in warm_points([cand("a", [1, 2, 3])], "binary", True, done)] == [1, 3]
