"""automl from Python as scikit-learn estimators: ``AutoMLClassifier`` and ``AutoMLRegressor``.

Their constructor keywords are automl's config keys (``budget={"time_limit_s": 60}``,
``metric="auc"``, ``search={"executor": "local"}``; ``budget__time_limit_s=60`` is the same), so a
keyword sets what a YAML file or a shell override sets. ``fit(X, y)`` runs the whole `automl fit`
flow on the rows given, into a temporary run folder that the estimator owns (removed when the
estimator is garbage-collected) or into ``output_dir``. The fitted estimator keeps the run
(``run_``: summary, leaderboard and model, loaded in memory) and predicts with its model, so it
pickles, clones and works in ``Pipeline``, ``cross_val_score`` and ``GridSearchCV``.

Also here, for ``automl.fit``: the ``(X, y)`` form (``training_frame``) and the log lines a fit
from Python shows on stderr when the caller has not configured logging (``log_to_stderr``).
See docs/python.md.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import shutil
import sys
import tempfile
import time
import weakref
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, column_or_1d, validate_data

from automl.config.fit import Config
from automl.config.keys import closest
from automl.errors import ArtifactError, ConfigError, DataError
from automl.problem import MIN_ROWS
from automl.rundir.run import Run

# Config keys an estimator sets itself: the problem type comes from its class (and the classes in
# y), and an estimator always builds a model.
OWN_KEYS = {"problem_type": "it comes from the class: AutoMLClassifier or AutoMLRegressor",
            "mode": "an estimator always builds a model (mode=full)"}
# The constructor's keywords: every other top-level key of the `automl fit` schema.
PARAMS: Tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Config) if f.name not in OWN_KEYS)
FROM_FIT = ("path", "target", "weight_column")  # data keys that fit(X, y, sample_weight) sets


# -- tables from X and y ---------------------------------------------------------------------------
def column_names(n: int) -> List[str]:
    """The column names an array's features get: ``x0 … x{n-1}``."""
    return [f"x{i}" for i in range(n)]


def _named(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    return frame if list(frame.columns) == list(names) else frame.set_axis(list(names), axis=1)


def _array_frame(arr: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(arr, columns=list(names))
    return frame.infer_objects() if arr.dtype == object else frame  # numbers held as objects are numbers


def as_frame(X: Any) -> pd.DataFrame:
    """``X`` as a DataFrame: one whose column names are all strings stays as it is; anything else
    (an array, a list of rows, a DataFrame with other names) gets the columns ``x0 … x{n-1}``."""
    if isinstance(X, pd.DataFrame):
        return X if all(isinstance(c, str) for c in X.columns) else _named(X, column_names(X.shape[1]))
    arr = check_array(X, dtype=None, accept_sparse=False, ensure_all_finite=False, input_name="X")
    return _array_frame(arr, column_names(arr.shape[1]))


def _free_name(wanted: Any, taken: Sequence[Any], fallback: str) -> str:
    """``wanted`` if it is a string no column has, else ``fallback`` (or ``fallback_2``, …)."""
    if isinstance(wanted, str) and wanted and wanted not in taken:
        return wanted
    name, i = fallback, 1
    while name in taken:
        i += 1
        name = f"{fallback}_{i}"
    return name


def add_column(frame: pd.DataFrame, values: Any, wanted: Any, fallback: str) -> Tuple[pd.DataFrame, str]:
    """``frame`` plus a column of ``values`` (one per row) under a free name; the caller's frame is
    not changed."""
    name = _free_name(wanted, list(frame.columns), fallback)
    values = np.asarray(values)
    if len(values) != len(frame):
        raise DataError(f"X has {len(frame)} rows but {fallback} has {len(values)}; give one {fallback} value per row")
    return frame.assign(**{name: values}), name


def training_frame(X: Any, y: Any) -> Tuple[pd.DataFrame, str]:
    """``automl.fit(X, y)``: the features and the targets as one table, and the target column's
    name (``y``'s own name when it is free, else ``target``)."""
    if y is None:
        raise DataError("automl.fit(X, y) got y=None; give the targets (one per row), or "
                        "automl.fit(df, target='COLUMN') for a table that holds them")
    features = as_frame(X)
    values = y.to_numpy() if isinstance(y, (pd.Series, pd.Index)) else column_or_1d(y, warn=True)
    return add_column(features, values, getattr(y, "name", None), "target")


# -- log lines from Python -------------------------------------------------------------------------
@contextlib.contextmanager
def log_to_stderr() -> Iterator[None]:
    """automl's INFO lines on stderr (``[automl] …``) while a fit from Python runs, unless the
    caller has configured logging: a handler on the root or the ``automl`` logger, or a level set
    on ``automl`` (``logging.getLogger("automl").setLevel(logging.WARNING)`` silences a fit)."""
    logger = logging.getLogger("automl")
    if logger.handlers or logging.getLogger().handlers or logger.level != logging.NOTSET:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[automl] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


# -- constructor keywords --------------------------------------------------------------------------
def _param_error(name: str, owner: str) -> ConfigError:
    head = name.split("__", 1)[0]
    if head in OWN_KEYS:
        return ConfigError(f"{owner} takes no '{head}' parameter: {OWN_KEYS[head]}")
    near = closest(head, PARAMS)
    hint = f" (did you mean '{near}'?)" if near else ""
    return ConfigError(f"unknown parameter '{name}' for {owner}{hint}; its parameters are automl's config "
                       f"keys: {', '.join(PARAMS)}; see docs/configuration.md")


def _with_nested(value: Any, path: Sequence[str], leaf: Any) -> Dict[str, Any]:
    """A copy of ``value`` (a dict, else a new one) with ``leaf`` at ``path``."""
    out = dict(value) if isinstance(value, dict) else {}
    out[path[0]] = leaf if len(path) == 1 else _with_nested(out.get(path[0]), path[1:], leaf)
    return out


def _plain(value: Any) -> Any:
    """A parameter as config values: numpy scalars as Python ones, tuples as lists, dicts copied."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


class _AutoMLEstimator(BaseEstimator):
    """What the classifier and the regressor share: config keys as parameters, the run folder,
    X as a table, and the fitted run."""

    _problem = "auto"

    def __init__(self, **params: Any):
        """Store automl's config keys, as given; they are checked by ``fit``, as scikit-learn expects.
        ``budget__time_limit_s=60`` is ``budget={"time_limit_s": 60}``."""
        for key in params:
            if key.split("__", 1)[0] not in PARAMS:
                raise _param_error(key, type(self).__name__)
        for key in [k for k in params if "__" in k]:
            head, *path = key.split("__")
            params[head] = _with_nested(params.get(head), path, params.pop(key))
        for name in PARAMS:
            setattr(self, name, params.get(name))

    def set_params(self, **params: Any) -> "_AutoMLEstimator":
        """Set parameters; ``budget__time_limit_s=30`` sets one key inside ``budget`` (as
        ``GridSearchCV`` and ``Pipeline`` pass it), leaving the others as they were."""
        nested = {k: v for k, v in params.items() if "__" in k and k.split("__", 1)[0] in PARAMS}
        super().set_params(**{k: v for k, v in params.items() if k not in nested})
        for key, value in nested.items():
            head, *path = key.split("__")
            setattr(self, head, _with_nested(getattr(self, head), path, value))
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values are imputed (and flagged) by the candidates
        tags.input_tags.string = True  # text and categorical columns are encoded by the candidates
        tags.input_tags.categorical = True
        tags.non_deterministic = True  # a time-budgeted search may try other configurations each run
        return tags

    # fitting -----------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "_AutoMLEstimator":
        """Run the whole `automl fit` flow on these rows; returns the estimator, fitted.
        ``sample_weight`` (one non-negative weight per row) reaches every candidate's fit and
        every score, as ``data.weight_column`` does."""
        from automl.config.compose import compose_config
        from automl.runner import fit as run_fit

        started = time.time()
        self._drop_run()
        frame, target, weight_column = self._training_frame(X, y, sample_weight)
        values = self._values(target, weight_column)
        run_dir = self.output_dir or self._own_folder()
        try:
            cfg = compose_config(values={**values, "output_dir": run_dir})
            with log_to_stderr():
                run = run_fit(cfg, frame=frame, started=started)
            _ = run.model, run.leaderboard  # loaded now: predicting and pickling need no folder
        except BaseException:
            self._drop_run()
            raise
        self.run_: Run = run
        return self

    def _training_frame(self, X: Any, y: Any, sample_weight: Any) -> Tuple[pd.DataFrame, str, Optional[str]]:
        if y is None:
            raise ValueError(f"This {type(self).__name__} estimator requires y to be passed, but the target y is None.")
        features = self._features(X, reset=True)
        name = getattr(y, "name", None)
        y = self._check_y(y)
        check_consistent_length(features, y)
        if len(features) < MIN_ROWS:
            raise DataError(f"{type(self).__name__}.fit got {len(features)} sample(s); automl needs at least "
                            f"{MIN_ROWS} rows (cross-validation trains on some and scores the others)")
        frame, target = add_column(features, y, name, "target")
        if sample_weight is None:
            return frame, target, None
        weights = column_or_1d(np.asarray(sample_weight, dtype=float))
        if len(weights) and not weights.sum() > 0:
            raise DataError("sample_weight: every weight is zero (or the sum is not positive); give some rows "
                            "a positive weight")
        frame, weight_column = add_column(frame, weights, "sample_weight", "sample_weight")
        return frame, target, weight_column

    def _check_y(self, y: Any) -> np.ndarray:
        raise NotImplementedError

    def _values(self, target: str, weight_column: Optional[str]) -> Dict[str, Any]:
        """The config values of this fit: the parameters given, the table's target and weights."""
        values = {name: _plain(getattr(self, name)) for name in PARAMS if getattr(self, name) is not None}
        data = values.get("data", {})
        if not isinstance(data, dict):
            raise ConfigError(f"data must be a dict of data.* keys (e.g. {{'test_fraction': 0.2}}); got {data!r}")
        given = [k for k in FROM_FIT if k in data]
        if given:
            raise ConfigError(f"data.{given[0]} comes from fit(X, y, sample_weight); drop it from data=")
        data = {**data, "path": "<dataframe>", "target": target}
        if weight_column:
            data["weight_column"] = weight_column
        return {**values, "data": data, "problem_type": self._problem_type()}

    def _problem_type(self) -> str:
        return self._problem

    # the run folder ----------------------------------------------------------------------------
    def _own_folder(self) -> str:
        """A new temporary run folder, removed with the estimator (or its next fit)."""
        folder = tempfile.mkdtemp(prefix="automl-estimator-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, folder, True)
        return folder

    def __sklearn_is_fitted__(self) -> bool:
        return "run_" in self.__dict__  # not after a failed fit, which may have set classes_

    def _drop_run(self) -> None:
        """Forget the fitted run and remove its folder if this estimator made it."""
        cleanup = self.__dict__.pop("_cleanup", None)
        if cleanup is not None:
            cleanup()
        self.__dict__.pop("run_", None)

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_cleanup", None)  # a copy predicts from the model in memory; the folder stays the original's
        return state

    # predicting --------------------------------------------------------------------------------
    def _features(self, X: Any, reset: bool) -> pd.DataFrame:
        """``X`` as the table the model reads, after scikit-learn's checks of its shape and names."""
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if X.shape[0] < 1 or X.shape[1] < 1:
                raise ValueError(f"X has shape {X.shape}; give at least one row and one column")
            frame = X
        else:
            arr = validate_data(self, X, reset=reset, dtype=None, accept_sparse=False, ensure_all_finite=False)
            frame = _array_frame(arr, column_names(arr.shape[1]))
        names = getattr(self, "feature_names_in_", None)
        return _named(frame, list(names) if names is not None else column_names(frame.shape[1]))

    def _matrix(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.run_.model.predict_matrix(self._features(X, reset=False))


class AutoMLClassifier(ClassifierMixin, _AutoMLEstimator):
    """automl as a scikit-learn classifier. Keywords are automl's config keys (see docs/python.md).

    Fitted attributes: ``classes_``, ``n_features_in_``, ``feature_names_in_`` (when X is a
    DataFrame with string column names) and ``run_`` (the run: ``summary``, ``leaderboard``,
    ``model``, ``run_dir``). ``predict`` applies the run's tuned decision threshold (binary
    problems and a threshold metric such as f1), so it can differ from the arg-max of
    ``predict_proba``.
    """

    def _check_y(self, y: Any) -> np.ndarray:
        y = column_or_1d(y, warn=True)
        if pd.isna(y).any():
            raise ValueError("Input y contains NaN (missing labels); drop those rows or fill them in before fit")
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"y holds 1 class ({_plain(self.classes_[0])!r}); a classifier needs at least 2 classes")
        return y

    def _problem_type(self) -> str:
        return "binary" if len(self.classes_) == 2 else "multiclass"

    def _class_order(self) -> np.ndarray:
        """For each of the model's classes, its column in ``classes_``."""
        order = pd.Index([_plain(c) for c in self.classes_]).get_indexer(list(self.run_.model.classes))
        if (order < 0).any():
            raise ArtifactError(f"the model's classes {self.run_.model.classes} are not those of fit "
                                f"({list(self.classes_)}); fit the estimator again")
        return order

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per class in the order of ``classes_``."""
        m = self._matrix(X)
        out = np.zeros_like(m)
        out[:, self._class_order()] = m
        return out

    def predict(self, X: Any) -> np.ndarray:
        """The predicted classes (values of ``classes_``)."""
        m = self._matrix(X)
        model = self.run_.model
        codes = pd.Index(list(model.classes)).get_indexer(list(model.labels_from_matrix(m)))
        return self.classes_[self._class_order()[codes]]


class AutoMLRegressor(RegressorMixin, _AutoMLEstimator):
    """automl as a scikit-learn regressor. Keywords are automl's config keys (see docs/python.md).

    Fitted attributes: ``n_features_in_``, ``feature_names_in_`` (when X is a DataFrame with
    string column names) and ``run_`` (the run: ``summary``, ``leaderboard``, ``model``).
    """

    _problem = "regression"

    def _check_y(self, y: Any) -> np.ndarray:
        y = column_or_1d(y, warn=True)
        return check_array(y, ensure_2d=False, dtype="numeric", ensure_all_finite=True, input_name="y")

    def predict(self, X: Any) -> np.ndarray:
        """The predicted values."""
        return np.asarray(self._matrix(X), dtype=float)


def _signature() -> inspect.Signature:
    """The constructor as scikit-learn and ``help()`` see it: one keyword per config key."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
                             + [inspect.Parameter(name, keyword, default=None) for name in PARAMS])


_AutoMLEstimator.__init__.__signature__ = _signature()  # type: ignore[attr-defined]
