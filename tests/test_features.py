"""`data.features`, `data.exclude` and `data.types` (issue 18, point 4): the user chooses the feature
columns and overrides inferred types; both are checked against the table before any trial, and an
error names the fix (the closest column name, the valid types, data.types for an ID column)."""
from __future__ import annotations

import pandas as pd
import pytest

from automl.config import compose_config
from automl.errors import ConfigError, DataError
from automl.stages.prepare import prepare
from conftest import automl_cli, make_binary_frame


def _prepare(frame=None, **data):
    cfg = compose_config(["search.executor=local"], values={"data": {"target": "y", "path": "<dataframe>", **data}})
    return prepare(cfg, make_binary_frame(120) if frame is None else frame)


def test_features_choose_the_columns_in_table_order():
    prepared = _prepare(features=["color", "x1"])
    assert prepared.features == ["x1", "color"]
    assert "x2" in prepared.X.columns  # still in the data (notebook, baseline), just not a feature


def test_exclude_leaves_columns_out_of_the_usable_ones():
    assert _prepare().features == ["x1", "x2", "color"]  # customer_id is ID-like: never a feature by default
    assert _prepare(exclude=["x2"]).features == ["x1", "color"]


def test_types_override_inference_and_let_an_id_column_be_a_feature():
    prepared = _prepare(types={"x2": "categorical", "customer_id": "numeric"})
    assert prepared.column_types["x2"] == "categorical" and prepared.column_types["customer_id"] == "numeric"
    assert "customer_id" in prepared.features
    prepared = _prepare(features=["x1", "customer_id"], types={"customer_id": "numeric"})
    assert prepared.features == ["customer_id", "x1"]


@pytest.mark.parametrize("data, words", [
    ({"features": ["x1", "colour"]}, ["data.features", "'colour'", "did you mean 'color'"]),
    ({"exclude": ["X2"]}, ["data.exclude", "did you mean 'x2'"]),
    ({"types": {"colr": "categorical"}}, ["data.types", "did you mean 'color'"]),
    ({"features": ["x1", "y"]}, ["data.features", "data.target", "never a feature"]),
    ({"features": ["x1", "customer_id"]}, ["'customer_id'", "inferred as 'id'", "data.types={customer_id: categorical}"]),
    ({"types": {"color": "numeric"}}, ["data.types.color=numeric", "non-numbers such as '", "categorical"]),
    ({"types": {"color": "datetime"}}, ["data.types.color=datetime", "parse as dates"]),
    ({"exclude": ["x1", "x2", "color"]}, ["leaves no feature column"]),
])
def test_a_choice_the_table_cannot_take_is_a_one_line_data_error(data, words):
    with pytest.raises(DataError) as err:
        _prepare(**data)
    text = str(err.value)
    assert all(w in text for w in words), text


@pytest.mark.parametrize("data, words", [
    ({"types": {"x1": "numerc"}}, ["data.types.x1='numerc'", "did you mean 'numeric'", "valid types"]),
    ({"features": ["x1"], "exclude": ["x2"]}, ["give one"]),
    ({"features": []}, ["data.features=[]"]),
])
def test_a_choice_wrong_in_itself_is_a_config_error_before_any_data_is_read(data, words):
    with pytest.raises(ConfigError) as err:
        compose_config([], values={"data": data})
    assert all(w in str(err.value) for w in words), str(err.value)


def test_a_named_weight_or_group_column_is_never_a_feature():
    frame = make_binary_frame(120).assign(region=["a", "b", "c"] * 40)
    with pytest.raises(DataError, match="validation.group_column and never a feature"):
        cfg = compose_config([], values={"data": {"target": "y", "path": "<dataframe>", "features": ["x1", "region"]},
                                         "validation": {"group_column": "region"}})
        prepare(cfg, frame)


def test_the_cli_stops_on_a_misspelt_feature_before_any_trial(tmp_path):
    make_binary_frame(80).to_csv(tmp_path / "train.csv", index=False)
    res = automl_cli("fit", f"data.path={tmp_path / 'train.csv'}", "data.target=y", "data.features=[x1,colr]",
                     "search.executor=local", f"output_dir={tmp_path / 'run'}", cwd=str(tmp_path))
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert "data.features" in last and "did you mean 'color'" in last
    assert not (tmp_path / "run").exists()  # nothing written, no trial run


@pytest.mark.slow
def test_a_fit_uses_only_the_chosen_features_with_their_types(tmp_path):
    """The real CLI: the model needs only the chosen columns, with the overridden type recorded."""
    import automl

    frame = make_binary_frame(160, seed=3)
    frame.to_csv(tmp_path / "train.csv", index=False)
    res = automl_cli("fit", f"data.path={tmp_path / 'train.csv'}", "data.target=y", "data.features=[x1,x2,color]",
                     "data.types={x2: categorical}", "search.executor=local", "budget.time_limit_s=6",
                     "candidates.include=[linear]", f"output_dir={tmp_path / 'run'}", cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    run = automl.load(str(tmp_path / "run"))
    assert run.summary["features"] == ["x1", "x2", "color"] and run.summary["column_types"]["x2"] == "categorical"
    pred = run.predict(frame[["x1", "x2", "color"]].head(5))  # no customer_id needed
    assert len(pred) == 5
    assert set(pd.read_csv(tmp_path / "run" / "leaderboard.csv")["algorithm"].dropna()) == {"linear"}
