"""Bias metrics of a facet column, as SageMaker Clarify defines them, with bootstrap intervals.

A facet is a column that splits the rows into groups (sex, age band, region). Each comparison
sets one group ``d`` (the facet value studied) against the rest ``a``:

    CI   = (n_a - n_d) / (n_a + n_d)   pre-training class imbalance; > 0: d has fewer rows
    DPL  = q_a - q_d                   difference in proportions of labels; q: the share of a
                                       group's rows whose label is the favourable one
    DPPL = p_a - p_d                   the same on the predicted labels (post-training)

DPL > 0 or DPPL > 0: group d receives the favourable outcome less often than the rest. For
regression, q and p are a group's mean target and mean prediction. A facet with two values gives
one comparison (d: the smaller group; a tie: the later value in sorted order); with more values,
each value is set against the rest.

Intervals: the percentile bootstrap over rows, all three metrics from the same resamples. The
rows are compressed to cells (group, label, prediction) and a resample is a multinomial draw of
the cell counts, which is the row bootstrap exactly at the cost of the number of distinct cells.

numpy and pandas only; automl/rundir/bias.py feeds it from a run folder (``bias.json``,
``Run.bias``) and automl/report/bias.py shows it (docs/bias.md).
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from automl.errors import ConfigError

N_RESAMPLES = 1000  # bootstrap resamples (fewer, not under MIN_RESAMPLES, when the rows have many distinct cells)
MIN_RESAMPLES = 200
CELL_BUDGET = 20_000_000  # resamples x distinct cells drawn at most (regression: the cells are about the rows)
CONFIDENCE = 0.95
MAX_FACET_VALUES = 20  # more distinct values: not a facet (bin the column into a new one)
MISSING_GROUP = "(missing)"  # the group of rows whose facet value is missing
_CHUNK = 2_000_000  # multinomial draws per chunk (resamples x cells)


def closest_column(name: str, columns: Sequence[Any]) -> Optional[str]:
    """The column whose name is nearest to ``name`` (case-insensitive), if any is close."""
    lowered = {str(c).lower(): str(c) for c in columns}
    near = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[near[0]] if near else None


def check_facet(facet: Optional[str], columns: Sequence[Any], target: str, dropped: Sequence[str] = (),
                values: Optional[pd.Series] = None) -> None:
    """``explain.facet`` names a column of the table that is not the target and has at most
    ``MAX_FACET_VALUES`` values; else a one-line ConfigError with the fix."""
    if not facet:
        return
    if str(facet) == str(target):
        raise ConfigError(f"explain.facet '{facet}' is the target (data.target); name the column whose groups "
                          "you want to compare, e.g. explain.facet=sex")
    if str(facet) in map(str, dropped) and str(facet) not in map(str, columns):
        raise ConfigError(f"explain.facet '{facet}' is removed by data.drop; take it out of data.drop "
                          "(data.exclude keeps a column out of the features but in the data)")
    if str(facet) not in map(str, columns):
        near = closest_column(facet, columns)
        hint = f"did you mean '{near}'?" if near else "no column has a similar name"
        shown = ", ".join(map(str, list(columns)[:20])) + (" …" if len(columns) > 20 else "")
        raise ConfigError(f"explain.facet '{facet}' is not a column of the table ({hint}); the columns are: {shown}")
    if values is not None:
        n = int(values.nunique(dropna=False))
        if n > MAX_FACET_VALUES:
            raise ConfigError(f"explain.facet '{facet}' has {n} distinct values; bias metrics compare groups, at "
                              f"most {MAX_FACET_VALUES}: bin the column into a new one (e.g. age bands) and name that")


def favourable_class(classes: Sequence[Any], problem_type: str, positive_class: Any,
                     wanted: Optional[Any]) -> Optional[Any]:
    """The class whose label is the favourable outcome: ``explain.facet_positive`` when given, else
    the positive class of a binary problem; None for regression (means are compared)."""
    if problem_type == "regression":
        if wanted is not None:
            raise ConfigError(f"explain.facet_positive={wanted!r} is for classification; this is a regression "
                              "problem, whose bias metrics compare mean targets and predictions: drop the key")
        return None
    if wanted is not None:
        for c in classes:
            if str(c) == str(wanted):
                return c
        raise ConfigError(f"explain.facet_positive={wanted!r} is not a class of the target; the classes are: "
                          f"{', '.join(map(str, classes))}")
    if problem_type == "binary":
        return positive_class if positive_class is not None else classes[-1]
    raise ConfigError("explain.facet on a multiclass problem needs the favourable class: explain.facet_positive="
                      f"CLASS, one of {', '.join(map(str, classes))}")


def facet_groups(values: pd.Series) -> Tuple[np.ndarray, List[str]]:
    """Each row's group code and the groups' names, sorted (missing values form ``MISSING_GROUP``)."""
    names = values.astype(object).where(values.notna(), MISSING_GROUP).map(str)
    codes, uniques = pd.factorize(names, sort=True)
    return np.asarray(codes, dtype=int), [str(u) for u in uniques]


def compared_groups(counts: np.ndarray) -> List[int]:
    """The groups set against the rest: the smaller of two (a tie: the later), else every group."""
    if len(counts) < 2:
        return []
    if len(counts) == 2:
        return [0] if counts[0] < counts[1] else [1]
    return list(range(len(counts)))


def _cells(g: np.ndarray, y: np.ndarray, p: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The distinct (group, has label, label, has prediction, prediction) rows and their counts."""
    hy, hp = ~np.isnan(y), ~np.isnan(p)
    rows = np.column_stack([g, hy, np.where(hy, y, 0.0), hp, np.where(hp, p, 0.0)])
    return np.unique(rows, axis=0, return_counts=True)


def _group_sums(cells: np.ndarray, counts: np.ndarray, n_groups: int) -> Dict[str, np.ndarray]:
    """Per group (last axis): rows, labelled rows, label sum, predicted rows, prediction sum.
    ``counts``: (cells,) or (resamples, cells)."""
    onehot = np.zeros((len(cells), n_groups))
    onehot[np.arange(len(cells)), cells[:, 0].astype(int)] = 1.0
    cols = {"n": 1.0, "ny": cells[:, 1], "sy": cells[:, 2], "np": cells[:, 3], "sp": cells[:, 4]}
    return {k: (counts * v) @ onehot for k, v in cols.items()}


def _rate_gap(s: Dict[str, np.ndarray], d: int, n: str, total: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rate of the rest, rate of d, rest - d) of the sums ``total`` over the counts ``n``."""
    all_n, all_t = s[n].sum(axis=-1), s[total].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate_d = s[total][..., d] / s[n][..., d]
        rate_a = (all_t - s[total][..., d]) / (all_n - s[n][..., d])
    return rate_a, rate_d, rate_a - rate_d


def _metrics(s: Dict[str, np.ndarray], d: int) -> Dict[str, np.ndarray]:
    n_d = s["n"][..., d]
    n_a = s["n"].sum(axis=-1) - n_d
    with np.errstate(invalid="ignore", divide="ignore"):
        ci = (n_a - n_d) / (n_a + n_d)
    qa, qd, dpl = _rate_gap(s, d, "ny", "sy")
    pa, pd_, dppl = _rate_gap(s, d, "np", "sp")
    return {"n": n_d, "n_rest": n_a, "ci": ci, "label_rate": qd, "label_rate_rest": qa, "dpl": dpl,
            "prediction_rate": pd_, "prediction_rate_rest": pa, "dppl": dppl}


def _resamples(per_resample: int, wanted: int) -> int:
    return max(min(wanted, MIN_RESAMPLES), min(wanted, CELL_BUDGET // max(1, per_resample)))


def _draw(rng: np.random.Generator, counts: np.ndarray, size: int) -> np.ndarray:
    """``size`` bootstrap resamples of the rows, as counts per cell, shape (size, cells): multinomial
    draws when there are few cells, else drawn rows counted per cell (the same distribution)."""
    n, n_cells = int(counts.sum()), len(counts)
    if n_cells * 8 <= n:
        return rng.multinomial(n, counts / counts.sum(), size=size).astype(float)
    row_cell = np.repeat(np.arange(n_cells), counts.astype(int))
    picked = row_cell[rng.integers(0, n, size=(size, n))] + (np.arange(size) * n_cells)[:, None]
    return np.bincount(picked.ravel(), minlength=size * n_cells).reshape(size, n_cells).astype(float)


def _bootstrap(cells: np.ndarray, counts: np.ndarray, n_groups: int, resamples: int,
               seed: int) -> Dict[str, np.ndarray]:
    """The per-group sums of ``resamples`` row bootstraps."""
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK // max(1, min(len(cells) * 8, int(counts.sum()))))
    parts = [_group_sums(cells, _draw(rng, counts, min(step, resamples - start)), n_groups)
             for start in range(0, resamples, step)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _interval(point: float, draws: np.ndarray, confidence: float) -> Optional[Dict[str, float]]:
    if not np.isfinite(point):
        return None
    finite = draws[np.isfinite(draws)]
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(finite, [tail, 100 - tail]) if len(finite) else (np.nan, np.nan)
    return {"value": float(point), "low": float(low), "high": float(high)}


def facet_bias(facet: pd.Series, label: Optional[np.ndarray] = None, prediction: Optional[np.ndarray] = None,
               seed: int = 0, resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE) -> Dict[str, Any]:
    """CI, DPL and DPPL of each compared group of ``facet`` with percentile bootstrap intervals.

    ``label``/``prediction``: per row, 1.0 where the label (the predicted label) is the favourable
    one and 0.0 where not, or the value itself for regression; NaN (or None for all rows) where
    there is none: such rows count for CI but not for DPL (DPPL). A metric without rows is None.
    """
    n = len(facet)
    g, names = facet_groups(facet.reset_index(drop=True))
    y = np.full(n, np.nan) if label is None else np.asarray(label, dtype=float)
    p = np.full(n, np.nan) if prediction is None else np.asarray(prediction, dtype=float)
    cells, counts = _cells(g, y, p)
    sums = _group_sums(cells, counts.astype(float), len(names))
    used = _resamples(min(len(cells), n), resamples)
    boot = _bootstrap(cells, counts.astype(float), len(names), used, seed) if n else {}
    comparisons = []
    for d in compared_groups(sums["n"]):
        point, draws = _metrics(sums, d), _metrics(boot, d)
        row: Dict[str, Any] = {"group": names[d]}
        row.update({k: int(point[k]) for k in ("n", "n_rest")})
        row.update({k: _number(point[k]) for k in ("label_rate", "label_rate_rest", "prediction_rate",
                                                    "prediction_rate_rest")})
        row.update({k: _interval(float(point[k]), draws[k], confidence) for k in ("ci", "dpl", "dppl")})
        comparisons.append(row)
    return {"groups": {name: int(c) for name, c in zip(names, sums["n"])}, "comparisons": comparisons,
            "n_rows": n, "n_labelled": int(np.sum(~np.isnan(y))), "n_predicted": int(np.sum(~np.isnan(p))),
            "resamples": used, "confidence": confidence, "seed": seed}


def _number(value: Any) -> Optional[float]:
    value = float(value)
    return value if np.isfinite(value) else None


def favourable_indicator(values: Sequence[Any], favourable: Any) -> np.ndarray:
    """1.0 where a label equals ``favourable`` (by value, else by its text), 0.0 elsewhere, NaN where missing."""
    out = np.empty(len(values))
    for i, v in enumerate(values):
        v = v.item() if hasattr(v, "item") else v
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out[i] = np.nan
        else:
            out[i] = 1.0 if (v == favourable or str(v) == str(favourable)) else 0.0
    return out


METRIC_COLUMNS = ("ci", "dpl", "dppl")


def bias_frame(doc: Mapping[str, Any]) -> pd.DataFrame:
    """``facet_bias``'s comparisons as a table: one row per compared group, each metric with its
    ``_low``/``_high`` interval; the rest of ``doc`` in ``.attrs``."""
    rows = []
    for c in doc.get("comparisons", []):
        row = {k: v for k, v in c.items() if k not in METRIC_COLUMNS}
        for m in METRIC_COLUMNS:
            iv = c.get(m) or {}
            row.update({m: iv.get("value"), f"{m}_low": iv.get("low"), f"{m}_high": iv.get("high")})
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("group") if rows else pd.DataFrame()
    frame.attrs.update({k: v for k, v in doc.items() if k != "comparisons"})
    return frame
