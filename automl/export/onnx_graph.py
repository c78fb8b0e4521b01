"""automl's processing steps as ONNX nodes: the column casts, imputation with missing indicators,
scaling, and every categorical encoding, computed in double precision.

Each raw feature column is one graph input of shape ``[N, 1]``: ``tensor(double)`` for numeric and
boolean columns (NaN: missing), ``tensor(string)`` for categorical ones (``""``: missing). The
numbers follow ``automl.candidates.processing`` step by step (non-finite numbers are missing,
extreme ones clipped, then the fitted imputer's statistics, indicators and scaler); a categorical
column becomes a lookup of its category in a table built by running the fitted encoder itself on
each known category and on an unseen one, so one-hot (with infrequent categories), ordinal,
target and frequency encodings all take the encoder's exact values. A step without a conversion
is an ExportError that names it.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd
from onnx import TensorProto, helper, numpy_helper
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler, TargetEncoder

from automl.candidates.processing import (MISSING_TOKEN, NUMERIC_CLIP, CategoricalEncoder, FeatureCaster, SignedLog,
                                          SplineExpand)
from automl.errors import ExportError

OPSET = 15  # the default ONNX domain (onnxmltools converts up to 15)
ML_OPSET = 3  # ai.onnx.ml (TreeEnsemble v3, LabelEncoder v2)
UNSEEN = "\x00automl-unseen-category"  # a probe value no training row holds
DOUBLE, FLOAT, STRING, INT64 = TensorProto.DOUBLE, TensorProto.FLOAT, TensorProto.STRING, TensorProto.INT64


def unsupported(step: str, what: Any, detail: str = "") -> ExportError:
    """The one-line error for a step without an ONNX conversion."""
    kind = what if isinstance(what, str) else type(what).__name__
    return ExportError(f"cannot export to ONNX: step '{step}' ({kind}) has no ONNX conversion{detail}; export "
                       "another trial (trial=ID, see leaderboard.csv) or refit with a candidate without this step "
                       "(see docs/ecosystem.md)")


class Graph:
    """Nodes, constants and inputs of the graph being built; every name it makes is unique."""

    def __init__(self) -> None:
        self.nodes: List[Any] = []
        self.initializers: List[Any] = []
        self.inputs: Dict[str, Tuple[str, int]] = {}  # column -> (kind, element type)
        self.opsets: Dict[str, int] = {"": OPSET, "ai.onnx.ml": ML_OPSET}
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"automl.{hint}.{self._n}"

    def const(self, value: Any, dtype: Any = None) -> str:
        name = self.name("const")
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], domain: str = "", **attrs: Any) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self.name(f"node.{op_type}"),
                                           domain=domain, **attrs))
        return out

    def input(self, column: str, kind: str) -> str:
        if column not in self.inputs:
            self.inputs[column] = (kind, STRING if kind == "categorical" else DOUBLE)
        return column

    def concat(self, parts: List[str]) -> str:
        return parts[0] if len(parts) == 1 else self.op("Concat", parts, axis=1)

    def add_model(self, model: Any, feed: str) -> List[str]:
        """Append a converted estimator's graph (its names prefixed), fed by ``feed``; returns
        its output names."""
        from onnx import compose

        prefixed = compose.add_prefix(model, prefix=self.name("model") + "/")
        self.nodes.append(helper.make_node("Identity", [feed], [prefixed.graph.input[0].name],
                                           name=self.name("node.feed")))
        self.nodes.extend(prefixed.graph.node)
        self.initializers.extend(prefixed.graph.initializer)
        for imp in prefixed.opset_import:
            self.opsets[imp.domain] = max(self.opsets.get(imp.domain, 0), imp.version)
        return [o.name for o in prefixed.graph.output]


def cast_inputs(g: Graph, cast: Any, path: str) -> Dict[str, Tuple[str, str]]:
    """The graph inputs of the columns the ``cast`` step (FeatureCaster) reads: column -> (tensor, kind)."""
    if not isinstance(cast, FeatureCaster):
        raise unsupported(path, cast)
    out: Dict[str, Tuple[str, str]] = {}
    for col, kind in cast.column_types.items():
        if kind in ("datetime", "text"):
            raise unsupported(path, f"{kind} column '{col}'",
                              " (date parts and TF-IDF are not converted; data.drop or processing "
                              f"{kind}=drop leaves the column out)")
        out[col] = (g.input(col, kind), kind)
    return out


def numeric_block(g: Graph, step: Any, cols: List[str], inputs: Dict[str, Tuple[str, str]], path: str) -> Tuple[str, int]:
    """Cast, impute (with missing indicators) and scale numeric and boolean columns."""
    from sklearn.impute import SimpleImputer

    steps = step.steps if isinstance(step, Pipeline) else [(type(step).__name__.lower(), step)]
    imputer = steps[0][1]
    if not isinstance(imputer, SimpleImputer):
        raise unsupported(f"{path} › {steps[0][0]}", imputer)
    lo, hi = g.const(-NUMERIC_CLIP, np.float64), g.const(NUMERIC_CLIP, np.float64)
    values, masks = [], []
    for col in cols:
        x, kind = inputs[col]
        if kind == "boolean":  # FeatureCaster keeps booleans' values; only NaN is missing
            values.append(x)
            masks.append(g.op("IsNaN", [x]))
        else:  # non-finite numbers are missing, extreme ones clipped
            values.append(g.op("Clip", [x, lo, hi]))
            masks.append(g.op("Or", [g.op("IsNaN", [x]), g.op("IsInf", [x])]))
    mask = g.concat(masks)
    stats = np.nan_to_num(np.asarray(imputer.statistics_, dtype=float), nan=0.0).reshape(1, -1)
    out, width = g.op("Where", [mask, g.const(stats), g.concat(values)]), len(cols)
    indicator = getattr(imputer, "indicator_", None)
    if indicator is not None and len(indicator.features_):
        picked = g.op("Gather", [mask, g.const(np.asarray(indicator.features_, dtype=np.int64))], axis=1)
        out = g.concat([out, g.op("Cast", [picked], to=DOUBLE)])
        width += len(indicator.features_)
    for name, scaler in steps[1:]:
        out = scale(g, scaler, out, f"{path} › {name}")
    return out, width


def scale(g: Graph, step: Any, x: str, path: str) -> str:
    """StandardScaler, MinMaxScaler, RobustScaler and SignedLog, as scikit-learn computes them."""
    if isinstance(step, StandardScaler):
        if step.mean_ is not None:
            x = g.op("Sub", [x, g.const(step.mean_.reshape(1, -1), np.float64)])
        return x if step.scale_ is None else g.op("Div", [x, g.const(step.scale_.reshape(1, -1), np.float64)])
    if isinstance(step, MinMaxScaler) and not step.clip:
        x = g.op("Mul", [x, g.const(step.scale_.reshape(1, -1), np.float64)])
        return g.op("Add", [x, g.const(step.min_.reshape(1, -1), np.float64)])
    if isinstance(step, RobustScaler):
        if step.center_ is not None:
            x = g.op("Sub", [x, g.const(step.center_.reshape(1, -1), np.float64)])
        return x if step.scale_ is None else g.op("Div", [x, g.const(step.scale_.reshape(1, -1), np.float64)])
    if isinstance(step, SignedLog):  # sign(x) * log(1 + |x|)
        magnitude = g.op("Log", [g.op("Add", [g.op("Abs", [x]), g.const(1.0, np.float64)])])
        return g.op("Mul", [g.op("Sign", [x]), magnitude])
    if isinstance(step, SplineExpand):
        parts = [scale(g, step.scaler_, x, path)]
        for j, knots, spline in zip(step.spline_columns_, step.knots_, step._splines()):
            column = g.op("Gather", [x, g.const(np.asarray([j], dtype=np.int64))], axis=1)
            parts.append(spline_basis(g, column, np.asarray(knots, dtype=float), spline.bsplines_[0]))
        return g.concat(parts)
    raise unsupported(path, step)


def spline_basis(g: Graph, x: str, knots: np.ndarray, bspline: Any) -> str:
    """One column's B-spline basis (rows, basis) as SplineTransformer computes it with constant
    extrapolation: the value clipped to the knots' range, then on its knot interval each basis
    function is a polynomial in (x - the interval's left knot), evaluated by Horner's rule."""
    from scipy.interpolate import BSpline, PPoly

    n_basis, intervals = bspline.c.shape[1], len(knots) - 1
    # coefs[m, p, i]: power (degree - p) coefficient of basis i on interval m (PPoly's order)
    coefs = np.zeros((intervals, bspline.k + 1, n_basis))
    for i in range(n_basis):
        pp = PPoly.from_spline(BSpline(bspline.t, bspline.c[:, i], bspline.k))
        first = int(np.searchsorted(pp.x, knots[0], side="right")) - 1
        coefs[:, :, i] = pp.c[:, first:first + intervals].T
    xc = g.op("Clip", [x, g.const(knots[0], np.float64), g.const(knots[-1], np.float64)])
    # the interval: how many inner knots lie at or below the value (0 .. intervals - 1)
    above = g.op("Cast", [g.op("GreaterOrEqual", [xc, g.const(knots[1:-1].reshape(1, -1))])], to=TensorProto.INT64)
    index = g.op("ReduceSum", [above, g.const(np.asarray([1], dtype=np.int64))], keepdims=0)  # (rows,)
    d = g.op("Sub", [xc, g.op("Gather", [g.const(knots[:-1].reshape(-1, 1)), index], axis=0)])  # (rows, 1)
    table = g.op("Gather", [g.const(coefs), index], axis=0)  # (rows, degree + 1, basis)
    out = None
    for p in range(bspline.k + 1):
        c = g.op("Gather", [table, g.const(np.asarray(p, dtype=np.int64))], axis=1)  # (rows, basis)
        out = c if out is None else g.op("Add", [g.op("Mul", [out, d]), c])
    return out


def _categories(enc: Any, n: int, path: str) -> List[List[Any]]:
    if hasattr(enc, "categories_"):
        return [list(c) for c in enc.categories_]
    if hasattr(enc, "maps_"):  # automl's FrequencyEncoder
        return [list(m) for m in enc.maps_]
    raise unsupported(path, enc)


def _widths(enc: Any, cats: List[List[Any]]) -> List[int]:
    """Output columns per input column, in the encoder's order."""
    if isinstance(enc, OneHotEncoder):
        if enc.drop is not None:
            return []
        infrequent = getattr(enc, "infrequent_categories_", None) or [None] * len(cats)
        return [len(c) - (0 if inf is None else len(inf)) + (0 if inf is None else 1) for c, inf in zip(cats, infrequent)]
    if isinstance(enc, TargetEncoder) and getattr(enc, "target_type_", "") == "multiclass":
        return [len(enc.classes_)] * len(cats)
    return [1] * len(cats)


def encoder_tables(enc: Any, cols: List[str], path: str) -> List[Tuple[List[str], np.ndarray]]:
    """Per column: its categories and the encoder's output for each, plus a last row for an unseen
    category (computed by the fitted encoder itself)."""
    cats = _categories(enc, len(cols), path)
    widths = _widths(enc, cats)
    first = [c[0] if c else UNSEEN for c in cats]
    tables, offset = [], 0
    for i, col in enumerate(cols):
        values = cats[i] + [UNSEEN]
        probe = pd.DataFrame({c: values if j == i else [first[j]] * len(values) for j, c in enumerate(cols)},
                             dtype=object)
        try:
            with warnings.catch_warnings():  # the unseen probe value: "unknown categories" warnings
                warnings.simplefilter("ignore")
                out = enc.transform(probe)
        except Exception as exc:
            raise unsupported(path, enc, f" (it cannot encode a probe row: {type(exc).__name__})") from None
        out = np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=float)
        if not widths or sum(widths) != out.shape[1]:
            raise unsupported(path, enc, " (its output columns could not be matched to its input columns)")
        tables.append(([str(v) for v in cats[i]], out[:, offset:offset + widths[i]]))
        offset += widths[i]
    return tables


def missing_category() -> str:
    """The category a missing value becomes in automl's processing: the cast step's text for it,
    or the encoder's ``MISSING_TOKEN`` when the cast keeps it missing (found by running them)."""
    probe = pd.DataFrame({"c": pd.Series([np.nan, "x"], dtype=object)})
    value = FeatureCaster({"c": "categorical"}).fit(None).transform(probe)["c"].iloc[0]
    return value if isinstance(value, str) else MISSING_TOKEN


def lookup(g: Graph, x: str, categories: List[str], table: np.ndarray) -> str:
    """Rows of ``table`` by the category in ``x``; ``""`` counts as missing, anything unknown
    takes the last row."""
    keys, values = list(categories), list(range(len(categories)))
    missing = missing_category()
    if missing in keys and "" not in keys:
        keys.append("")
        values.append(keys.index(missing))
    index = g.op("LabelEncoder", [x], domain="ai.onnx.ml", keys_strings=keys, values_int64s=values,
                 default_int64=len(categories))
    rows = g.op("Gather", [g.const(table, np.float64), index], axis=0)  # [N, 1, width]
    return g.op("Squeeze", [rows, g.const([1], np.int64)])


def categorical_block(g: Graph, step: Any, cols: List[str], inputs: Dict[str, Tuple[str, str]],
                      path: str) -> Tuple[str, int]:
    """automl's CategoricalEncoder: its inner ColumnTransformer's encoders, column by column."""
    if not isinstance(step, CategoricalEncoder):
        raise unsupported(path, step)
    parts, width = [], 0
    for name, enc, sub_cols in step.ct_.transformers_:
        if isinstance(enc, str) and enc == "drop" or len(sub_cols) == 0:
            continue
        if isinstance(enc, str):
            raise unsupported(f"{path} › {name}", enc)
        for col, (cats, table) in zip(sub_cols, encoder_tables(enc, list(sub_cols), f"{path} › {name}")):
            parts.append(lookup(g, inputs[col][0], cats, table))
            width += table.shape[1]
    return g.concat(parts), width


def processing(g: Graph, pipe: Pipeline, path: str) -> Tuple[str, int]:
    """The processing steps of one automl pipeline (``cast``, ``columns``): a double matrix."""
    names = [name for name, _ in pipe.steps]
    if names[:2] != ["cast", "columns"] or len(names) != 3:
        raise unsupported(f"{path}{' › '.join(names)}", pipe, " (not an automl candidate pipeline)")
    inputs = cast_inputs(g, pipe.steps[0][1], f"{path}cast")
    columns = pipe.steps[1][1]
    parts, width = [], 0
    for name, step, cols in columns.transformers_:
        if isinstance(step, str) and step == "drop" or len(cols) == 0:
            continue
        where = f"{path}columns › {name}"
        if isinstance(step, str) or isinstance(cols, str):  # passthrough, or one text column's TF-IDF
            raise unsupported(where, step)
        if any(c not in inputs for c in cols):
            raise unsupported(where, step, " (it reads derived columns)")
        block = categorical_block if isinstance(step, CategoricalEncoder) else numeric_block
        out, w = block(g, step, list(cols), inputs, where)
        parts.append(out)
        width += w
    if not parts:
        raise unsupported(f"{path}columns", columns, " (no columns)")
    return g.concat(parts), width
