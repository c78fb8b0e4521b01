"""automl's model as an MLflow pyfunc model.

The MLflow model keeps the run's ``model.skops`` as its one artifact and loads it with automl's
trusted-type list (automl/rundir/modelfile.py: no pickle of the model itself). ``predict(df)``
returns what ``automl predict`` writes: ``predicted_label``, plus ``proba_<class>`` per class for
classification. The serving environment needs automl installed (``mlflow models serve
--env-manager local`` uses the current one); ``pip_requirements`` lists automl's own
dependencies at the versions that wrote the model.
"""
from __future__ import annotations

from importlib import metadata
from typing import Any, List

import mlflow.pyfunc
import pandas as pd

MODEL_ARTIFACT = "model"  # the key of model.skops in the pyfunc model's artifacts
# Distributions a loaded model needs (automl itself aside); the first installed of each group.
_REQUIREMENTS = (("scikit-learn",), ("skops",), ("pandas",), ("numpy",), ("scipy",), ("xgboost-cpu", "xgboost"),
                 ("lightgbm",), ("catboost",), ("fsspec",), ("pyyaml",))


class AutoMLPyfuncModel(mlflow.pyfunc.PythonModel):
    """An automl ModelBundle behind MLflow's pyfunc interface."""

    def load_context(self, context: Any) -> None:
        from automl.rundir.modelfile import load_model_bytes

        with open(context.artifacts[MODEL_ARTIFACT], "rb") as fh:
            self.bundle = load_model_bytes(fh.read(), "the MLflow model's model.skops")

    def predict(self, context: Any, model_input: Any, params: Any = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.bundle.predict_frame(frame)


def pip_requirements() -> List[str]:
    """``name==version`` of the installed libraries a loaded model uses."""
    out: List[str] = []
    for group in _REQUIREMENTS:
        for dist in group:
            try:
                out.append(f"{dist}=={metadata.version(dist)}")
                break
            except metadata.PackageNotFoundError:
                continue
    return out
