"""Column-type and problem-type inference."""
import numpy as np
import pandas as pd
import pytest

from automl.data.types import infer_column_type, infer_column_types
from automl.errors import ConfigError, DataError
from automl.problem import encode_target, infer_problem_type, resolve_problem


@pytest.mark.parametrize(
    "values, expected",
    [
        (list(np.linspace(0, 1, 50)), "numeric"),
        ([1, 2, 3] * 20, "numeric"),
        (["a", "b", "c"] * 20, "categorical"),
        (["yes", "no"] * 30, "boolean"),
        ([True, False] * 30, "boolean"),
        ([0, 1] * 30, "boolean"),
        ([f"2024-01-{d:02d}" for d in range(1, 29)] * 2, "datetime"),
        ([f"this is free text number {i} with words" for i in range(60)], "text"),
        ([f"AB{i:06d}" for i in range(60)], "id"),
        (list(range(100, 160)), "id"),
        ([7] * 60, "constant"),
        ([np.nan] * 60, "constant"),
        (["1.5", "2.5", "3"] * 20, "numeric"),
    ],
)
def test_column_types(values, expected):
    assert infer_column_type(pd.Series(values, name="col")) == expected


def test_id_detected_by_name_even_when_sparse_range():
    s = pd.Series(np.random.default_rng(0).choice(10**6, 60, replace=False), name="customer_id")
    assert infer_column_type(s) == "id"


def test_continuous_unique_floats_are_not_ids():
    s = pd.Series(np.random.default_rng(0).normal(size=200), name="income")
    assert infer_column_type(s) == "numeric"


def test_infer_column_types_covers_every_column(binary_frame):
    types = infer_column_types(binary_frame)
    assert types == {"customer_id": "id", "x1": "numeric", "x2": "numeric", "color": "categorical", "y": "boolean"}


@pytest.mark.parametrize(
    "y, expected",
    [
        (pd.Series(["a", "b"] * 10), "binary"),
        (pd.Series([0, 1, 2, 3] * 10), "multiclass"),
        (pd.Series(["x", "y", "z"] * 10), "multiclass"),
        (pd.Series(np.linspace(0, 100, 40)), "regression"),
        (pd.Series(np.arange(100)), "regression"),
    ],
)
def test_problem_type_inference(y, expected):
    kind, why = infer_problem_type(y)
    assert kind == expected and why


def test_resolve_problem_defaults_and_reasons():
    info = resolve_problem(pd.Series(["no"] * 30 + ["yes"] * 10), "auto", "auto", "y")
    assert (info.problem_type, info.metric, info.greater_is_better) == ("binary", "f1", True)
    assert info.positive_class == "yes" and "2 distinct" in info.reason
    assert list(encode_target(pd.Series(["yes", "no"]), info)) == [1, 0]
    reg = resolve_problem(pd.Series(np.linspace(0, 1, 30)), "auto", "auto", "y")
    assert (reg.problem_type, reg.metric, reg.greater_is_better) == ("regression", "mse", False)


def test_imbalance_is_reported(caplog):
    with caplog.at_level("WARNING"):
        resolve_problem(pd.Series(["a"] * 95 + ["b"] * 5), "auto", "auto", "y")
    assert "imbalanced" in caplog.text


def test_metric_must_fit_problem_type():
    with pytest.raises(ConfigError, match="does not fit"):
        resolve_problem(pd.Series(np.linspace(0, 1, 30)), "auto", "auc", "y")


@pytest.mark.parametrize("y, match", [(pd.Series([np.nan] * 5), "all missing"), (pd.Series([3] * 5), "single value")])
def test_degenerate_targets(y, match):
    with pytest.raises(DataError, match=match):
        resolve_problem(y, "auto", "auto", "y")
