"""Predictions for the endpoint: typed rows in, response objects out, a fast path for small requests.

A saved pipeline starts with ``FeatureCaster``, which casts column by column; on a one-row
request that costs more than the model. Rows that come through :class:`InputSchema` already
have float64 numeric columns, so :class:`FastCastPipeline` casts those as one block (the same
rule: non-finite becomes missing) and leaves every other column to the saved caster. Its
predictions equal the saved pipeline's (tests check this against ``automl predict``).
"""
from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from automl.errors import ConfigError
from automl.model import ModelBundle
from automl.serving.schema import InputSchema

RESPONSE_KEYS = ("predicted_label", "probability", "probabilities", "labels")


class FastCastPipeline:
    """``caster`` + the rest of a fitted Pipeline, with numeric columns cast as one block."""

    def __init__(self, pipeline: Any):
        caster = pipeline.steps[0][1]
        self.rest = pipeline[1:]
        self.order = list(caster.output_types_)
        self.numeric = [c for c, k in caster.column_types.items() if k == "numeric"]
        self.numeric_index = pd.Index(self.numeric, dtype=object)
        others = {c: k for c, k in caster.column_types.items() if k != "numeric"}
        self.others: Optional[Any] = None
        if others:
            self.others = copy.copy(caster)
            self.others.column_types = others
            self.others.columns_ = list(others)

    @classmethod
    def applies(cls, pipeline: Any) -> bool:
        from sklearn.pipeline import Pipeline

        from automl.candidates.processing import FeatureCaster

        return isinstance(pipeline, Pipeline) and len(pipeline.steps) > 1 \
            and type(pipeline.steps[0][1]) is FeatureCaster and hasattr(pipeline.steps[0][1], "output_types_")

    @property
    def classes_(self):
        return self.rest.classes_

    def cast(self, X: pd.DataFrame) -> pd.DataFrame:
        if X.shape[1] == len(self.numeric) and X.columns.equals(self.numeric_index):
            block = X.to_numpy(dtype=np.float64, copy=True)  # all-numeric input: no column lookups
        else:
            block = X[self.numeric].to_numpy(dtype=np.float64, copy=True) if self.numeric else np.empty((len(X), 0))
        block[~np.isfinite(block)] = np.nan
        out = pd.DataFrame(block, columns=self.numeric_index, index=X.index)
        if self.others is not None:
            out = pd.concat([out, self.others.transform(X)], axis=1)[self.order]
        return out

    def _features(self, X: pd.DataFrame):
        # The steps one by one: Pipeline.predict_* re-checks every step is fitted on each call,
        # which costs more than the model on a one-row request.
        Xt = self.cast(X)
        for _, step in self.rest.steps[:-1]:
            if step is not None and step != "passthrough":
                Xt = step.transform(Xt)
        return Xt

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.rest.steps[-1][1].predict(self._features(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.rest.steps[-1][1].predict_proba(self._features(X))


class Predictor:
    """A model ready to answer requests: typed input, chosen response keys."""

    def __init__(self, bundle: ModelBundle, schema: InputSchema, response_keys: Optional[Sequence[str]] = None):
        self.bundle = bundle
        self.schema = schema
        self.classification = bundle.problem_type != "regression"
        self.response_keys = resolve_response_keys(response_keys, self.classification)
        self.labels = [_plain(c) for c in bundle.classes]
        fast = copy.copy(bundle)
        if FastCastPipeline.applies(bundle.pipeline):
            fast.pipeline = FastCastPipeline(bundle.pipeline)
        self._fast = fast

    def matrix(self, X: pd.DataFrame) -> np.ndarray:
        """As ``ModelBundle.predict_matrix`` for rows from ``self.schema`` (columns already in order)."""
        pipe = self._fast.pipeline
        if not self.classification:
            return np.asarray(pipe.predict(X), dtype=float)
        proba = pipe.predict_proba(X)
        if proba.shape[1] != len(self.bundle.classes):  # a class the model never saw: probability 0
            full = np.zeros((len(X), len(self.bundle.classes)))
            full[:, np.asarray(pipe.classes_, dtype=int)] = proba
            proba = full
        return proba

    def responses(self, m: np.ndarray) -> List[Dict[str, Any]]:
        """One response object per row of a prediction matrix, with the configured keys."""
        keys = self.response_keys
        labels = self._fast.labels_from_matrix(m)
        out: List[Dict[str, Any]] = []
        if not self.classification:
            return [{"predicted_label": _plain(v)} for v in labels]
        index = {c: i for i, c in enumerate(self.bundle.classes)}
        for row, label in zip(m, labels):
            obj: Dict[str, Any] = {}
            if "predicted_label" in keys:
                obj["predicted_label"] = _plain(label)
            if "probability" in keys:
                obj["probability"] = float(row[index[label]])
            if "probabilities" in keys:
                obj["probabilities"] = [float(p) for p in row]
            if "labels" in keys:
                obj["labels"] = self.labels
            out.append(obj)
        return out


def resolve_response_keys(keys: Optional[Sequence[str]], classification: bool) -> List[str]:
    """Validate ``response_keys``; the default is predicted_label, plus probability for classification."""
    if keys is None or (isinstance(keys, (list, tuple)) and not keys):
        return ["predicted_label", "probability"] if classification else ["predicted_label"]
    if isinstance(keys, str):
        keys = [k.strip() for k in keys.split(",") if k.strip()]
    bad = [k for k in keys if k not in RESPONSE_KEYS]
    if bad:
        raise ConfigError(f"response_keys has unknown key(s) {', '.join(map(str, bad))}; "
                          f"allowed: {', '.join(RESPONSE_KEYS)}")
    if not classification and any(k != "predicted_label" for k in keys):
        raise ConfigError(f"response_keys={list(keys)}: a regression model answers only predicted_label; "
                          f"use response_keys=[predicted_label]")
    return list(dict.fromkeys(keys))


def _plain(v: Any) -> Any:
    """numpy scalars to JSON-ready Python values."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
