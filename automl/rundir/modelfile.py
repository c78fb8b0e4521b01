"""Model files that load without running code: skops.io with an explicit list of trusted types.

A model (``automl.model.ModelBundle``) is written as a skops file (a zip of a JSON schema and
``.npy`` arrays, which numpy reads with ``allow_pickle=False``). Loading builds only objects whose
type is in ``TRUSTED_TYPES`` or in skops' own defaults (scikit-learn's estimators, numpy and
scipy basics); a file that names any other type (``builtins.exec``, ``os.system``, a class of
some other package) is refused before anything in it is built. XGBoost models keep their booster
in XGBoost's own binary format (``Booster.__getstate__``: raw UBJSON bytes), not as a pickle.
LightGBM and CatBoost models (optional) likewise keep their model in the library's own format.

Run folders of earlier releases hold ``model.pkl`` (a pickle): loaded only when the user passes
``allow_pickle=true``, i.e. says they trust the folder's source.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import pickle
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from automl import artifacts as art
from automl.errors import ArtifactError
from automl.rundir.layout import LEGACY_MODEL_FILE, MODEL_FILE  # noqa: F401 (the format's file names)

log = logging.getLogger(__name__)

MODEL_SUFFIX = ".skops"
LEGACY_SUFFIX = ".pkl"

# The registries the trusted list is built from, written out; each name is checked to import
# (tests/test_safety_models.py). skops itself also trusts its defaults: every estimator class that
# scikit-learn's all_estimators() lists, its list of scikit-learn internals, numpy/scipy ufuncs
# and dtypes, and Python's containers and primitives.
AUTOML_TYPES: Tuple[str, ...] = (
    "automl.model.ModelBundle",
    "automl.model.Calibrator",  # select.calibration: a temperature or isotonic knots (floats)
    "automl.ensemble.WeightedEnsemble",
    "automl.ensemble.BaggedModel",
    "automl.ensemble.StackedModel",
    "automl.candidates.processing.FeatureCaster",
    "automl.candidates.processing.SignedLog",
    "automl.candidates.processing.SplineExpand",
    "automl.candidates.processing.FrequencyEncoder",
    "automl.candidates.processing.CategoricalEncoder",
    "automl.candidates.estimators.SoftmaxSVC",
    "automl.candidates.estimators.RelativeGammaSVR",
    "automl.candidates.estimators.TargetTransformRegressor",
)
XGBOOST_TYPES: Tuple[str, ...] = (
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    "xgboost.core.Booster",  # its state is the booster in XGBoost's binary format
)
# scikit-learn objects that are not estimators but live inside fitted ones. Tree and TreePredictor
# are not in skops' defaults: their node arrays are indexed without bounds checks, so a crafted
# file can crash the process at predict time (not run code); see "Limits" in docs.
SKLEARN_TYPES: Tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.neighbors._kd_tree.KDTree",  # k-nearest neighbours on few columns (and the same caveat)
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",  # knn's p=2
    "sklearn.metrics._dist_metrics.ManhattanDistance64",  # knn's p=1
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.model_selection._split.KFold",  # the cross-fitting splitter a TargetEncoder keeps
    "sklearn.model_selection._split.StratifiedKFold",
)
NUMPY_TYPES: Tuple[str, ...] = ("numpy.dtype",)
PYTHON_TYPES: Tuple[str, ...] = ("collections.OrderedDict",)  # a LightGBM Booster's best_score
# The optional boosting libraries (pip install 'automl[boost]'), trusted where installed: a file that
# names them cannot be built without the library anyway. Each keeps its model in the library's own
# format (LightGBM: Booster.__getstate__ holds the model text; CatBoost: the binary .cbm bytes).
BOOST_TYPES: Tuple[str, ...] = (
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "lightgbm.basic.Booster",
    "catboost.core.CatBoostClassifier",
    "catboost.core.CatBoostRegressor",
    "automl.candidates.native_catboost.NativeCatBoostClassifier",  # categorical: native (needs catboost)
    "automl.candidates.native_catboost.NativeCatBoostRegressor",
)
TRUSTED_TYPES: Tuple[str, ...] = (AUTOML_TYPES + XGBOOST_TYPES + SKLEARN_TYPES + NUMPY_TYPES + PYTHON_TYPES
                                  + tuple(t for t in BOOST_TYPES if importlib.util.find_spec(t.partition(".")[0] if not
                                                                            t.startswith("automl.") else "catboost")))

LIBRARIES = ("automl", "scikit-learn", "xgboost", "skops", "python")  # versions the manifest records


COMPRESS_LEVEL = 1  # deflate's fastest: half the CPU of zlib's default 6, files 10-25% larger (forests)


def model_parts(obj: Any) -> int:
    """How many fitted sub-models ``obj`` holds that skops writes one by one (a forest's trees,
    gradient boosting's stages, nested through pipelines and ensembles): each costs ~2.6 ms of CPU
    to write and audit whatever its size (benchmarks/model_write.py). A booster kept as one blob
    (XGBoost, LightGBM, CatBoost) counts 0."""
    steps = getattr(obj, "steps", None)
    if steps is not None:
        return sum(model_parts(step) for _, step in steps)
    total = 0
    for attr in ("estimators", "estimators_", "regressor_", "_predictors"):
        inner = getattr(obj, attr, None)
        if inner is not None:
            total += sum(1 + model_parts(item) for item in _flat(inner))
    return total


def _flat(value: Any) -> List[Any]:
    """The objects in nested lists, tuples and object arrays (a pipeline is one object)."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [v for item in value.ravel() for v in _flat(item)]
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _flat(item)]
    return [] if value is None or isinstance(value, (str, bytes)) else [value]


class _CompactJson:
    """The ``json`` module as skops' writer sees it during ``dump_model``: ``dumps`` without
    indentation, everything else as is."""

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return json.dumps(obj, separators=(",", ":"))


@contextlib.contextmanager
def _compact_schema():
    """skops writes schema.json with ``json.dumps(indent=2)``, which Python encodes in pure Python
    (the C encoder does not indent): unindented, the dump takes 15-35% less CPU
    (benchmarks/model_write.py). The same JSON, unindented, loads identically. skops has no
    option for it, so its writer module's ``json`` is swapped for the call; a skops without that
    module attribute is written as skops writes it (tests/test_model_write.py notices)."""
    from skops.io import _persist

    if not isinstance(getattr(_persist, "json", None), type(json)):
        yield
        return
    _persist.json = _CompactJson()
    try:
        yield
    finally:
        _persist.json = json


def dump_model(obj: Any, level: int = COMPRESS_LEVEL) -> bytes:
    """The skops bytes of ``obj`` (deflated at ``level``: the JSON schema compresses about 20x;
    forests' arrays 4-5x; benchmarks/model_write.py), its schema written compact (``_compact_schema``)."""
    import skops.io as sio

    with _compact_schema():
        return sio.dumps(obj, compression=zipfile.ZIP_DEFLATED, compresslevel=level)


def untrusted_types(data: bytes) -> List[str]:
    """Types named in a skops file that neither skops' defaults nor ``TRUSTED_TYPES`` cover."""
    import skops.io as sio

    return [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]


def load_model_bytes(data: bytes, where: str) -> Any:
    """Build the model in a skops file; ArtifactError (one line) for any type outside the list."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    try:  # skops audits every type in the file before it builds anything
        return sio.loads(data, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException:
        refused = untrusted_types(data)
        raise ArtifactError(f"{where} holds type(s) automl does not trust: {', '.join(refused)}; refusing to "
                            "load it (only scikit-learn, XGBoost, LightGBM, CatBoost, numpy/scipy and automl "
                            "types load)") from None
    except Exception as exc:  # not a zip, bad JSON, an unknown loader...: not a model file of ours
        raise ArtifactError(f"{where} is not a loadable skops model file ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}); refit the run") from None


def load_pickle_bytes(data: bytes, where: str, allow_pickle: bool) -> Any:
    """Unpickle a model of an earlier release, only when the user allowed it."""
    if not allow_pickle:
        raise ArtifactError(pickle_refusal(where))
    log.warning("loading %s as a pickle (allow_pickle=true): it can run code; only for trusted run folders", where)
    return pickle.loads(data)


def pickle_refusal(where: str) -> str:
    return (f"{where} is a pickle written by an earlier automl release, and loading a pickle can run any code; "
            "pass allow_pickle=true if you trust the source of this run folder (or refit it with this release)")


def is_legacy(rel: str) -> bool:
    return rel.endswith(LEGACY_SUFFIX)


def model_bytes(obj: Any) -> Tuple[str, bytes]:
    """(suffix, bytes) for saving ``obj``: skops, or a pickle when it holds untrusted types.

    Only a custom ``module:factory`` algorithm puts such types in a model; that model is saved as
    a pickle (``.pkl``) so the run stays usable, and it loads only with ``allow_pickle=true``.
    """
    data = dump_model(obj)
    refused = untrusted_types(data)
    if not refused:
        return MODEL_SUFFIX, data
    log.warning("the model holds type(s) outside automl's trusted list (%s): saved as a pickle, which "
                "loads only with allow_pickle=true", ", ".join(refused))
    return LEGACY_SUFFIX, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def save_model(run_dir: str, obj: Any, storage_options: Optional[Dict[str, Any]] = None) -> int:
    """Write the run's model (``model.skops``; ``model.pkl`` for a custom algorithm's); returns its size."""
    suffix, data = model_bytes(obj)
    art.write_bytes(art.join(run_dir, MODEL_FILE if suffix == MODEL_SUFFIX else LEGACY_MODEL_FILE), data,
                    storage_options)
    return len(data)


def library_versions() -> Dict[str, str]:
    """The versions of the libraries a model file depends on (recorded in manifest.json)."""
    import platform
    from importlib import metadata

    out: Dict[str, str] = {"python": platform.python_version()}
    for name in LIBRARIES:
        if name == "python":
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


_WARNED: set = set()


def warn_versions(recorded: Dict[str, Any], where: str) -> None:
    """Warn once per process and difference when a run was written under other library versions."""
    now = library_versions()
    diff = [(k, str(recorded[k]), now.get(k, "not installed")) for k in sorted(recorded)
            if k in now and str(recorded[k]) != now[k]]
    key = tuple(diff)
    if not diff or key in _WARNED:
        return
    _WARNED.add(key)
    log.warning("%s was written under other library versions: %s; its model may load or predict differently "
                "(refit it with these versions if in doubt)", where,
                ", ".join(f"{k} {old} (now {new})" for k, old, new in diff))

