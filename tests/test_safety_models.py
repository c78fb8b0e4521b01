"""Models that load without running code (issue 14, defect 4).

Models are skops files loaded with an explicit list of trusted types; a rewritten model file
with a matching digest is refused without running its payload; refit verifies every file it
reads; trial ids cannot escape the run folder; the manifest records library versions; pickles
of earlier releases load only with ``allow_pickle=true``.

``tests/fixtures/legacy_run/run`` was written by the release before this change (commit
8524f5e): ``automl fit`` on the first 120 rows of the penguins benchmark (target ``species``),
candidate ``dpp1-linear`` only, ``budget.time_limit_s=8 budget.max_trials=3
search.executor=local search.ensemble=false``; report.html and the notebooks were removed
(and dropped from its manifest) to keep it small. ``rows.csv`` are 20 further penguins rows and
``expected.csv`` what that release's ``automl predict`` wrote for them.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import automl
from automl.errors import ArtifactError
from conftest import VENV_BIN, automl_cli, free_port, make_binary_frame

LEGACY = Path(__file__).parent / "fixtures" / "legacy_run"
ALGORITHMS = ("xgboost", "linear", "svm", "knn", "mlp", "random_forest", "extra_trees", "hist_gb")


class _PicklePayload:
    """A pickle that writes a marker file when loaded: what a tampered model.pkl could do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("pwned",))


def skops_payload(marker: Path) -> bytes:
    """A skops file whose loading, if its type were trusted, calls ``builtins.exec`` to write ``marker``."""
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    schema = {"__class__": "exec", "__module__": "builtins", "__loader__": "ConstructorFromReduceNode",
              "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                          "content": [{"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
                                       "content": json.dumps(code), "is_json": True}]},
              "protocol": 2, "_skops_version": "0.16.0"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        out.writestr("schema.json", json.dumps(schema))
    return buf.getvalue()


def set_digest(run_dir: Path, rel: str) -> None:
    """What an attacker with write access does: make manifest.json match the rewritten file."""
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    data = (run_dir / rel).read_bytes()
    manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    path.write_text(json.dumps(manifest, indent=2))


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory):
    """A small real fit (in-process search): linear and XGBoost, a few trials."""
    out = tmp_path_factory.mktemp("safety_models") / "run"
    return automl.fit(make_binary_frame(200), target="y", output_dir=str(out),
                      budget={"max_trials": 4, "time_limit_s": 40}, search={"executor": "local", "ensemble": False},
                      candidates={"include": ["dpp0-xgboost", "dpp1-linear"]})


@pytest.fixture
def run_copy(fresh_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(fresh_run.run_dir, dst)
    return dst


def other_trial(run_dir: Path) -> str:
    lb = pd.read_csv(run_dir / "leaderboard.csv", dtype={"trial_id": str})
    best = json.loads((run_dir / "summary.json").read_text())["best"]["trial_id"]
    return lb[(lb["status"] == "completed") & (lb["trial_id"] != best)]["trial_id"].iloc[0]


# ----------------------------------------------------------------------------- the format
def _bundle(algorithm: str, problem_type: str):
    from automl.candidates.generate import Candidate
    from automl.model import ModelBundle
    from automl.search.trial import build_pipeline

    df = make_binary_frame(120, seed=1)
    types = {"x1": "numeric", "x2": "numeric", "color": "categorical"}
    y = (df["y"] == "yes").astype(int).to_numpy() if problem_type == "binary" else df["x1"].to_numpy() * 3.0
    X = df[list(types)] if problem_type == "binary" else df[["x2", "color"]]
    types = {c: types[c] for c in X.columns}
    small = {"xgboost": {"model.n_estimators": 5}, "random_forest": {"model.n_estimators": 5},
             "extra_trees": {"model.n_estimators": 5}, "hist_gb": {"model.max_iter": 5},
             "mlp": {"model.max_iter": 20}, "knn": {"model.p": 1 if problem_type == "regression" else 2},
             }.get(algorithm, {})
    candidate = Candidate(algorithm, algorithm, {"categorical": "onehot", "scale": "standard"},
                          {"params": {}, "fixed": {}})
    pipe = build_pipeline(candidate, small, types, problem_type, 0).fit(X, y)
    return ModelBundle(pipeline=pipe, problem_type=problem_type, target="y", feature_columns=list(types),
                       column_types=types, classes=[0, 1] if problem_type == "binary" else [],
                       trial_id="t1", candidate=algorithm, metadata={"params": small, "score": 0.5}), X


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_round_trips_bit_identically_without_pickle(algorithm):
    from automl.rundir.modelfile import dump_model, load_model_bytes

    for problem_type in ("binary", "regression"):
        bundle, X = _bundle(algorithm, problem_type)
        data = dump_model(bundle)
        assert zipfile.is_zipfile(io.BytesIO(data)) and b"pickle" not in data[:2]
        back = load_model_bytes(data, "model.skops")
        assert np.array_equal(back.predict_matrix(X), bundle.predict_matrix(X))


def test_the_ensemble_round_trips_bit_identically():
    from automl.ensemble import WeightedEnsemble
    from automl.model import ModelBundle
    from automl.rundir.modelfile import dump_model, load_model_bytes

    members = [_bundle(a, "binary") for a in ("xgboost", "linear", "random_forest")]
    X = members[0][1]
    ens = WeightedEnsemble([b.pipeline for b, _ in members], [0.5, 0.25, 0.25], "binary", n_classes=2)
    bundle = ModelBundle(pipeline=ens, problem_type="binary", target="y", feature_columns=list(X.columns),
                         column_types=members[0][0].column_types, classes=[0, 1], trial_id="ensemble")
    expected = bundle.predict_matrix(X)
    back = load_model_bytes(dump_model(bundle), "model.skops")
    assert np.array_equal(back.predict_matrix(X), expected)


def test_every_trusted_type_names_a_real_class():
    import importlib

    from automl.rundir.modelfile import TRUSTED_TYPES

    for name in TRUSTED_TYPES:
        module, _, attr = name.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), attr), type), name


def test_a_model_file_with_another_type_is_refused_in_one_line(tmp_path):
    from automl.rundir.modelfile import load_model_bytes

    marker = tmp_path / "marker"
    with pytest.raises(ArtifactError) as err:
        load_model_bytes(skops_payload(marker), "model.skops")
    assert "builtins.exec" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


# ----------------------------------------------------------------------------- tampering (acceptance)
def test_a_fit_writes_a_skops_model_and_library_versions(fresh_run):
    run_dir = Path(fresh_run.run_dir)
    assert (run_dir / "model.skops").exists() and not (run_dir / "model.pkl").exists()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {"automl", "scikit-learn", "xgboost", "python", "skops"} <= set(manifest["versions"])
    assert "model.skops" in manifest["files"]


def test_rewritten_skops_model_with_matching_digest_is_refused_without_running_it(run_copy, tmp_path):
    import skops.io as sio

    marker = tmp_path / "marker"
    payload = skops_payload(marker)
    sio.loads(payload, trusted=sio.get_untrusted_types(data=payload))  # the payload is real: trusting it runs it
    assert marker.exists()
    marker.unlink()
    (run_copy / "model.skops").write_bytes(payload)
    set_digest(run_copy, "model.skops")
    with pytest.raises(ArtifactError, match="builtins.exec"):
        automl.load(str(run_copy)).model
    res = automl_cli("predict", f"run_dir={run_copy}", f"input={run_copy}/in.csv", f"output={tmp_path}/out.csv")
    assert res.returncode == 2 and "builtins.exec" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "out.csv").exists()


def test_rewritten_pickle_with_matching_digest_is_refused_without_allow_pickle(run_copy, tmp_path):
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_PicklePayload(str(marker))))  # the payload is real: unpickling runs it
    assert marker.exists()
    marker.unlink()
    (run_copy / "model.skops").unlink()
    (run_copy / "model.pkl").write_bytes(pickle.dumps(_PicklePayload(str(marker))))
    manifest = json.loads((run_copy / "manifest.json").read_text())
    del manifest["files"]["model.skops"]
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    set_digest(run_copy, "model.pkl")
    with pytest.raises(ArtifactError, match="allow_pickle=true"):
        automl.load(str(run_copy)).model
    assert not marker.exists()


# ----------------------------------------------------------------------------- refit reads verified files
@pytest.mark.parametrize("rel", ["leaderboard.csv", "data/train.parquet", "candidates/{}.yaml", "summary.json",
                                 "config.yaml"])
def test_refit_refuses_files_modified_after_the_fit(run_copy, rel):
    trial = other_trial(run_copy)
    lb = pd.read_csv(run_copy / "leaderboard.csv", dtype={"trial_id": str})
    rel = rel.format(lb.loc[lb["trial_id"] == trial, "candidate"].iloc[0])
    path = run_copy / rel
    path.write_bytes(path.read_bytes() + (b"\n" if rel.endswith((".csv", ".yaml", ".json")) else b"\x00"))
    with pytest.raises(ArtifactError, match="sha256"):
        automl.load(str(run_copy)).trial_model(trial)
    assert not (run_copy / "models").exists()


def test_an_escaping_trial_id_in_an_edited_leaderboard_is_refused(run_copy, tmp_path):
    trial = other_trial(run_copy)
    text = (run_copy / "leaderboard.csv").read_text().replace(trial, "../../escape")
    (run_copy / "leaderboard.csv").write_text(text)
    set_digest(run_copy, "leaderboard.csv")
    before = sorted(p for p in tmp_path.rglob("*") if "run" not in p.relative_to(tmp_path).parts[:1])
    for trial_id in ("../../escape", "..", "a/b", "x" * 65):
        with pytest.raises(automl.AutoMLError, match="trial"):
            automl.load(str(run_copy)).trial_model(trial_id)
    res = automl_cli("predict", f"run_dir={run_copy}", f"input={run_copy}/x.csv", f"output={tmp_path}/o.csv",
                     "trial=../../escape")
    assert res.returncode == 2 and "trial" in res.stderr
    after = sorted(p for p in tmp_path.rglob("*") if "run" not in p.relative_to(tmp_path).parts[:1])
    assert after == before and not list(tmp_path.parent.glob("escape*"))
    assert not any(".." in k for k in json.loads((run_copy / "manifest.json").read_text())["files"])


def test_resume_builds_no_path_from_an_escaping_trial_id(tmp_path):
    from automl.search.resume import result_url

    assert result_url(str(tmp_path), "a1b2c3").endswith("trials/a1b2c3/result.json")
    with pytest.raises(ArtifactError, match="not a valid trial id"):
        result_url(str(tmp_path), "../../escape")


def test_a_refit_trial_is_cached_as_a_verified_skops_file(run_copy, fresh_run):
    trial = other_trial(run_copy)
    X = make_binary_frame(30, seed=3)
    first = automl.load(str(run_copy)).trial_model(trial).predict_matrix(X)
    assert (run_copy / "models" / f"{trial}.skops").exists()
    assert f"models/{trial}.skops" in json.loads((run_copy / "manifest.json").read_text())["files"]
    assert np.array_equal(automl.load(str(run_copy)).trial_model(trial).predict_matrix(X), first)


def test_loading_under_other_library_versions_warns_once_naming_them(run_copy, caplog):
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["versions"]["scikit-learn"] = "0.0.1"
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    import sklearn

    with caplog.at_level(logging.WARNING, logger="automl"):
        automl.load(str(run_copy)).model
        automl.load(str(run_copy)).model
    lines = [r.getMessage() for r in caplog.records if "0.0.1" in r.getMessage()]
    assert len(lines) == 1 and sklearn.__version__ in lines[0] and "scikit-learn" in lines[0]


# ----------------------------------------------------------------------------- runs of earlier releases
@pytest.fixture
def legacy(tmp_path) -> Path:
    dst = tmp_path / "legacy"
    shutil.copytree(LEGACY / "run", dst)
    return dst


def test_legacy_pickle_run_is_refused_without_allow_pickle(legacy, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append(a))
    with pytest.raises(ArtifactError, match="allow_pickle=true") as err:
        automl.load(str(legacy)).model
    assert "model.pkl" in str(err.value) and not calls
    res = automl_cli("predict", f"run_dir={legacy}", f"input={LEGACY}/rows.csv", f"output={tmp_path}/out.csv")
    assert res.returncode == 2 and "allow_pickle=true" in res.stderr and not (tmp_path / "out.csv").exists()


def test_legacy_pickle_run_loads_and_predicts_with_allow_pickle(legacy, tmp_path):
    expected = pd.read_csv(LEGACY / "expected.csv")
    run = automl.load(str(legacy), allow_pickle=True)
    got = run.predict_frame(str(LEGACY / "rows.csv"))
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)
    res = automl_cli("predict", f"run_dir={legacy}", f"input={LEGACY}/rows.csv", f"output={tmp_path}/out.csv",
                     "allow_pickle=true")
    assert res.returncode == 0, res.stderr
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out.csv"), expected, check_exact=False, rtol=1e-12)
    res = automl_cli("monitor", f"run_dir={legacy}", f"data={LEGACY}/rows.csv", f"output={tmp_path}/mon")
    assert res.returncode in (0, 3), res.stderr  # monitoring never loads the model


@pytest.mark.slow
def test_legacy_pickle_run_serves_with_allow_pickle(legacy):
    import requests

    port = free_port()
    exe = VENV_BIN / "automl"
    base = [str(exe), "serve", f"run_dir={legacy}", f"port={port}"]
    refused = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "allow_pickle=true" in refused.stderr
    proc = subprocess.Popen(base + ["allow_pickle=true"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        from test_serving import wait_ping

        wait_ping(f"http://127.0.0.1:{port}", proc)
        body = pd.read_csv(LEGACY / "rows.csv").drop(columns=["species"]).to_csv(index=False, header=False)
        res = requests.post(f"http://127.0.0.1:{port}/invocations", data=body, timeout=30,
                            headers={"Content-Type": "text/csv", "Accept": "text/csv"})
        assert res.status_code == 200, res.text
        labels = [line.split(",")[0] for line in res.text.strip().splitlines()]
        assert labels == pd.read_csv(LEGACY / "expected.csv")["predicted_label"].tolist()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("processing", [
    {"categorical": "onehot", "scale": "quantile", "high_cardinality": "target"},
    {"categorical": "ordinal", "scale": "log", "high_cardinality": "frequency"},
    {"categorical": "onehot", "scale": "robust", "numeric_impute": "zero"},
    {"categorical": "onehot", "scale": "minmax", "missing_indicator": False},
])
def test_every_processing_step_round_trips_bit_identically(processing):
    from automl.candidates.generate import Candidate
    from automl.model import ModelBundle
    from automl.rundir.modelfile import dump_model, load_model_bytes
    from automl.search.trial import build_pipeline

    rng = np.random.default_rng(0)
    n = 150
    X = pd.DataFrame({"num": rng.normal(size=n), "flag": rng.choice(["yes", "no"], n),
                      "city": [f"c{i}" for i in rng.integers(0, 60, n)], "color": rng.choice(["r", "g"], n),
                      "when": pd.date_range("2020-01-01", periods=n, freq="37h").astype(str),
                      "note": rng.choice(["red apple", "green pear", "ripe red plum"], n)})
    X.loc[::7, "num"] = np.nan
    types = {"num": "numeric", "flag": "boolean", "city": "categorical", "color": "categorical",
             "when": "datetime", "note": "text"}
    y = (rng.random(n) > 0.5).astype(int)
    candidate = Candidate("linear", "linear", processing, {"params": {}, "fixed": {}})
    pipe = build_pipeline(candidate, {}, types, "binary", 0).fit(X, y)
    bundle = ModelBundle(pipeline=pipe, problem_type="binary", target="y", feature_columns=list(types),
                         column_types=types, classes=[0, 1])
    back = load_model_bytes(dump_model(bundle), "model.skops")
    assert np.array_equal(back.predict_matrix(X), bundle.predict_matrix(X))
