"""Which input column each processed column comes from, for a fitted automl pipeline.

A pipeline is ``FeatureCaster`` (input columns, datetimes split into parts) then a
``ColumnTransformer`` of blocks: numeric (imputer with missing indicators, maybe a scaler),
categorical (one-hot, ordinal, target or frequency encoding), TF-IDF per text column. Each
processed column is traced back through them, so contributions of the one-hot columns (and the
missing indicator, and the date parts) of one input column add up to one value for that column.
Known pieces are read from their fitted attributes; an unknown block is accepted only when its
width makes the mapping certain (one output per input column, or a single input column).
"""
from __future__ import annotations

from typing import Any, List, Sequence

import numpy as np

from automl.errors import AutoMLError


class ExplainError(AutoMLError):
    """A model or pipeline the explanations cannot handle, with what to do instead."""


def _steps(pipeline: Any) -> List[Any]:
    return [s for _, s in getattr(pipeline, "steps", [])]


def is_cast_pipeline(pipeline: Any) -> bool:
    """A fitted automl pipeline: FeatureCaster, a ColumnTransformer, then the model."""
    steps = _steps(pipeline)
    return (len(steps) >= 3 and hasattr(steps[0], "output_types_") and hasattr(steps[0], "column_types")
            and hasattr(steps[1], "transformers_") and hasattr(steps[1], "output_indices_"))


def _onehot_origins(enc: Any, cols: Sequence[str], width: int) -> List[str]:
    """One-hot columns per feature: its categories, infrequent ones merged into one, minus a dropped one."""
    infrequent = getattr(enc, "infrequent_categories_", None) or [None] * len(cols)
    drop = getattr(enc, "drop_idx_", None)
    out: List[str] = []
    for i, (col, cats) in enumerate(zip(cols, enc.categories_)):
        n = len(cats)
        if infrequent[i] is not None:
            n -= len(infrequent[i]) - 1
        if drop is not None and drop[i] is not None:
            n -= 1
        out += [col] * n
    if len(out) != width:
        raise ExplainError(f"cannot trace the one-hot columns of {list(cols)} ({len(out)} counted, {width} produced)")
    return out


def _imputer_origins(steps: List[Any], cols: Sequence[str], width: int) -> List[str]:
    """SimpleImputer (every column kept, then one missing indicator per column that had gaps), then
    one-to-one steps (scalers) or steps that say which input makes each output (``input_index_``:
    the spline basis)."""
    out = list(cols)
    indicator = getattr(steps[0], "indicator_", None)
    if indicator is not None:
        out += [cols[int(i)] for i in indicator.features_]
    for step in steps[1:]:
        index = getattr(step, "input_index_", None)
        if index is not None:
            out = [out[int(i)] for i in index]
    if len(out) != width:
        raise ExplainError(f"cannot trace the numeric block of {list(cols)} ({len(out)} counted, {width} produced)")
    return out


def block_origins(trans: Any, cols: Any, width: int) -> List[str]:
    """The cast column behind each of the ``width`` output columns of one fitted block."""
    if isinstance(cols, str):  # a single column by name (TF-IDF takes one text column)
        return [cols] * width
    cols = [str(c) for c in cols]
    name = type(trans).__name__
    if hasattr(trans, "ct_") and hasattr(trans.ct_, "output_indices_"):  # automl's CategoricalEncoder
        return transformer_origins(trans.ct_, width)
    if name == "OneHotEncoder":
        return _onehot_origins(trans, cols, width)
    if name == "TargetEncoder" and width % max(1, len(cols)) == 0:  # multiclass: a column per class, feature-major
        return [c for c in cols for _ in range(width // max(1, len(cols)))]
    steps = _steps(trans) or [trans]
    if type(steps[0]).__name__ == "SimpleImputer":
        return _imputer_origins(steps, cols, width)
    if len(cols) == 1:
        return cols * width
    if width == len(cols):
        return cols
    raise ExplainError(f"cannot trace the columns of a {name} block over {cols}: {width} outputs for "
                       f"{len(cols)} inputs")


def transformer_origins(ct: Any, width: int) -> List[str]:
    """The input column behind each output column of a fitted ColumnTransformer."""
    out: List[str] = [""] * width
    for name, trans, cols in ct.transformers_:
        part = ct.output_indices_.get(name)
        if part is None or part.stop <= part.start or (isinstance(trans, str) and trans == "drop"):
            continue
        if isinstance(trans, str):  # passthrough
            trans = None
        origins = block_origins(trans, cols, part.stop - part.start)
        out[part.start:part.stop] = origins
    if any(o == "" for o in out):
        raise ExplainError("cannot trace every processed column back to an input column")
    return out


def processed_origins(pipeline: Any, width: int) -> List[str]:
    """For a fitted automl pipeline, the input column behind each of its ``width`` processed columns
    (a datetime's parts, ``col__year`` ..., go back to ``col``)."""
    caster, ct = _steps(pipeline)[:2]
    back = {}
    for out_col in caster.output_types_:
        stem = out_col.rsplit("__", 1)[0]
        back[out_col] = stem if out_col not in caster.column_types and \
            caster.column_types.get(stem) == "datetime" else out_col
    return [back.get(c, c) for c in transformer_origins(ct, width)]


def group_matrix(origins: Sequence[str], columns: Sequence[str]) -> np.ndarray:
    """A 0/1 matrix (processed columns x input columns): contributions @ it sums each input column's."""
    index = {c: j for j, c in enumerate(columns)}
    missing = sorted({o for o in origins if o not in index})
    if missing:
        raise ExplainError(f"processed columns come from {missing}, which are not input columns of the model")
    g = np.zeros((len(origins), len(columns)))
    g[np.arange(len(origins)), [index[o] for o in origins]] = 1.0
    return g
