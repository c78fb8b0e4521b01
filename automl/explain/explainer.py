"""Per-feature contributions of a saved model (``ModelBundle``) in its input columns.

:class:`Explainer` picks the method per model (see methods.py and agnostic.py), sums the
contributions of the processed columns that come from one input column (columns.py), and maps
the model's outputs onto the run's classes. Ensembles (``WeightedEnsemble``, ``BaggedModel``)
whose members are all explained exactly in one output space get the weighted sum of their
members' contributions, in that space: for probability-space members (forests) base + sum is the
ensemble's probability; for margin-space members (XGBoost, linear, LightGBM) it is the weighted
mean of the members' margins. Other ensembles (stacked, or members in different spaces) and other
models get the model-agnostic estimate of their probabilities (or values), whose additivity is
exact against their mean output over the background rows.

The model explained is the saved pipeline itself: a probability calibration (``select.calibration``)
is not part of it, as predicted labels are not.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import pandas as pd

from automl.explain.agnostic import N_BACKGROUND, N_PERMUTATIONS, permutation_shap
from automl.explain.columns import ExplainError, group_matrix, is_cast_pipeline, processed_origins
from automl.explain.methods import MARGIN, PROBABILITY, VALUE, Raw, exact_contributions, has_exact_method

log = logging.getLogger(__name__)

BACKGROUND_ROWS = 100  # training rows kept as the background (linear means; the agnostic estimate uses 16)
AGNOSTIC_BUDGET = 200_000  # predictions the agnostic estimate may spend on one batch of explained rows
AGNOSTIC_MIN_LEFT_S = 15.0  # a fit explains a model without an exact method only with this much budget left
AGNOSTIC_BUDGET_S = 5.0  # and seconds (fit-time baseline, report, a monitored batch): an SVM on digits ~2 rows/s
PROBE_ROWS = 16  # rows of the second warm call that sizes an exact explanation to a time budget
BASE_COLUMN, CLASS_COLUMN = "base_value", "class"
SPACES = {MARGIN: "margin (log-odds; per-class logits for multiclass)", PROBABILITY: "probability",
          VALUE: "predicted value", "log_target": "signed log1p of the target (target_transform=log)"}

Background = Union[pd.DataFrame, Callable[[], Optional[pd.DataFrame]], None]


@dataclass
class Contributions:
    """Contributions in input columns for every output of the model."""

    values: np.ndarray  # (rows, outputs, columns)
    base: np.ndarray  # (rows, outputs)
    columns: List[str]
    outputs: List[Any]  # the run's classes, or [target] for regression
    space: str  # margin | probability | value | log_target
    method: str
    exact: bool  # exact Shapley values (TreeSHAP, linear); False: the agnostic estimate

    def output(self) -> np.ndarray:
        """base + sum of the contributions: the model's output in ``space`` (rows, outputs)."""
        return self.base + self.values.sum(axis=2)


def is_ensemble(model: Any) -> bool:
    """A weighted or bagged ensemble of pipelines (not a stacked one: its second level is not additive)."""
    return hasattr(model, "estimators") and hasattr(model, "weights") and not hasattr(model, "final_estimator")


def background_sample(df: pd.DataFrame, columns: List[str], n: int = BACKGROUND_ROWS, seed: int = 0) -> pd.DataFrame:
    """``n`` rows of ``df`` (seeded), the model's input columns only."""
    rows = df[columns]
    return rows.sample(n=min(n, len(rows)), random_state=seed).reset_index(drop=True) if len(rows) > n else \
        rows.reset_index(drop=True)


class Explainer:
    """Explains one saved model. ``background``: training rows (or a function returning them, called
    on first need), used by linear models (their means) and the agnostic estimate."""

    def __init__(self, bundle: Any, background: Background = None, seed: int = 0,
                 n_permutations: int = N_PERMUTATIONS):
        self.bundle = bundle
        self.seed = int(seed)
        self.n_permutations = int(n_permutations)
        self._source = background
        self._background: Optional[pd.DataFrame] = None
        self._means: Dict[int, np.ndarray] = {}
        self._groups: Dict[tuple, np.ndarray] = {}
        self._exact: Optional[bool] = None
        self._row_s: Optional[float] = None  # seconds per row of the agnostic estimate, last measured
        self._exact_cost: Optional[Tuple[float, float]] = None  # an exact method's (per call, per row) seconds
        self._first_s: Optional[float] = None  # the first exact call's seconds: the explainers' set-up and one row

    @property
    def columns(self) -> List[str]:
        return [str(c) for c in self.bundle.feature_columns]

    @property
    def classification(self) -> bool:
        return self.bundle.problem_type != "regression"

    def background(self) -> Optional[pd.DataFrame]:
        if self._background is None and self._source is not None:
            src = self._source() if callable(self._source) else self._source
            if src is not None and len(src):
                self._background = background_sample(src, self.columns, BACKGROUND_ROWS, self.seed)
        return self._background

    # ------------------------------------------------------------------ the model's contributions
    def contributions(self, df: pd.DataFrame) -> Contributions:
        """Contributions of every row of ``df`` for every output of the model."""
        self.bundle.check_columns(df)
        X = df[self.columns]
        model = self.bundle.pipeline
        c = self._ensemble(model, X) if is_ensemble(model) else self._pipeline(model, X)
        if c is None:
            c = self._agnostic(model, X)
        self._exact = c.exact
        return c

    def _ensemble(self, model: Any, X: pd.DataFrame) -> Optional[Contributions]:
        parts = []
        for member in model.estimators:
            part = self._pipeline(member, X)
            if part is None or (parts and part.space != parts[0].space):
                log.debug("ensemble members cannot all be explained exactly in one space; using the agnostic estimate")
                return None
            parts.append(part)
        weights = np.asarray(model.weights, dtype=float)
        values = sum(w * p.values for w, p in zip(weights, parts))
        base = sum(w * p.base for w, p in zip(weights, parts))
        methods = ", ".join(sorted({p.method for p in parts}))
        return Contributions(values, base, self.columns, parts[0].outputs, parts[0].space,
                             f"weighted sum of {len(parts)} members' {methods}", True)

    def _pipeline(self, pipe: Any, X: pd.DataFrame) -> Optional[Contributions]:
        """Exact contributions of one automl pipeline, or None when its model has no exact method."""
        if not is_cast_pipeline(pipe):
            return None
        final = pipe.steps[-1][1]
        inner = getattr(final, "regressor_", final)  # TargetTransformRegressor wraps the regressor
        if not has_exact_method(inner):
            return None
        pre = pipe[:-1]
        Xt = pre.transform(X)
        raw = exact_contributions(inner, Xt, self._mean(pipe, pre) if _is_linear(inner) else None)
        if raw is None:
            return None
        key = (id(pipe), Xt.shape[1])
        if key not in self._groups:  # the same for every call: traced once per pipeline
            self._groups[key] = group_matrix(processed_origins(pipe, Xt.shape[1]), self.columns)
        values, base, space = raw.values @ self._groups[key], raw.base, raw.space
        if inner is not final:
            values, base, space = _untransform(final, values, base, space)
        values, base, outputs = self._outputs(values, base, getattr(inner, "classes_", None), raw)
        return Contributions(values, base, self.columns, outputs, space, raw.method, True)

    def _mean(self, pipe: Any, pre: Any) -> Optional[np.ndarray]:
        """Mean processed row of the background (a linear model's reference point)."""
        key = id(pipe)
        if key not in self._means:
            bg = self.background()
            if bg is None:
                return None
            Xb = pre.transform(bg)
            self._means[key] = np.asarray(Xb.mean(axis=0), dtype=float).reshape(-1)
        return self._means[key]

    def _outputs(self, values: np.ndarray, base: np.ndarray, seen: Any, raw: Raw):
        """Outputs mapped onto the run's classes (a binary margin becomes -m, m for the two classes)."""
        if not self.classification:
            return values, base, [self.bundle.target]
        k = len(self.bundle.classes)
        seen = np.asarray(seen if seen is not None else np.arange(k), dtype=int)
        if values.shape[1] == 1 and len(seen) == 2:
            values = np.concatenate([-values, values], axis=1)
            base = np.concatenate([-base, base], axis=1)
        if values.shape[1] != len(seen):
            raise ExplainError(f"{raw.method} gave {values.shape[1]} outputs for a model of {len(seen)} classes")
        full_v = np.zeros((values.shape[0], k, values.shape[2]))
        full_b = np.zeros((base.shape[0], k))
        full_v[:, seen], full_b[:, seen] = values, base
        return full_v, full_b, list(self.bundle.classes)

    def _agnostic(self, model: Any, X: pd.DataFrame) -> Contributions:
        bg = self.background()
        if bg is None or not len(bg):
            raise ExplainError(f"{type(model).__name__} has no exact explanation and no background rows were "
                               f"given; pass training rows as background (Run.explain does)")

        def predict(frame: pd.DataFrame) -> np.ndarray:
            return self.model_output(frame)

        started = time.perf_counter()
        values, base = permutation_shap(predict, X, bg.iloc[:N_BACKGROUND], self.columns, self.n_permutations,
                                        self.seed)
        self._row_s = (time.perf_counter() - started) / max(1, len(X))  # what rows_within_budget plans with
        outputs = list(self.bundle.classes) if self.classification else [self.bundle.target]
        return Contributions(values, base, self.columns, outputs, PROBABILITY if self.classification else VALUE,
                             f"permutation sampling ({self.n_permutations} orders x {min(len(bg), N_BACKGROUND)} "
                             f"background rows)", False)

    def model_output(self, frame: pd.DataFrame) -> np.ndarray:
        """The pipeline's uncalibrated probabilities over the run's classes, or its values (rows, outputs)."""
        model = self.bundle.pipeline
        if not self.classification:
            return np.asarray(model.predict(frame), dtype=float).reshape(-1, 1)
        proba = np.asarray(model.predict_proba(frame), dtype=float)
        k = len(self.bundle.classes)
        if proba.shape[1] != k:
            full = np.zeros((len(frame), k))
            full[:, np.asarray(model.classes_, dtype=int)] = proba
            proba = full
        return proba

    # ------------------------------------------------------------------ what users see
    def frame(self, df: pd.DataFrame, target_class: Any = None) -> pd.DataFrame:
        """One row per row of ``df``: a column per input column, ``base_value`` and (classification)
        ``class``, the class explained: ``target_class`` if given, else the positive class (binary)
        or the predicted class (multiclass). ``attrs`` says the output space and the method."""
        c = self.contributions(df)
        n = len(df)
        idx = np.zeros(n, dtype=int)
        if self.classification:
            idx = self._class_index(df, target_class)
        out = pd.DataFrame(c.values[np.arange(n), idx, :], columns=self.columns, index=df.index)
        out[BASE_COLUMN] = c.base[np.arange(n), idx]
        if self.classification:
            out[CLASS_COLUMN] = [self.bundle.classes[i] for i in idx]
        out.attrs.update({"space": c.space, "space_description": SPACES.get(c.space, c.space), "method": c.method,
                          "exact": c.exact})
        return out

    def _class_index(self, df: pd.DataFrame, target_class: Any) -> np.ndarray:
        classes = list(self.bundle.classes)
        if target_class is not None:
            matches = [i for i, c in enumerate(classes) if c == target_class or str(c) == str(target_class)]
            if not matches:
                raise ExplainError(f"target_class={target_class!r} is not a class of the model; classes: "
                                   f"{', '.join(map(str, classes))}")
            return np.full(len(df), matches[0], dtype=int)
        if len(classes) == 2 and self.bundle.positive_class in classes:
            return np.full(len(df), classes.index(self.bundle.positive_class), dtype=int)
        raw = getattr(self.bundle, "raw_matrix", self.bundle.predict_matrix)(df)
        labels = self.bundle.labels_from_matrix(raw)
        where = {c: i for i, c in enumerate(classes)}
        return np.array([where[v] for v in labels], dtype=int)

    def top_k(self, df: pd.DataFrame, k: int = 5) -> List[Dict[str, Any]]:
        """Per row: the ``k`` largest contributions by size, the base value, the class explained
        and the output space (what the endpoint answers with ``explain=true``)."""
        table = self.frame(df)
        feats = table[self.columns].to_numpy(dtype=float)
        order = np.argsort(-np.abs(feats), axis=1, kind="stable")[:, :max(0, int(k))]
        out = []
        for i in range(len(table)):
            obj: Dict[str, Any] = {"base_value": float(table[BASE_COLUMN].iloc[i]), "space": table.attrs["space"]}
            if self.classification:
                obj["class"] = table[CLASS_COLUMN].iloc[i]
            obj["contributions"] = [{"feature": self.columns[j], "contribution": float(feats[i, j])}
                                    for j in order[i]]
            out.append(obj)
        return out

    def mean_abs(self, df: pd.DataFrame) -> pd.Series:
        """Mean |contribution| per input column over the rows of ``df`` (the class explained as in
        :meth:`frame`), largest first."""
        table = self.frame(df)
        return table[self.columns].abs().mean().sort_values(ascending=False)

    def exact_available(self) -> bool:
        """Whether the model is explained exactly (TreeSHAP, linear), decided without running the
        costly agnostic estimate: every model in the pipeline (or ensemble) has an exact method and,
        for an ensemble, its members' exact contributions on one background row share one space
        (XGBoost's margin and a forest's probability do not add up: such an ensemble is explained
        by the agnostic estimate)."""
        if self._exact is not None:
            return self._exact
        model = self.bundle.pipeline
        for pipe in (model.estimators if is_ensemble(model) else [model]):
            if not is_cast_pipeline(pipe):
                return False
            final = pipe.steps[-1][1]
            if not has_exact_method(getattr(final, "regressor_", final)):
                return False
        if is_ensemble(model):
            row = self.background()
            if row is None or not len(row):
                return True  # nothing to try the spaces on: contributions() finds out, on its own rows
            try:
                tried, self._first_s = _timed(lambda: self._ensemble(model, row[self.columns].iloc[:1]))
                self._exact = tried is not None
            except Exception as exc:  # taken as not exact: near the deadline the explanation is skipped
                log.debug("exact contributions failed on one background row (%s)", exc)
                self._exact = False
            return self._exact
        return True

    def affordable(self, deadline: Optional[float]) -> bool:
        """Whether explaining fits before ``deadline`` (a time.time() value; None: no deadline): exact
        methods always do; the agnostic estimate needs ``AGNOSTIC_MIN_LEFT_S`` seconds left."""
        return deadline is None or self.exact_available() or deadline - time.time() >= AGNOSTIC_MIN_LEFT_S

    def rows_within_budget(self, df: pd.DataFrame, limit: int, budget_s: float = AGNOSTIC_BUDGET_S,
                           exact_budget_s: Optional[float] = None) -> int:
        """How many rows of ``df`` to explain: ``limit``, fewer when time is short. The agnostic
        estimate, whose cost grows with rows x orders x background rows x columns: as many as one
        row's time (measured on the first row) fits in ``budget_s`` seconds, and at most
        ``AGNOSTIC_BUDGET`` predictions. An exact method: as many as fit in ``exact_budget_s``
        seconds (None: no limit) by :meth:`exact_cost` (a big forest's TreeSHAP takes ~0.1 s a row)."""
        if self._exact is None:
            first = _seconds(lambda: self.contributions(df.iloc[:1]))
            self._first_s = first if self._exact else None
        n = int(min(limit, len(df)))
        if self._exact:
            if exact_budget_s is None or n <= 1:
                return n
            if self._first_s is not None and self._first_s >= exact_budget_s:
                return 1  # one row (with the set-up) took the time already: timing more rows would not fit
            per_call_s, per_row_s = self.exact_cost(df, exact_budget_s)
            return int(max(1, min(n, (exact_budget_s - per_call_s) // per_row_s)))
        per_row = self.n_permutations * N_BACKGROUND * (len(self.columns) + 1)
        per_row_s = max(1e-6, self._row_s or 0.0)
        return int(max(1, min(n, AGNOSTIC_BUDGET // per_row, budget_s // per_row_s)))

    def exact_cost(self, df: pd.DataFrame, budget_s: Optional[float] = None) -> Tuple[float, float]:
        """Seconds an exact explanation takes per call and per row, from warm calls on the first row
        and on the first k rows of ``df`` (measured once per explainer: an ensemble's members cost
        per call, a deep forest per row): k is ``PROBE_ROWS``, fewer when the one-row call shows that
        k rows would take over half of ``budget_s``; under 2, all of one row's time counts per row."""
        if self._exact_cost is None:
            one = _seconds(lambda: self.contributions(df.iloc[:1]))
            k = min(PROBE_ROWS, len(df))
            if budget_s is not None:
                k = min(k, int(budget_s / 2 / max(one, 1e-9)))
            if k < 2:
                self._exact_cost = (0.0, max(1e-7, one))
            else:
                many = _seconds(lambda: self.contributions(df.iloc[:k]))
                per_row_s = max(1e-7, (many - one) / (k - 1))
                self._exact_cost = (max(0.0, one - per_row_s), per_row_s)
        return self._exact_cost


def _timed(fn: Callable[[], Any]) -> Tuple[Any, float]:
    """``fn()`` and its CPU seconds (all threads): a descheduled moment on a busy machine does not
    count, so a fast model's few-millisecond calls are not mistaken for a slow one."""
    started = time.process_time()
    value = fn()
    return value, time.process_time() - started


def _seconds(fn: Callable[[], Any]) -> float:
    return _timed(fn)[1]


def _is_linear(model: Any) -> bool:
    return ".linear_model" in type(model).__module__ and hasattr(model, "coef_")


def _untransform(final: Any, values: np.ndarray, base: np.ndarray, space: str):
    """From a TargetTransformRegressor's inner regressor to its target: undo the standardisation
    (linear, exact); a log transform stays (space ``log_target``)."""
    scale = getattr(final, "scale_", None)
    if scale is not None:
        values = values * scale[1]
        base = base * scale[1] + scale[0]
    return values, base, ("log_target" if getattr(final, "transform", "none") == "log" else space)
