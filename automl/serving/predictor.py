"""Predictions for the endpoint: typed rows in, response objects out, fast on one-row requests.

On a one-row request scikit-learn's bookkeeping costs more than the arithmetic. Rows that come
through :class:`InputSchema` have float64 numeric columns in a known order, which allows:

- :class:`FastCastPipeline`: the saved ``FeatureCaster`` rule for those columns (non-finite
  becomes missing) applied to one block; other columns still go to the saved caster;
- :func:`_direct_transform`: the fitted steps called one after the other, without Pipeline's and
  ColumnTransformer's per-call fitted checks and joblib dispatch; plain numeric blocks (imputer,
  scaler) get the array of their columns instead of a frame;
- :class:`FastForest`: forests sum their trees directly;
- :func:`fast_groups`: ensemble members with identical processing share one cast and transform;
- :func:`fast_model`: picks the right one for a saved model.

Each shortcut computes the same floats as the saved pipeline: tests compare them exactly, for
every algorithm of a run and for ensembles, and the endpoint against ``automl predict``.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from automl.errors import ConfigError
from automl.model import ModelBundle
from automl.serving.codec import json_value
from automl.serving.schema import InputSchema

RESPONSE_KEYS = ("predicted_label", "probability", "probabilities", "labels")


class FastCastPipeline:
    """``caster`` + the rest of a fitted Pipeline, with float columns cast as one block.

    ``float_columns`` are the columns the caller guarantees to be float64 (``InputSchema``
    makes them so). The caster's rules for them: a numeric column's non-finite values become
    missing; a boolean column of numbers is kept as floats. Other columns go to the caster.
    """

    def __init__(self, pipeline: Any, float_columns: Sequence[str]):
        caster = pipeline.steps[0][1]
        self.rest = pipeline[1:]
        final = self.rest.steps[-1][1]
        self.final = FastForest(final) if FastForest.applies(final) else final
        floats = set(float_columns)
        types = caster.column_types
        self.block = [c for c, k in types.items() if k == "numeric" or (k == "boolean" and c in floats)]
        self.block_index = pd.Index(self.block, dtype=object)
        self.finite_only = np.array([types[c] == "numeric" for c in self.block])
        others = {c: k for c, k in types.items() if c not in set(self.block)}
        self.order = pd.Index(list(caster.output_types_), dtype=object)
        self.others: Optional[Any] = None
        self._transform: Optional[Callable[[Any], Any]] = None
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
        if X.shape[1] == len(self.block) and X.columns.equals(self.block_index):
            block = X.to_numpy(dtype=np.float64, copy=True)  # all-float input: no column lookups
        elif self.block:
            block = X[self.block].to_numpy(dtype=np.float64, copy=True)
        else:
            block = np.empty((len(X), 0))
        block[(~np.isfinite(block)) & self.finite_only] = np.nan
        out = pd.DataFrame(block, columns=self.block_index, index=X.index)
        if self.others is not None:
            out = pd.concat([out, self.others.transform(X)], axis=1)[self.order]
        return out

    def _features(self, X: pd.DataFrame):
        if self._transform is None:
            self._transform = _direct_transform(self.rest[:-1])
        return self._transform(self.cast(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.final.predict(self._features(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.final.predict_proba(self._features(X))


class FastForest:
    """A fitted random forest / extra-trees model that sums its trees without per-tree overhead.

    scikit-learn's forest calls each tree's ``predict_proba`` through joblib, and each call
    checks the tree is fitted: on one row that costs ~50 us a tree, 10 ms for 200 trees. Here
    the input is validated once, as the forest does it, and the trees' ``tree_.predict`` are
    summed in the same order and divided by their number: the same arithmetic, so the same
    floats (for ``n_jobs=1``, which automl's forests use).
    """

    def __init__(self, forest: Any):
        self.forest = forest
        self.trees = [t.tree_ for t in forest.estimators_]
        self.classifier = hasattr(forest, "classes_")
        self.n_classes = int(forest.n_classes_) if self.classifier else 0

    @classmethod
    def applies(cls, est: Any) -> bool:
        from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier,
                                      RandomForestRegressor)

        if not hasattr(est, "_validate_X_predict"):  # scikit-learn moved it: use the forest as is
            return False
        return type(est) in (RandomForestClassifier, ExtraTreesClassifier, RandomForestRegressor,
                             ExtraTreesRegressor) and getattr(est, "n_outputs_", 0) == 1 \
            and getattr(est, "n_jobs", None) in (None, 1) and bool(getattr(est, "estimators_", None))

    @property
    def classes_(self):
        return self.forest.classes_

    def _X(self, X: Any):
        from scipy import sparse

        Xv = self.forest._validate_X_predict(X)
        return None if sparse.issparse(Xv) else Xv

    def predict_proba(self, X: Any) -> np.ndarray:
        Xv = self._X(X)
        if Xv is None:
            return self.forest.predict_proba(X)
        out = np.zeros((Xv.shape[0], self.n_classes), dtype=np.float64)
        for tree in self.trees:
            out += tree.predict(Xv)[:, : self.n_classes]
        out /= len(self.trees)
        return out

    def predict(self, X: Any) -> np.ndarray:
        if self.classifier:
            return self.forest.predict(X)
        Xv = self._X(X)
        if Xv is None:
            return self.forest.predict(X)
        out = np.zeros(Xv.shape[0], dtype=np.float64)
        for tree in self.trees:
            out += tree.predict(Xv)[:, 0]
        out /= len(self.trees)
        return out


def fast_groups(ensemble: Any, float_columns: Sequence[str]) -> List[Any]:
    """A :class:`~automl.ensemble.WeightedEnsemble`'s member groups on the fast path: one fast
    cast and transform per group of members with identical processing, then each member's
    final step (forests through :class:`FastForest`). The ensemble still combines the outputs,
    in member order, so the floats are the saved ensemble's."""
    from types import SimpleNamespace

    groups: List[Any] = []
    for pre, members in ensemble.groups():
        first = ensemble.estimators[members[0][0]]
        if pre is not None and FastCastPipeline.applies(first):
            fast = FastCastPipeline(first, float_columns)
            finals = [(i, FastForest(f) if FastForest.applies(f) else f) for i, f in members]
            groups.append((SimpleNamespace(transform=fast._features), finals))
        else:
            groups.extend((None, [(i, fast_model(ensemble.estimators[i], float_columns))]) for i, _ in members)
    return groups


def fast_model(model: Any, float_columns: Sequence[str]) -> Any:
    """The model with each saved pipeline (also each member of an ensemble) on the fast path."""
    if FastCastPipeline.applies(model):
        return FastCastPipeline(model, float_columns)
    from automl.ensemble import WeightedEnsemble

    if isinstance(model, WeightedEnsemble):
        return model.with_groups(fast_groups(model, float_columns))
    return model


def _direct_transform(step: Any) -> Callable[[Any], Any]:
    """``step.transform`` without the per-call bookkeeping of Pipeline and ColumnTransformer.

    On a one-row request, checking every step is fitted, dispatching through joblib and
    re-validating feature names cost more than the transforms. Fitted steps are called
    directly, in the same order on the same inputs, so the output is the same array. Anything
    not plainly dense (sparse output, pandas output, non-name column selections) keeps its own
    ``transform``.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(step, Pipeline):
        parts = [_direct_transform(s) for _, s in step.steps if s is not None and s != "passthrough"]

        def run(X):
            for part in parts:
                X = part(X)
            return X
        return run
    if isinstance(step, ColumnTransformer) and _plain_column_transformer(step):
        blocks = []
        for _, trans, cols in step.transformers_:
            if isinstance(trans, str) and trans == "drop":
                continue
            numeric = _numeric_chain(trans)
            fn = _direct_transform(_nameless(trans) if numeric else trans)
            blocks.append((list(cols), pd.Index(list(cols), dtype=object), fn, numeric, _direct_transform(trans)))

        def run_ct(X):
            outs = []
            for cols, index, fn, numeric, fn_frame in blocks:
                sub = X if X.shape[1] == len(cols) and X.columns.equals(index) else X[cols]
                if numeric:
                    arr = sub.to_numpy()
                    if arr.dtype == np.float64:  # the caster's numeric output: same values, no frame checks
                        outs.append(np.asarray(fn(arr)))
                        continue
                outs.append(np.asarray(fn_frame(sub)))
            return np.hstack(outs)
        return run_ct
    if isinstance(step, str) and step == "passthrough":
        return lambda X: X
    return step.transform


def _numeric_chain(trans: Any) -> bool:
    """A transformer (or Pipeline) of plain numeric scikit-learn steps, fine with a float array."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, QuantileTransformer, RobustScaler, StandardScaler

    from automl.candidates.processing import SignedLog

    plain = (SimpleImputer, StandardScaler, RobustScaler, MinMaxScaler, QuantileTransformer, SignedLog)
    steps = [s for _, s in trans.steps] if isinstance(trans, Pipeline) else [trans]
    return bool(steps) and all(type(s) in plain for s in steps)


def _nameless(trans: Any) -> Any:
    """Copies of the steps without ``feature_names_in_``, so they take an array of the same
    columns in the same order without warning (the caller selects the columns by name)."""
    from sklearn.pipeline import Pipeline

    def strip(est: Any) -> Any:
        est = copy.copy(est)
        est.__dict__.pop("feature_names_in_", None)
        for key, value in list(est.__dict__.items()):
            if key.endswith("_") and hasattr(value, "feature_names_in_"):  # e.g. SimpleImputer.indicator_
                setattr(est, key, strip(value))
        return est

    if isinstance(trans, Pipeline):
        out = copy.copy(trans)
        out.steps = [(name, strip(s)) for name, s in trans.steps]
        return out
    return strip(trans)


def _plain_column_transformer(ct: Any) -> bool:
    """Dense output, no pandas output, columns named by lists of strings, no passthrough."""
    config = getattr(ct, "_sklearn_output_config", {}) or {}
    if config.get("transform", "default") != "default" or getattr(ct, "sparse_output_", True):
        return False
    for _, trans, cols in ct.transformers_:
        if isinstance(trans, str):
            if trans != "drop":
                return False
            continue
        if not isinstance(cols, (list, tuple)) or not all(isinstance(c, str) for c in cols):
            return False
    return True


class Predictor:
    """A model ready to answer requests: typed input, chosen response keys."""

    def __init__(self, bundle: ModelBundle, schema: InputSchema, response_keys: Optional[Sequence[str]] = None):
        self.bundle = bundle
        self.schema = schema
        self.classification = bundle.problem_type != "regression"
        self.response_keys = resolve_response_keys(response_keys, self.classification)
        self.labels = [json_value(c) for c in bundle.classes]
        fast = copy.copy(bundle)
        fast.pipeline = fast_model(bundle.pipeline, schema.float_columns)
        self._fast = fast

    def matrix(self, X: pd.DataFrame) -> np.ndarray:
        """As ``ModelBundle.predict_matrix`` (calibrated probabilities) for rows from ``self.schema``."""
        return self._fast.calibrate(self.scores(X))

    def scores(self, X: pd.DataFrame) -> np.ndarray:
        """As ``ModelBundle.raw_matrix`` for rows from ``self.schema`` (columns already in order):
        what ``responses`` takes, labels coming from these scores and probabilities calibrated."""
        from sklearn import config_context

        pipe = self._fast.pipeline
        # InputSchema has already refused infinite numbers (its input contract) and the
        # imputers fill missing ones, so scikit-learn's per-step finiteness checks can be skipped.
        with config_context(assume_finite=True):
            if not self.classification:
                return np.asarray(pipe.predict(X), dtype=float)
            proba = pipe.predict_proba(X)
        if proba.shape[1] != len(self.bundle.classes):  # a class the model never saw: probability 0
            full = np.zeros((len(X), len(self.bundle.classes)))
            full[:, np.asarray(pipe.classes_, dtype=int)] = proba
            proba = full
        return proba

    def responses(self, raw: np.ndarray) -> List[Dict[str, Any]]:
        """One response object per row of ``scores``' output, with the configured keys."""
        keys = self.response_keys
        labels = self._fast.labels_from_matrix(raw)
        out: List[Dict[str, Any]] = []
        if not self.classification:
            return [{"predicted_label": json_value(v)} for v in labels]
        m = self._fast.calibrate(raw)
        index = {c: i for i, c in enumerate(self.bundle.classes)}
        for row, label in zip(m, labels):
            obj: Dict[str, Any] = {}
            if "predicted_label" in keys:
                obj["predicted_label"] = json_value(label)
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
