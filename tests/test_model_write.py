"""Writing a model file: skops' schema.json without indentation (rundir/modelfile.py dump_model).

skops writes the schema with ``json.dumps(indent=2)``, which Python encodes in pure Python; the
same JSON without indentation goes through the C encoder (15-35% less CPU per dump,
benchmarks/model_write.py). These tests pin that the file automl writes is the compact
form and that it loads back to the same model, audited like any other.
"""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import LogisticRegression

from automl.rundir.modelfile import dump_model, load_model_bytes, untrusted_types


@pytest.fixture(scope="module")
def forest():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 4)), rng.integers(0, 3, 300)
    return ExtraTreesClassifier(n_estimators=5, random_state=0).fit(X, y), X


def schema_text(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.read("schema.json").decode("utf-8")


def test_schema_is_compact_json(forest):
    model, _ = forest
    text = schema_text(dump_model(model))
    assert "\n" not in text  # skops' own dumps indents every level: one line per key
    assert json.loads(text)["__class__"] == "ExtraTreesClassifier"


def test_compact_file_loads_to_the_same_model(forest):
    model, X = forest
    data = dump_model([model, LogisticRegression().fit(X, model.predict(X))])
    assert untrusted_types(data) == []
    loaded = load_model_bytes(data, "model.skops")
    np.testing.assert_array_equal(loaded[0].predict_proba(X), model.predict_proba(X))
    assert loaded[1].predict(X).shape == (len(X),)


def test_compact_write_leaves_skops_own_dumps_alone(forest):
    """The compact form applies to automl's write only: skops called directly still indents."""
    import skops.io as sio

    model, _ = forest
    dump_model(model)
    assert "\n" in schema_text(sio.dumps(model))
