"""`automl export format=onnx`: the whole pipeline, processing included, as one ONNX graph whose
outputs in onnxruntime match `automl predict` on held-out rows (probabilities within 1e-5).

The graph's inputs are built here by hand from the raw rows (one [N, 1] column each: double for
numbers and booleans, text for categories, "" for a missing category), independently of automl's
own helper.
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

import automl
from automl.cli import main

ALL = ("dpp0-xgboost", "dpp1-linear", "dpp2-mlp", "dpp3-random_forest", "dpp4-extra_trees", "dpp5-svm", "dpp6-knn",
       "dpp7-lightgbm", "dpp8-catboost")


# The linear candidate's own space also searches preprocess.scale=quantile, which has no ONNX
# conversion (tested below): this one keeps its standard scaling.
LINEAR_SPACE = {"params": {"model.C": {"type": "float", "low": 0.01, "high": 10.0, "log": True, "init": 1.0}},
                "portfolio": [{}]}


def only(*keep: str) -> dict:
    out = {name: {"enabled": name in keep} for name in ALL}
    out["dpp1-linear"]["space"] = LINEAR_SPACE
    return out


def mixed_frame(n: int, seed: int, classes: int) -> pd.DataFrame:
    """Numbers with missing values, a boolean, a categorical with a rare level and missing values."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.uniform(0, 10, size=n)
    color = rng.choice(["red", "green", "blue", "violet"], size=n, p=[0.4, 0.3, 0.28, 0.02])
    flag = rng.random(n) < 0.4
    score = 1.5 * x1 - 0.3 * x2 + (color == "red") + 0.8 * flag + rng.normal(scale=0.5, size=n)
    cuts = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])
    y = np.asarray(["low", "mid", "high"][:classes] if classes == 3 else ["no", "yes"])[np.searchsorted(cuts, score)]
    df = pd.DataFrame({"x1": x1, "x2": x2, "color": color, "flag": flag, "y": y})
    df.loc[rng.choice(n, n // 20, replace=False), "x2"] = np.nan
    df["color"] = df["color"].astype(object)
    df.loc[rng.choice(n, n // 25, replace=False), "color"] = np.nan
    return df


def fit(tmp, frame: pd.DataFrame, keep: tuple, budget_s: float = 20, search: dict | None = None, **overrides):
    """A small real fit of the ``keep`` candidates only, in forked workers (no Ray)."""
    return automl.fit(frame, target="y", output_dir=str(tmp / "run"), candidates=only(*keep),
                      budget={"time_limit_s": budget_s, "max_trials": 3}, search={"executor": "local", **(search or {})},
                      validation={"n_folds": 3, "rerank_top": 0}, **overrides)


def by_hand_inputs(session, rows: pd.DataFrame) -> dict:
    feed = {}
    for inp in session.get_inputs():
        col = rows[inp.name]
        if inp.type == "tensor(string)":
            feed[inp.name] = col.astype(object).where(col.notna(), "").astype(str).to_numpy(dtype=object).reshape(-1, 1)
        else:
            feed[inp.name] = col.astype(float).to_numpy().reshape(-1, 1)
    return feed


def export_and_compare(run, tmp, test: pd.DataFrame, trial: str | None = None):
    ort = pytest.importorskip("onnxruntime")
    extra = [f"trial={trial}"] if trial else []
    assert main(["export", f"run_dir={run.run_dir}", "format=onnx", f"output={tmp / 'model.onnx'}", *extra]) == 0
    test.drop(columns="y").to_csv(tmp / "test.csv", index=False)
    assert main(["predict", f"run_dir={run.run_dir}", f"input={tmp / 'test.csv'}", f"output={tmp / 'pred.csv'}",
                 *extra]) == 0
    expected = pd.read_csv(tmp / "pred.csv")
    session = ort.InferenceSession(str(tmp / "model.onnx"), providers=["CPUExecutionProvider"])
    labels, proba = session.run(["label", "probabilities"], by_hand_inputs(session, test))
    classes = [str(c) for c in run.summary["classes"]]
    np.testing.assert_allclose(proba, expected[[f"proba_{c}" for c in classes]].to_numpy(), rtol=0, atol=1e-5)
    assert labels.astype(str).tolist() == expected["predicted_label"].astype(str).tolist()
    return session


@pytest.mark.slow
def test_an_xgboost_multiclass_run_with_isotonic_probabilities_exports_with_parity(tmp_path):
    pytest.importorskip("onnxmltools")
    df = mixed_frame(360, seed=1, classes=3)
    run = fit(tmp_path, df.iloc[:300], ("dpp0-xgboost",), select={"calibration": "isotonic"})
    session = export_and_compare(run, tmp_path, df.iloc[300:])
    assert {i.name for i in session.get_inputs()} == {"x1", "x2", "color", "flag"}


@pytest.mark.slow
def test_a_linear_binary_run_with_a_threshold_and_temperature_exports_with_parity(tmp_path):
    pytest.importorskip("skl2onnx")
    df = mixed_frame(300, seed=2, classes=2)
    run = fit(tmp_path, df.iloc[:240], ("dpp1-linear",), metric="f1", select={"calibration": "temperature"},
              search={"ensemble": False})
    assert run.model.threshold is not None  # labels follow the tuned threshold, in the graph too
    export_and_compare(run, tmp_path, df.iloc[240:])


@pytest.mark.slow
def test_a_linear_run_on_the_spline_basis_exports_with_parity(tmp_path):
    """preprocess.scale=spline (the linear portfolio's second point): the basis is rebuilt in the
    graph from the knots; test rows beyond the training range check the constant extrapolation."""
    pytest.importorskip("skl2onnx")
    df = mixed_frame(300, seed=4, classes=2)
    test = df.iloc[240:].copy()
    test.loc[test.index[:3], "x1"] = [-9.0, 9.0, 0.0]  # outside the knots, and on the middle one
    space = {**LINEAR_SPACE, "fixed": {"preprocess.scale": "spline"}}
    cands = only("dpp1-linear")
    cands["dpp1-linear"]["space"] = space
    run = automl.fit(df.iloc[:240], target="y", output_dir=str(tmp_path / "run"), candidates=cands,
                     budget={"time_limit_s": 20, "max_trials": 2}, search={"executor": "local", "ensemble": False},
                     validation={"n_folds": 3, "rerank_top": 0})
    assert "SplineExpand" in repr(run.model.pipeline)
    export_and_compare(run, tmp_path, test)


@pytest.mark.slow
def test_a_step_without_a_conversion_is_one_line_naming_it(tmp_path, capsys):
    pytest.importorskip("skl2onnx")
    run = fit(tmp_path, mixed_frame(120, seed=3, classes=2), ("dpp5-svm",), budget_s=10, search={"ensemble": False})
    out = tmp_path / "svm.onnx"
    assert main(["export", f"run_dir={run.run_dir}", "format=onnx", f"output={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "step 'model'" in err[0] and "SoftmaxSVC" in err[0], err
    assert not out.exists()


def test_export_without_the_onnx_packages_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # as if not installed
    assert main(["export", f"run_dir={tmp_path}", "format=onnx", f"output={tmp_path / 'm.onnx'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'automl[onnx]'" in err[0], err


def test_export_refuses_an_unknown_format_and_an_existing_output(tmp_path, capsys):
    assert main(["export", f"run_dir={tmp_path}", "format=pmml", f"output={tmp_path / 'm.pmml'}"]) == 2
    assert "format must be one of onnx" in capsys.readouterr().err
    (tmp_path / "m.onnx").write_bytes(b"keep me")
    pytest.importorskip("skl2onnx")
    pytest.importorskip("onnxruntime")
    assert main(["export", f"run_dir={tmp_path}", "format=onnx", f"output={tmp_path / 'm.onnx'}"]) == 2
    assert "already exists; pass overwrite=true" in capsys.readouterr().err
    assert (tmp_path / "m.onnx").read_bytes() == b"keep me"
