"""The algorithm registry: one key -> (classifier, regressor) table, written out in one place.

Parameters arrive from the search space keyed by pipeline step: ``model.<name>`` goes to the
estimator, ``preprocess.<name>`` to the processing recipe (see processing.py).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from automl.errors import ConfigError


def _xgb(problem_type: str, params: Dict[str, Any], seed: int):
    import xgboost as xgb

    base = dict(tree_method="hist", n_jobs=1, random_state=seed, verbosity=0)
    base.update(params)
    if problem_type == "regression":
        return xgb.XGBRegressor(**base)
    return xgb.XGBClassifier(**base)


def _lgbm(problem_type: str, params: Dict[str, Any], seed: int):
    import lightgbm as lgb

    base = dict(n_jobs=1, random_state=seed, verbose=-1)
    base.update(params)
    return (lgb.LGBMRegressor if problem_type == "regression" else lgb.LGBMClassifier)(**base)


def _catboost(problem_type: str, params: Dict[str, Any], seed: int):
    import catboost as cb

    # allow_writing_files=False: no catboost_info/ folder in the working directory.
    base = dict(thread_count=1, random_seed=seed, verbose=False, allow_writing_files=False)
    base.update(params)
    if base.get("cat_features"):  # processing.categorical: native (candidates/native_catboost.py)
        from automl.candidates import native_catboost as nc

        return (nc.NativeCatBoostRegressor if problem_type == "regression" else nc.NativeCatBoostClassifier)(**base)
    return (cb.CatBoostRegressor if problem_type == "regression" else cb.CatBoostClassifier)(**base)


def _linear(problem_type: str, params: Dict[str, Any], seed: int):
    from sklearn.linear_model import LogisticRegression, Ridge

    if problem_type == "regression":
        return Ridge(**{k: v for k, v in params.items() if k in ("alpha",)})
    kw = dict(max_iter=2000)
    kw.update({k: v for k, v in params.items() if k != "alpha"})
    return LogisticRegression(random_state=seed, **kw)


def _mlp(problem_type: str, params: Dict[str, Any], seed: int):
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    params = dict(params)
    width = int(params.pop("width", 128))
    depth = int(params.pop("depth", 1))
    kw = dict(hidden_layer_sizes=(width,) * depth, early_stopping=True, max_iter=200, random_state=seed)
    kw.update(params)
    return (MLPRegressor if problem_type == "regression" else MLPClassifier)(**kw)


def _forest(cls_name: str):
    def make(problem_type: str, params: Dict[str, Any], seed: int):
        from sklearn import ensemble

        suffix = "Regressor" if problem_type == "regression" else "Classifier"
        cls = getattr(ensemble, f"{cls_name}{suffix}")
        return cls(n_jobs=1, random_state=seed, **params)

    return make


def _svm(problem_type: str, params: Dict[str, Any], seed: int):
    from sklearn.svm import SVR

    from automl.candidates.estimators import SoftmaxSVC

    if problem_type == "regression":
        if "gamma_factor" in params:
            from automl.candidates.estimators import RelativeGammaSVR

            return RelativeGammaSVR(**{k: v for k, v in params.items() if k != "gamma"})
        return SVR(**params)
    return SoftmaxSVC(**params)


def _knn(problem_type: str, params: Dict[str, Any], seed: int):
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    return (KNeighborsRegressor if problem_type == "regression" else KNeighborsClassifier)(**params)


def _hist_gb(problem_type: str, params: Dict[str, Any], seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingRegressor if problem_type == "regression" else HistGradientBoostingClassifier
    return cls(random_state=seed, **params)


@dataclass(frozen=True)
class EarlyStopping:
    """How a boosting library stops on a fold's validation rows (used by search/trial.py).

    ``params(patience)``: estimator parameters to set; ``fit_kwargs(X_va, y_va, patience)``: keyword
    arguments of ``fit`` (a validation target must be passed as ``eval_set`` pairs or ``eval_y``, the
    names TargetTransformRegressor transforms); ``rounds_kept(model)``: the rounds the fitted model
    kept, which the refit on all rows uses as ``model.n_estimators`` (CatBoost takes that name as
    an alias of ``iterations``).
    """

    params: Callable[[int], Dict[str, Any]]
    fit_kwargs: Callable[[Any, Any, int], Dict[str, Any]]
    rounds_kept: Callable[[Any], int]
    # The fit keyword that weights the validation rounds ([weights]) when the run has sample weights.
    eval_weight_key: Optional[str] = None


def _xgb_fit_kwargs(X_va, y_va, patience: int) -> Dict[str, Any]:
    return {"eval_set": [(X_va, y_va)], "verbose": False}


def _lgbm_fit_kwargs(X_va, y_va, patience: int) -> Dict[str, Any]:
    import lightgbm as lgb

    # eval_X/eval_y (LightGBM >= 4.7; eval_set is deprecated there).
    return {"eval_X": (X_va,), "eval_y": (y_va,), "callbacks": [lgb.early_stopping(patience, verbose=False)]}


def _catboost_fit_kwargs(X_va, y_va, patience: int) -> Dict[str, Any]:
    return {"eval_set": [(X_va, y_va)], "early_stopping_rounds": patience}


XGBOOST_STOPPING = EarlyStopping(lambda n: {"early_stopping_rounds": n}, _xgb_fit_kwargs,
                                 lambda model: int(model.best_iteration) + 1, "sample_weight_eval_set")
LIGHTGBM_STOPPING = EarlyStopping(lambda n: {}, _lgbm_fit_kwargs,
                                  lambda model: int(model.best_iteration_) or int(model.n_estimators),
                                  "eval_sample_weight")
CATBOOST_STOPPING = EarlyStopping(lambda n: {}, _catboost_fit_kwargs, lambda model: int(model.best_iteration_) + 1)


@dataclass(frozen=True)
class Algorithm:
    name: str
    make: Callable[[str, Dict[str, Any], int], Any]
    description: str
    needs_scaling: bool
    # Rough cost class used to order and skip work on large data: 1 cheap .. 3 expensive.
    cost: int = 1
    max_rows: Optional[int] = None
    # Boosting that stops early on each fold's validation rounds (see search/trial.py); None: no.
    early_stopping: Optional[EarlyStopping] = None
    # Regression: fit on a standardised target (neural networks, SVR assume targets of order one).
    scale_target: bool = False
    # Optional packages (import names) it needs; a candidate whose package is missing is skipped
    # with a logged reason (candidates/generate.py), not failed.
    requires: Tuple[str, ...] = ()
    # The pip extra that installs them, for that reason's message.
    extra: str = ""
    # Takes string categoricals as they are (``processing.categorical: native``, ``cat_features``).
    native_categoricals: bool = False

    def missing_packages(self) -> List[str]:
        """The packages of ``requires`` that are not installed (found without importing them)."""
        return [name for name in self.requires if importlib.util.find_spec(name) is None]


ALGORITHMS: Dict[str, Algorithm] = {
    "xgboost": Algorithm("xgboost", _xgb, "XGBoost gradient-boosted trees (hist)", False, 2,
                         early_stopping=XGBOOST_STOPPING),
    # Optional (pip install 'automl[boost]'); their candidates are off by default (conf/candidates).
    "lightgbm": Algorithm("lightgbm", _lgbm, "LightGBM gradient-boosted trees (leaf-wise)", False, 2,
                          early_stopping=LIGHTGBM_STOPPING, requires=("lightgbm",), extra="boost"),
    "catboost": Algorithm("catboost", _catboost, "CatBoost gradient-boosted oblivious trees", False, 2,
                          early_stopping=CATBOOST_STOPPING, requires=("catboost",), extra="boost",
                          native_categoricals=True),
    "linear": Algorithm(
        "linear", _linear, "linear learner: logistic regression / ridge regression", True, 1
    ),
    "mlp": Algorithm("mlp", _mlp, "multi-layer perceptron (scikit-learn)", True, 2, scale_target=True),
    "random_forest": Algorithm("random_forest", _forest("RandomForest"), "random forest", False, 2),
    "extra_trees": Algorithm("extra_trees", _forest("ExtraTrees"), "extremely randomised trees", False, 2),
    "svm": Algorithm("svm", _svm, "support vector machine, RBF kernel", True, 1, max_rows=15_000,
                     scale_target=True),
    "knn": Algorithm("knn", _knn, "k-nearest neighbours", True, 2, max_rows=50_000),
    "hist_gb": Algorithm("hist_gb", _hist_gb, "scikit-learn histogram gradient boosting", False, 2),
}


def _import_algorithm(name: str) -> Algorithm:
    """A user algorithm given as ``module:factory``: ``factory(problem_type, params, seed)``
    returns a scikit-learn estimator. The module must be importable on every Ray worker
    (installed, on PYTHONPATH, or shipped with ``ray.py_modules``)."""
    import importlib

    module_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"algorithm '{name}' cannot be imported ({type(exc).__name__}: {exc}); a custom algorithm is "
            "'module:factory' with the module on PYTHONPATH, or one of: " + ", ".join(sorted(ALGORITHMS))
        ) from None
    return Algorithm(name, factory, (factory.__doc__ or name).strip().splitlines()[0], False, 2)


def get_algorithm(name: str) -> Algorithm:
    if ":" in name:
        return _import_algorithm(name)
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ConfigError(
            f"algorithm '{name}' is unknown; valid algorithms: {', '.join(sorted(ALGORITHMS))}"
        ) from None


def make_estimator(algorithm: str, problem_type: str, params: Dict[str, Any], seed: int):
    return get_algorithm(algorithm).make(problem_type, dict(params), seed)
