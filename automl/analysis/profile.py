"""Describe a training table: dataset summary, target analysis and a per-column table.

Every function takes the training rows as a DataFrame (target included) and returns plain
pandas objects, so the exploration notebook and the report show the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import pandas as pd

from automl.data.types import COLUMN_TYPES, infer_column_types


def _pct(x: float) -> float:
    return round(100.0 * float(x), 2)


def resolve_types(df: pd.DataFrame, target: str, column_types: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The feature columns' inferred types (computed when not given)."""
    if column_types:
        return {c: t for c, t in column_types.items() if c in df.columns and c != target}
    return infer_column_types(df.drop(columns=[target]))


def dataset_summary(df: pd.DataFrame, target: str, problem_type: str, reason: str = "",
                    column_types: Optional[Dict[str, str]] = None) -> pd.DataFrame:
    """One row per fact: rows, columns, duplicate rows, missing cells, problem type and why,
    and the number of columns of each inferred type."""
    types = resolve_types(df, target, column_types)
    n = len(df)
    dup = int(df.duplicated().sum()) if n else 0
    cells = df.drop(columns=[target]).size
    missing = float(df.drop(columns=[target]).isna().to_numpy().sum()) / cells if cells else 0.0
    rows = [
        ("rows", f"{n:,}"),
        ("columns (without the target)", f"{df.shape[1] - 1:,}"),
        ("duplicate rows", f"{dup:,} ({_pct(dup / n if n else 0)}%)"),
        ("missing cells", f"{_pct(missing)}%"),
        ("rows with a missing value", f"{_pct(df.isna().any(axis=1).mean() if n else 0)}%"),
        ("target", str(target)),
        ("problem type", problem_type),
        ("why", reason or "-"),
    ]
    counts = pd.Series(list(types.values()), dtype=object).value_counts()
    for kind in COLUMN_TYPES:
        if counts.get(kind):
            rows.append((f"{kind} columns", f"{int(counts[kind])}"))
    return pd.DataFrame(rows, columns=["item", "value"]).set_index("item")


@dataclass
class TargetAnalysis:
    """What the target looks like: a table, headline numbers and the problems found."""

    problem_type: str
    table: pd.DataFrame
    stats: Dict[str, Any] = field(default_factory=dict)

    def _repr_html_(self) -> str:  # shown in notebooks
        facts = "".join(f"<li><b>{k}</b>: {v}</li>" for k, v in self.stats.items())
        return f"<ul>{facts}</ul>" + self.table._repr_html_()

    def __repr__(self) -> str:
        facts = "\n".join(f"{k}: {v}" for k, v in self.stats.items())
        return f"{facts}\n{self.table}"


def target_analysis(y: pd.Series, problem_type: str) -> TargetAnalysis:
    """Classification: class frequencies and imbalance. Regression: distribution, skew, outliers."""
    y = y.dropna()
    if problem_type == "regression":
        v = pd.to_numeric(y, errors="coerce").dropna().astype(float)
        q1, q3 = v.quantile([0.25, 0.75])
        iqr = q3 - q1
        outliers = int(((v < q1 - 3 * iqr) | (v > q3 + 3 * iqr)).sum()) if iqr > 0 else 0
        table = v.describe().to_frame("target").T
        stats = {"skew": round(float(v.skew()), 3), "excess kurtosis": round(float(v.kurt()), 3),
                 "outliers (beyond 3 IQR)": f"{outliers} ({_pct(outliers / max(1, len(v)))}%)",
                 "distinct values": int(v.nunique())}
        return TargetAnalysis(problem_type, table, stats)
    counts = y.astype(object).value_counts()
    table = pd.DataFrame({"rows": counts, "share %": (100 * counts / counts.sum()).round(2)})
    table.index = table.index.map(str)
    table.index.name = "class"
    stats = {"classes": int(len(counts)), "majority class": f"{counts.index[0]} ({int(counts.iloc[0])} rows)",
             "minority class": f"{counts.index[-1]} ({int(counts.iloc[-1])} rows)",
             "imbalance (minority / majority)": round(float(counts.iloc[-1] / counts.iloc[0]), 3)}
    return TargetAnalysis(problem_type, table, stats)


def column_table(df: pd.DataFrame, column_types: Dict[str, str]) -> pd.DataFrame:
    """One row per column: type, missing %, cardinality and descriptive statistics."""
    rows = []
    for col in df.columns:
        s = df[col]
        kind = column_types.get(str(col), "?")
        row: Dict[str, Any] = {"column": str(col), "type": kind, "missing %": _pct(s.isna().mean()),
                               "distinct": int(s.nunique(dropna=True))}
        num = pd.to_numeric(s, errors="coerce") if kind in ("numeric", "boolean", "id") else None
        if num is not None and num.notna().any():
            num = num.astype(float)
            row.update({"mean": num.mean(), "std": num.std(), "min": num.min(), "median": num.median(),
                        "max": num.max()})
        else:
            top = s.dropna().astype(str).value_counts()
            if len(top):
                row.update({"top value": top.index[0], "top share %": _pct(top.iloc[0] / max(1, s.notna().sum()))})
        rows.append(row)
    out = pd.DataFrame(rows).set_index("column")
    for c in ("mean", "std", "min", "median", "max"):
        if c in out:
            out[c] = out[c].astype(float).round(4)
    return out
