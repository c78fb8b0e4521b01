"""Profiling a Ray Dataset without bringing it to the driver: the exact row count, class counts
and numeric moments by streaming aggregations; the problem type, column types and the
monitoring baseline's quantiles, histograms and category frequencies on a sample (which ones
is recorded in ``baseline/statistics.json`` and summary.json)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from automl.data.columns import choose_features
from automl.data.types import apply_type_overrides, infer_column_types
from automl.distributed.dataset import DATA_TASK_CPUS
from automl.errors import DataError
from automl.problem import ProblemInfo, resolve_problem
from automl.stages.prepare import feature_columns

log = logging.getLogger(__name__)
EXACT_NUMERIC = ("count", "present", "missing", "mean", "std", "min", "max")  # from the whole table
SAMPLED = ("quantiles", "histogram", "negative", "categorical frequencies", "text", "datetime range")


@dataclass
class Profile:
    """What the distributed flow knows of the table before any trial."""

    n_rows: int  # exact: every row read
    columns: List[str]
    sample: pd.DataFrame  # a uniform sample (column types, problem type)
    info: ProblemInfo
    column_types: Dict[str, str]  # every column but the target
    features: List[str]
    class_counts: Dict[Any, int] = field(default_factory=dict)  # exact, classification only

    @property
    def feature_types(self) -> Dict[str, str]:
        return {c: self.column_types[c] for c in self.features}


def check_columns(columns: List[str], cfg: DictConfig) -> None:
    """The target is a column, and the names are unique (one-line errors)."""
    target = cfg.data.target
    if target not in columns:
        shown = ", ".join(map(str, columns[:30])) + (" …" if len(columns) > 30 else "")
        raise DataError(f"data.target '{target}' is not a column; the columns are: {shown}")
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise DataError(f"duplicate column name(s): {', '.join(dup)}; rename them so each is unique")


def _value_counts(batch: pd.DataFrame, target: str) -> pd.DataFrame:
    counts = batch[target].value_counts(dropna=True)
    return pd.DataFrame({"value": counts.index.to_numpy(dtype=object), "count": counts.to_numpy()})


def class_counts(ds, target: str) -> Dict[Any, int]:
    """Exact row count per class: a count per batch, summed here (one small row per class and batch)."""
    parts = ds.select_columns([target]).map_batches(_value_counts, fn_kwargs={"target": target},
                                                    batch_format="pandas", num_cpus=DATA_TASK_CPUS).to_pandas()
    if parts.empty:
        return {}
    summed = parts.groupby("value")["count"].sum()
    return {(v.item() if hasattr(v, "item") else v): int(n) for v, n in summed.items()}


def exact_info(info: ProblemInfo, counts: Dict[Any, int]) -> ProblemInfo:
    """The problem info with the classes and balance of the whole table (the sample may miss a rare class)."""
    if info.problem_type == "regression" or not counts:
        return info
    missing = sorted(set(counts) - set(info.classes), key=str)
    if missing and info.problem_type == "binary":
        raise DataError(f"the target has {len(counts)} classes in the whole table, not 2; use problem_type=multiclass")
    if missing:
        log.info("class(es) %s are missing from the sample: taken from the whole table's counts", missing)
        info.classes = sorted(counts, key=lambda c: (str(type(c)), c))
    info.imbalance_ratio = float(min(counts.values()) / max(counts.values()))
    return info


def numeric_moments(ds, columns: List[str]) -> Dict[str, Dict[str, Any]]:
    """Exact present count, mean, std, min and max of each numeric column (one streaming pass)."""
    if not columns:
        return {}
    from ray.data.aggregate import Count, Max, Mean, Min, Std

    aggs = [Count(alias_name="__rows")]
    for c in columns:
        aggs += [Count(on=c, ignore_nulls=True, alias_name=f"present({c})"), Mean(on=c, alias_name=f"mean({c})"),
                 Std(on=c, alias_name=f"std({c})"), Min(on=c, alias_name=f"min({c})"),
                 Max(on=c, alias_name=f"max({c})")]
    got = ds.select_columns(columns).aggregate(*aggs)
    out = {}
    for c in columns:
        num = {k: _finite(got.get(f"{k}({c})")) for k in ("mean", "std", "min", "max")}
        present = int(got.get(f"present({c})") or 0)
        out[c] = {"count": int(got["__rows"]), "present": present, "missing": int(got["__rows"]) - present, **num}
    return out


def _finite(v: Any) -> Any:
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def infer_types(cfg: DictConfig, sample: pd.DataFrame) -> Tuple[Dict[str, str], List[str]]:
    """Column types on the sample (data.types overrides them) and the feature columns."""
    X = sample.drop(columns=[cfg.data.target])
    types = dict(cfg.data.get("types") or {})
    column_types = apply_type_overrides(X, infer_column_types(X), types)
    features = choose_features(column_types, feature_columns(column_types), cfg.data.get("features"),
                               list(cfg.data.get("exclude") or []), types)
    return column_types, features


def profile_dataset(ds, cfg: DictConfig, n_rows: int, sample: pd.DataFrame) -> Profile:
    """The problem, column types and exact class counts of ``ds`` (``sample``: a uniform sample of it)."""
    from automl.stages.prepare import check_column_choice

    target = cfg.data.target
    columns = list(sample.columns)
    check_columns(columns, cfg)
    check_column_choice(cfg, sample)
    info = resolve_problem(sample[target], cfg.problem_type, cfg.metric, target)
    counts = class_counts(ds, target) if info.problem_type != "regression" else {}
    info = exact_info(info, counts)
    log.info("problem: %s (%s, on a %d-row sample); metric: %s", info.problem_type, info.reason, len(sample),
             info.metric)
    column_types, features = infer_types(cfg, sample)
    return Profile(n_rows, columns, sample, info, column_types, features, counts)


def baseline_of(profile: Profile, sample: pd.DataFrame, moments: Dict[str, Dict[str, Any]], target: str,
                ignored: List[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(statistics, constraints) for baseline/: monitor/baseline.py's on the training sample, with
    the numeric columns' counts and moments replaced by the whole table's exact ones."""
    from automl.monitor.baseline import build_baseline

    stats, constraints = build_baseline(sample, profile.column_types, target=target, ignored=ignored)
    for col, exact in moments.items():
        st, cons = stats["features"].get(col), constraints["features"].get(col)
        if st is None or cons is None:
            continue
        st.update({k: exact[k] for k in ("count", "present", "missing")})
        st.setdefault("numeric", {}).update({k: exact[k] for k in ("mean", "std", "min", "max")})
        cons["completeness"] = round(exact["present"] / max(1, exact["count"]), 6)
        cons["is_non_negative"] = bool(exact["min"] is not None and exact["min"] >= 0)
    stats["dataset"].update({"n_rows": int(next(iter(moments.values()))["count"]) if moments else len(sample),
                             "sample_rows": int(len(sample))})
    stats["sampling"] = {"sample_rows": int(len(sample)), "exact": list(EXACT_NUMERIC) + ["numeric columns only"],
                         "sampled": list(SAMPLED)}
    return stats, constraints
