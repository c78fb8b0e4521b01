"""A saved automl model (``ModelBundle``) as one ONNX graph: processing, estimator(s), the class
order, the calibration of probabilities and the predicted label.

Estimators are converted by skl2onnx (scikit-learn) and onnxmltools (XGBoost, LightGBM) on a
``float`` matrix, as those libraries do; everything around them runs in double precision. Outputs:
``label`` (int64 when every class is an integer, else string) and ``probabilities`` (double,
``[N, classes]`` in the order of the model's classes, calibrated as ``automl predict`` reports them)
for classification; ``prediction`` (double, ``[N]``) for regression. Labels come from the
uncalibrated probabilities and the tuned binary threshold, as in ``ModelBundle.predict``.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List

import numpy as np
import pandas as pd
from onnx import helper

from automl.candidates.estimators import TargetTransformRegressor
from automl.candidates.processing import FeatureCaster
from automl.ensemble import BaggedModel, StackedModel, WeightedEnsemble
from automl.errors import ConfigError, ExportError
from automl.export.onnx_graph import DOUBLE, FLOAT, INT64, ML_OPSET, OPSET, STRING, Graph, processing, unsupported

ONNX_INSTALL = "pip install 'automl[onnx]'"


def convert_estimator(model: Any, n_features: int, path: str) -> Any:
    """The estimator alone as an ONNX model with one float input ``[N, n_features]``."""
    library = type(model).__module__.split(".")[0]
    if type(model).__name__.startswith("KNeighbors"):  # converted, but not faithfully: refuse it by name
        raise unsupported(path, model, " (in float32, ties and zero distances pick other neighbours)")
    try:
        if library in ("xgboost", "lightgbm"):
            import onnxmltools
            from onnxmltools.convert.common.data_types import FloatTensorType as MLFloat

            initial = [("X", MLFloat([None, n_features]))]
            if library == "xgboost":
                return onnxmltools.convert_xgboost(model, initial_types=initial, target_opset=OPSET)
            return onnxmltools.convert_lightgbm(model, initial_types=initial, target_opset=OPSET, zipmap=False)
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        initial = [("X", FloatTensorType([None, n_features]))]
        options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
        return convert_sklearn(model, initial_types=initial, options=options,
                               target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET})
    except ImportError as exc:
        raise ConfigError(f"exporting step '{path}' ({type(model).__name__}) needs {exc.name or 'onnxmltools'}; "
                          f"{ONNX_INSTALL}") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise unsupported(path, model, f" ({type(exc).__name__}: {first})") from None


def estimator_output(g: Graph, model: Any, X: str, width: int, problem_type: str, n_classes: int, path: str) -> str:
    """The estimator's values ``[N, 1]`` or its probabilities over all classes ``[N, n_classes]``."""
    inner = model.regressor_ if isinstance(model, TargetTransformRegressor) else model
    outs = g.add_model(convert_estimator(inner, width, path), g.op("Cast", [X], to=FLOAT))
    if problem_type == "regression":
        v = g.op("Cast", [outs[0]], to=DOUBLE)
        v = g.op("Reshape", [v, g.const([-1, 1], np.int64)])
        if inner is not model:  # TargetTransformRegressor: undo the standardisation, then the signed log
            if getattr(model, "scale_", None) is not None:
                v = g.op("Add", [g.op("Mul", [v, g.const(model.scale_[1], np.float64)]),
                                 g.const(model.scale_[0], np.float64)])
            if model.transform == "log":  # sign(z) * (exp(|z|) - 1)
                grown = g.op("Sub", [g.op("Exp", [g.op("Abs", [v])]), g.const(1.0, np.float64)])
                v = g.op("Mul", [g.op("Sign", [v]), grown])
        return v
    if len(outs) < 2:
        raise unsupported(path, model, " (its conversion has no probabilities)")
    p = g.op("Cast", [outs[1]], to=DOUBLE)
    seen = np.asarray(inner.classes_).astype(int)
    if len(seen) != n_classes or np.any(seen != np.arange(n_classes)):  # classes absent from its training rows
        scatter = np.zeros((len(seen), n_classes))
        scatter[np.arange(len(seen)), seen] = 1.0
        p = g.op("MatMul", [p, g.const(scatter, np.float64)])
    return p


def pipeline_output(g: Graph, pipe: Any, problem_type: str, n_classes: int, path: str = "") -> str:
    X, width = processing(g, pipe, path)
    return estimator_output(g, pipe.steps[-1][1], X, width, problem_type, n_classes, f"{path}model")


def raw_output(g: Graph, bundle: Any) -> str:
    """What ``ModelBundle.raw_matrix`` returns: values, or uncalibrated class probabilities."""
    pipe, k, regression = bundle.pipeline, len(bundle.classes), bundle.problem_type == "regression"
    if isinstance(pipe, StackedModel):
        raise unsupported("stack", pipe, " (a second-level model)")
    if not isinstance(pipe, WeightedEnsemble):
        return pipeline_output(g, pipe, bundle.problem_type, k)
    total = None
    for i, (member, weight) in enumerate(zip(pipe.estimators, pipe.weights)):
        out = pipeline_output(g, member, bundle.problem_type, k, f"ensemble member {i} › ")
        term = g.op("Mul", [out, g.const(float(weight), np.float64)])
        total = term if total is None else g.op("Add", [total, term])
    if regression or isinstance(pipe, BaggedModel):  # BaggedModel: the plain mean
        return total
    return g.op("Div", [total, g.op("ReduceSum", [total, g.const([1], np.int64)], keepdims=1)])


def label_output(g: Graph, bundle: Any, raw: str) -> str:
    """The predicted label, from the raw probabilities and the tuned binary threshold."""
    classes = list(bundle.classes)
    if bundle.threshold is not None and len(classes) == 2:
        pos = classes.index(bundle.positive_class)
        p = g.op("Gather", [raw, g.const(pos, np.int64)], axis=1)
        above = g.op("GreaterOrEqual", [p, g.const(float(bundle.threshold), np.float64)])
        index = g.op("Where", [above, g.const(pos, np.int64), g.const(1 - pos, np.int64)])
    else:
        index = g.op("ArgMax", [raw], axis=1, keepdims=0)
    return g.op("Gather", [g.const(class_values(classes)), index], axis=0)


def class_values(classes: List[Any]) -> np.ndarray:
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes):
        return np.asarray(classes, dtype=np.int64)
    return np.asarray([str(c) for c in classes], dtype=object)


def interp(g: Graph, x: str, xs: np.ndarray, ys: np.ndarray) -> str:
    """``np.interp(x, xs, ys)`` for a column ``x``: ys[0] plus each segment's slope times the part
    of it below x (clipped at both ends, as np.interp is)."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    keep = np.diff(xs) > 0
    if not keep.any():
        return g.op("Add", [g.op("Mul", [x, g.const(0.0, np.float64)]), g.const(ys[0], np.float64)])
    lo, widths = xs[:-1][keep], np.diff(xs)[keep]
    slopes = np.diff(ys)[keep] / widths
    covered = g.op("Max", [g.op("Sub", [x, g.const(lo.reshape(1, -1))]), g.const(0.0, np.float64)])
    covered = g.op("Min", [covered, g.const(widths.reshape(1, -1))])
    summed = g.op("ReduceSum", [g.op("Mul", [covered, g.const(slopes.reshape(1, -1))]), g.const([1], np.int64)],
                  keepdims=1)
    return g.op("Add", [summed, g.const(ys[0], np.float64)])


def temperature(g: Graph, raw: str, t: float) -> str:
    logp = g.op("Log", [g.op("Clip", [raw, g.const(1e-12, np.float64), g.const(1.0, np.float64)])])
    return g.op("Softmax", [g.op("Div", [logp, g.const(float(t), np.float64)])], axis=1)


def calibrated_output(g: Graph, bundle: Any, raw: str) -> str:
    """``ModelBundle.calibrate``: temperature or isotonic maps (one-vs-rest, renormalised)."""
    cal = getattr(bundle, "calibration", None)
    if cal is None:
        return temperature(g, raw, bundle.temperature) if bundle.temperature is not None else raw
    if cal.method == "temperature":
        return temperature(g, raw, cal.temperature)
    if cal.method != "isotonic":
        raise unsupported("calibration", cal.method)
    k = len(bundle.classes)
    mapped = {col: interp(g, g.op("Gather", [raw, g.const([col], np.int64)], axis=1), xs, ys)
              for col, xs, ys in zip(cal.columns, cal.knots_x, cal.knots_y)}
    if k == 2 and len(cal.columns) == 1:
        col = cal.columns[0]
        mapped[1 - col] = g.op("Sub", [g.const(1.0, np.float64), mapped[col]])
        return g.op("Concat", [mapped[0], mapped[1]], axis=1)
    out = g.op("Concat", [mapped[c] for c in range(k)], axis=1)
    return g.op("Div", [out, g.op("ReduceSum", [out, g.const([1], np.int64)], keepdims=1)])


def build_onnx(bundle: Any) -> Any:
    """The ModelBundle as a checked ONNX ModelProto (ExportError naming a step it cannot convert)."""
    import onnx

    g = Graph()
    raw = raw_output(g, bundle)
    outputs = []
    if bundle.problem_type == "regression":
        g.nodes.append(helper.make_node("Reshape", [raw, g.const([-1], np.int64)], ["prediction"], name="prediction"))
        outputs.append(helper.make_tensor_value_info("prediction", DOUBLE, [None]))
    else:
        label = label_output(g, bundle, raw)
        g.nodes.append(helper.make_node("Identity", [label], ["label"], name="label"))
        g.nodes.append(helper.make_node("Identity", [calibrated_output(g, bundle, raw)], ["probabilities"],
                                        name="probabilities"))
        int_labels = class_values(list(bundle.classes)).dtype == np.int64
        outputs += [helper.make_tensor_value_info("label", INT64 if int_labels else STRING, [None]),
                    helper.make_tensor_value_info("probabilities", DOUBLE, [None, len(bundle.classes)])]
    order = [c for c in bundle.feature_columns if c in g.inputs]
    inputs = [helper.make_tensor_value_info(c, g.inputs[c][1], [None, 1]) for c in order]
    graph = helper.make_graph(g.nodes, "automl", inputs, outputs, initializer=g.initializers)
    opsets = [helper.make_opsetid(d, v) for d, v in g.opsets.items()]
    model = helper.make_model(graph, producer_name="automl", opset_imports=opsets)
    model.ir_version = helper.find_min_ir_version_for(opsets, ignore_unknown=True)  # older runtimes load it too
    helper.set_model_props(model, {
        "automl.inputs": json.dumps({c: g.inputs[c][0] for c in order}),
        "automl.classes": json.dumps([str(c) for c in bundle.classes]), "automl.problem_type": bundle.problem_type,
        "automl.trial_id": str(bundle.trial_id), "automl.candidate": str(bundle.candidate)})
    onnx.checker.check_model(model)
    return model


def input_kinds(model: Any) -> Dict[str, str]:
    """The graph's input columns and their kinds (numeric, boolean, categorical), from its metadata."""
    props = {p.key: p.value for p in model.metadata_props}
    if "automl.inputs" not in props:
        raise ExportError("this ONNX model was not written by `automl export` (no automl.inputs metadata)")
    return json.loads(props["automl.inputs"])


def onnx_feed(frame: pd.DataFrame, model: Any) -> Dict[str, np.ndarray]:
    """onnxruntime's inputs for the rows of ``frame``, cast as the model's own first step casts
    them: numbers as double (NaN: missing), categories as text (``""``: missing)."""
    kinds = input_kinds(model)
    cast = FeatureCaster(kinds).fit(None).transform(frame)
    feed: Dict[str, np.ndarray] = {}
    for col, kind in kinds.items():
        s = cast[col]
        if kind == "categorical":
            feed[col] = s.astype(object).where(s.notna(), "").to_numpy(dtype=object).reshape(-1, 1)
        else:
            feed[col] = s.to_numpy(dtype=np.float64, na_value=np.nan).reshape(-1, 1)
    return feed
