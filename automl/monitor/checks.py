"""The data-quality checks of `automl monitor`, named as in SageMaker Model Monitor.

Each check compares one batch against the baseline (``statistics.json`` + ``constraints.json``).
One cause, one violation: a feature whose values are of the wrong type is not also checked for
drift or unknown categories, and values outside a categorical domain belong to
``categorical_values_check`` alone (drift compares only the in-domain values). Rate checks fire
when the rate exceeds the baseline rate by more than the threshold *and* the rise is significant
(one-sided two-proportion z-test at ``significance_level``), so small fair samples do not alarm;
drift fires when the distance exceeds its threshold and a chi-square test of the binned counts is
significant.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from scipy import special

from automl.data.columns import missing_columns
from automl.errors import ConfigError, DataError
from automl.explain.drift import ndcg_at_k, ranking
from automl.monitor.baseline import (DEFAULT_MONITORING, FALSE_TOKENS, TRUE_TOKENS, as_booleans, as_categories,
                                     dataset_statistics, missing_mask)

CHECKS = ("data_type_check", "completeness_check", "baseline_drift_check", "missing_column_check",
          "extra_column_check", "categorical_values_check", "attribution_drift_check")
ATTRIBUTIONS = "feature attributions"  # the feature_name of an attribution_drift_check violation
NUMERIC_METHODS = ("psi", "ks", "linf")
CATEGORICAL_METHODS = ("linf", "psi")
_BOOLEAN_TOKENS = TRUE_TOKENS | FALSE_TOKENS
_FLOOR = 1e-4  # proportions below this count as this much in PSI


@dataclass
class Violation:
    """One broken constraint; ``details`` feed the HTML report and are not written to JSON."""

    feature_name: str
    constraint_check_type: str
    description: str
    details: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, str]:
        return {"feature_name": self.feature_name, "constraint_check_type": self.constraint_check_type,
                "description": self.description}


@dataclass
class CheckResult:
    violations: List[Violation]
    statistics: Dict[str, Any]
    n_rows: int
    distances: Dict[str, Dict[str, Any]]  # per feature: drift distance, p-value, bins (for the report)


def monitoring_config(constraints: Dict[str, Any]) -> Dict[str, Any]:
    """The defaults overlaid with constraints.json's ``monitoring`` block; unknown keys are errors."""
    cfg = copy.deepcopy(DEFAULT_MONITORING)
    for key, value in (constraints.get("monitoring") or {}).items():
        if key not in cfg:
            raise ConfigError(f"constraints.json: unknown monitoring key '{key}'; valid keys: {', '.join(cfg)}")
        if isinstance(cfg[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"constraints.json: monitoring.{key} must be a mapping like "
                                  f"{cfg[key]}; got {value!r}")
            for sub in value:
                if sub not in cfg[key]:
                    raise ConfigError(f"constraints.json: unknown key monitoring.{key}.{sub}; "
                                      f"valid keys: {', '.join(cfg[key])}")
            cfg[key].update(value)
        else:
            cfg[key] = value
    drift = cfg["baseline_drift_check"]
    if drift["numeric_method"] not in NUMERIC_METHODS:
        raise ConfigError(f"constraints.json: monitoring.baseline_drift_check.numeric_method is "
                          f"'{drift['numeric_method']}'; use one of {', '.join(NUMERIC_METHODS)}")
    if drift["categorical_method"] not in CATEGORICAL_METHODS:
        raise ConfigError(f"constraints.json: monitoring.baseline_drift_check.categorical_method is "
                          f"'{drift['categorical_method']}'; use one of {', '.join(CATEGORICAL_METHODS)}")
    attr = cfg["attribution_drift_check"]
    if isinstance(attr["k"], bool) or not isinstance(attr["k"], int) or attr["k"] < 1 \
            or not isinstance(attr["threshold"], (int, float)) or not 0 < attr["threshold"] <= 1:
        raise ConfigError(f"constraints.json: monitoring.attribution_drift_check needs an integer k >= 1 and a "
                          f"threshold in (0, 1]; got k={attr['k']!r}, threshold={attr['threshold']!r}")
    alpha = cfg["significance_level"]
    if not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
        raise ConfigError(f"constraints.json: monitoring.significance_level must be in (0, 1]; got {alpha!r}")
    return cfg


# ----------------------------------------------------------------------------- statistics helpers
def chi2_p_value(base_counts: List[float], counts: List[float]) -> float:
    """Chi-square test that two count vectors come from one distribution.

    Cells whose expected batch count is under 5 are pooled first (rarest first), so small batches
    are not judged by an approximation that does not hold for them; fewer than two cells: p = 1.
    """
    base = np.asarray(base_counts, dtype=float)
    cur = np.asarray(counts, dtype=float)
    n = cur.sum()
    if n == 0 or base.sum() == 0:
        return 1.0
    expected = n * base / base.sum()
    groups: List[List[int]] = []
    pool: List[int] = []
    for i in np.argsort(expected, kind="stable"):
        pool.append(int(i))
        if expected[pool].sum() >= 5:
            groups.append(pool)
            pool = []
    if pool:
        if not groups:
            return 1.0
        groups[-1] += pool
    if len(groups) < 2:
        return 1.0
    table = np.array([[base[g].sum() for g in groups], [cur[g].sum() for g in groups]])
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return float(special.chdtrc(len(groups) - 1, statistic))


def distance(method: str, base_counts: List[float], counts: List[float]) -> float:
    """PSI, binned Kolmogorov-Smirnov or L-infinity distance between two count vectors."""
    p = np.asarray(base_counts, dtype=float)
    q = np.asarray(counts, dtype=float)
    p, q = p / max(p.sum(), 1), q / max(q.sum(), 1)
    if method == "psi":
        p, q = np.maximum(p, _FLOOR), np.maximum(q, _FLOOR)
        return float(np.sum((q - p) * np.log(q / p)))
    if method == "ks":
        return float(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))
    return float(np.max(np.abs(p - q)))


def exceed_p_value(x: int, n: int, limit: float) -> float:
    """One-sided exact binomial p-value that the true rate behind x of n is above ``limit``."""
    if n == 0 or limit >= 1:
        return 1.0
    if limit <= 0:
        return 0.0 if x > 0 else 1.0
    return float(special.bdtrc(x - 1, n, limit)) if x > 0 else 1.0


def _rate_check(name: str, check: str, what: str, x: int, n: int, base_rate: float,
                tolerance: float, alpha: float) -> Optional[Violation]:
    """Fires when x/n exceeds ``base_rate + tolerance`` with confidence ``1 - alpha``."""
    if n == 0:
        return None
    rate, limit = x / n, base_rate + tolerance
    if rate <= limit:
        return None
    p = exceed_p_value(x, n, limit)
    if p >= alpha:
        return None
    return Violation(name, check, f"{what} is {rate:.1%} ({x} of {n}), baseline {base_rate:.1%}: "
                                  f"up {rate - base_rate:.1%}, above the threshold {tolerance:.1%} "
                                  f"({_p(p)})", {"rate": rate, "baseline_rate": base_rate})


# ----------------------------------------------------------------------------- the checks
def domain_split(col: pd.Series, kind: str, domain: List[str], k: Optional[int] = None
                 ) -> Tuple[Dict[str, int], int, Dict[str, int]]:
    """(in-domain counts, number of present values outside the domain, the commonest ``k`` of those
    values with their counts; all of them when ``k`` is None)."""
    present = col[~missing_mask(col)]
    cats = as_booleans(present)[0] if kind == "boolean" else as_categories(present)
    counts = cats.value_counts()
    allowed = set(domain)
    inside = {str(k): int(v) for k, v in counts.items() if str(k) in allowed}
    new = counts[~counts.index.isin(allowed)]
    new = new if k is None else new.head(k)
    return inside, int(counts.sum() - sum(inside.values())), {str(k): int(v) for k, v in new.items()}


class FrameEvidence:
    """What the checks need from a batch's rows beyond its statistics, read from one frame
    (automl/monitor/streamed.py gathers the same from each file of a batch and merges it)."""

    def __init__(self, df: pd.DataFrame):
        self.df = df

    def invalid_examples(self, name: str, kind: str, cons: Dict[str, Any]) -> str:
        return _invalid_examples(self.df[name], kind, cons)

    def domain_split(self, name: str, kind: str, domain: List[str]) -> Tuple[Dict[str, int], int, Dict[str, int]]:
        return domain_split(self.df[name], kind, domain)


def column_checks(cfg: Dict[str, Any], constraints: Dict[str, Any], features: Dict[str, Dict[str, Any]],
                  columns: List[str]) -> List[Violation]:
    """missing_column_check and extra_column_check: the batch's columns against the baseline's."""
    violations: List[Violation] = []
    if cfg["missing_column_check"]["enabled"]:
        for name in missing_columns(features, columns):
            violations.append(Violation(name, "missing_column_check",
                                        f"column '{name}' of the baseline is absent from the data"))
    if cfg["extra_column_check"]["enabled"]:
        known = set(features) | set(constraints.get("known_non_feature_columns") or [])
        if constraints.get("target"):
            known.add(str(constraints["target"]))
        for name in columns:
            if name not in known:
                violations.append(Violation(name, "extra_column_check",
                                            f"column '{name}' is not in the baseline: the model never saw it"))
    return violations


def categorical_values_check(values: pd.Series, name: str, domain: List[Any], check: Dict[str, Any],
                             alpha: float) -> Optional[Violation]:
    """The share of values outside the baseline's domain, tested against its threshold."""
    return _unknown_values_check(domain_split(values, "categorical", domain), name, check, alpha)


def _unknown_values_check(split: Tuple[Dict[str, int], int, Dict[str, int]], name: str, check: Dict[str, Any],
                          alpha: float) -> Optional[Violation]:
    inside, unknown, new = split
    tol = float(check["max_unknown_fraction"])
    n_present = unknown + sum(inside.values())
    if not (n_present and unknown / n_present > tol and exceed_p_value(unknown, n_present, tol) < alpha):
        return None
    top = list(new.items())
    shown = ", ".join(f"'{k}' ({v})" for k, v in top[:5])
    return Violation(name, "categorical_values_check",
                     f"{unknown / n_present:.1%} of values ({unknown} of {n_present}) are outside the baseline "
                     f"domain, above the threshold {tol:.1%}; new values: {shown}",
                     {"new_values": dict(top[:20])})


def attribution_drift_check(attributions: Dict[str, Any], check: Dict[str, Any]) -> Optional[Violation]:
    """The live batch's ranking of the features by mean |SHAP| against the baseline's: NDCG at k
    below the threshold fires (``attributions``: ``baseline`` and ``live``, feature -> mean |SHAP|)."""
    base, live = attributions["baseline"], attributions["live"]
    k, threshold = int(check["k"]), float(check["threshold"])
    score = ndcg_at_k(base, live, k)
    attributions.update({"ndcg": score, "k": k, "threshold": threshold})
    if score >= threshold:
        return None
    shown = lambda d: ", ".join(f"{f} {float(d[f]):.3g}" for f in ranking(d)[:3])  # noqa: E731
    return Violation(ATTRIBUTIONS, "attribution_drift_check",
                     f"NDCG@{k} of the features' mean |SHAP| ranking is {score:.3f}, below the threshold "
                     f"{threshold:g} ({attributions.get('n_rows', '?')} rows explained): live top {shown(live)}; "
                     f"baseline top {shown(base)}", dict(attributions))


def check_batch(df: pd.DataFrame, statistics: Dict[str, Any], constraints: Dict[str, Any],
                source: str = "", attributions: Optional[Dict[str, Any]] = None) -> CheckResult:
    """Run every enabled check of ``constraints`` on ``df``. ``attributions`` (baseline and live mean
    |SHAP| per feature, see automl/monitor/attribution.py) feed attribution_drift_check."""
    monitoring_config(constraints)  # a bad edit fails before the statistics are computed
    dup = df.columns[df.columns.duplicated()].tolist()
    if dup:
        raise DataError(f"data: duplicate column name(s) {', '.join(map(str, dup))}; rename them so each is unique")
    types = {name: c["type"] for name, c in (constraints.get("features") or {}).items()}
    batch_stats = dataset_statistics(df, types, reference=statistics, source=source)
    return check_statistics(batch_stats, [str(c) for c in df.columns], FrameEvidence(df), statistics, constraints,
                            attributions)


def check_statistics(batch_stats: Dict[str, Any], columns: List[str], evidence: Any, statistics: Dict[str, Any],
                     constraints: Dict[str, Any], attributions: Optional[Dict[str, Any]] = None) -> CheckResult:
    """The checks from a batch's statistics (``dataset_statistics``' shape), its ``columns`` and
    ``evidence`` of its rows (``FrameEvidence``, or the streamed path's merged counts): the example
    values of a broken type and the counts inside and outside a categorical domain."""
    cfg = monitoring_config(constraints)
    features: Dict[str, Dict[str, Any]] = constraints.get("features") or {}
    # Bonferroni: significance_level bounds the chance that a fair batch raises a given check anywhere.
    alpha = float(cfg["significance_level"]) / max(1, sum(1 for f in features if f in columns))
    base_stats: Dict[str, Any] = statistics.get("features") or {}
    violations = column_checks(cfg, constraints, features, columns)
    distances: Dict[str, Dict[str, Any]] = {}
    for name, cons in features.items():
        if name in columns:
            violations += _feature_checks(name, cons, batch_stats["features"][name], base_stats.get(name) or {},
                                          evidence, cfg, alpha, distances)
    if attributions is not None and cfg["attribution_drift_check"]["enabled"]:
        v = attribution_drift_check(attributions, cfg["attribution_drift_check"])
        violations += [v] if v else []
        batch_stats["feature_attributions"] = {k: attributions[k] for k in ("ndcg", "k", "threshold", "live")}
    order = {c: i for i, c in enumerate(CHECKS)}
    names: Dict[str, int] = {}
    for n in list(features) + columns:
        names.setdefault(n, len(names))
    violations.sort(key=lambda v: (names.get(v.feature_name, 0), order[v.constraint_check_type]))
    return CheckResult(violations, batch_stats, int(batch_stats["dataset"]["n_rows"]), distances)


def _feature_checks(name: str, cons: Dict[str, Any], st: Dict[str, Any], base: Dict[str, Any], evidence: Any,
                    cfg: Dict[str, Any], alpha: float, distances: Dict[str, Dict[str, Any]]) -> List[Violation]:
    """completeness, data type, categorical values and drift of one feature (``distances`` filled)."""
    kind = cons["type"]
    violations: List[Violation] = []
    if cfg["completeness_check"]["enabled"]:
        v = _rate_check(name, "completeness_check", "missing rate", st["missing"], st["count"],
                        1 - float(cons.get("completeness", 1.0)),
                        float(cfg["completeness_check"]["max_missing_increase"]), alpha)
        violations += [v] if v else []
    invalid = st["invalid"] + (st.get("negative", 0) if cons.get("is_non_negative") else 0)
    if cfg["data_type_check"]["enabled"]:
        what = (f"share of values that are not {'non-negative ' if cons.get('is_non_negative') else ''}"
                f"{'numbers' if kind == 'numeric' else kind + ' values'}")
        type_broken = _rate_check(name, "data_type_check", what, invalid, st["present"],
                                  float(cons.get("invalid_fraction", 0.0)),
                                  float(cfg["data_type_check"]["max_invalid_increase"]), alpha)
        if type_broken is not None:
            type_broken.description += f"; e.g. {evidence.invalid_examples(name, kind, cons)}"
            return violations + [type_broken]
    domain = cons.get("domain")
    if kind == "categorical" and domain is not None and cfg["categorical_values_check"]["enabled"]:
        v = _unknown_values_check(evidence.domain_split(name, kind, domain), name, cfg["categorical_values_check"],
                                  alpha)
        violations += [v] if v else []
    if cfg["baseline_drift_check"]["enabled"]:
        d = _drift(name, kind, cons, base, st, evidence, cfg["baseline_drift_check"], alpha)
        if d is not None:
            distances[name] = d
            if d["violated"]:
                violations.append(Violation(name, "baseline_drift_check", d["description"], d))
    return violations


def invalid_values(col: pd.Series, kind: str, cons: Dict[str, Any]) -> pd.Series:
    """The present values of ``col`` that do not fit the baseline type, counted, commonest first."""
    present = col[~missing_mask(col)]
    if kind == "numeric":
        nums = pd.to_numeric(present.astype(str).str.strip(), errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(nums)
        if cons.get("is_non_negative"):
            bad |= np.nan_to_num(nums, nan=0.0) < 0
        values = present[bad]
    elif kind == "boolean":
        low = as_categories(present).str.strip().str.lower()
        values = present[~low.isin(_BOOLEAN_TOKENS)]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = present[pd.to_datetime(present.astype(str), errors="coerce", format="mixed").isna()]
    return values.astype(str).value_counts()


def _invalid_examples(col: pd.Series, kind: str, cons: Dict[str, Any]) -> str:
    """The commonest values that do not fit the baseline type, quoted."""
    return quote_examples(list(invalid_values(col, kind, cons).index[:3]))


def quote_examples(values: List[str]) -> str:
    return ", ".join(repr(str(v)) for v in values)


def _p(p: float) -> str:
    return "p<1e-16" if p < 1e-16 else f"p={p:.2g}"


def _drift(name: str, kind: str, cons: Dict[str, Any], base: Dict[str, Any], st: Dict[str, Any],
           evidence: Any, cfg: Dict[str, Any], alpha: float) -> Optional[Dict[str, Any]]:
    """Distance between the baseline and batch distributions of one feature (None: not comparable)."""
    if kind == "numeric":
        b_hist = (base.get("numeric") or {}).get("histogram")
        c_hist = (st.get("numeric") or {}).get("histogram")
        if not b_hist or not c_hist or sum(c_hist["counts"]) == 0:
            return None
        labels = bin_labels(b_hist["edges"])
        b_counts, c_counts = b_hist["counts"], c_hist["counts"]
        method, threshold = cfg["numeric_method"], float(cfg["numeric_threshold"])
    elif kind in ("categorical", "boolean"):
        freq = (base.get("categorical") or {}).get("frequencies") or {}
        domain = check_domain(cons, base)
        if not freq:
            return None
        inside = evidence.domain_split(name, kind, domain)[0]
        labels = [str(k) for k in freq]
        b_counts = [freq[k] for k in labels]
        c_counts = [inside.get(k, 0) for k in labels]
        if sum(c_counts) == 0:
            return None
        method, threshold = cfg["categorical_method"], float(cfg["categorical_threshold"])
    else:
        return None  # text and dates are not compared for drift
    dist = distance(method, b_counts, c_counts)
    p = chi2_p_value(b_counts, c_counts) if dist > threshold else 1.0
    violated = dist > threshold and p < alpha
    return {"method": method, "distance": dist, "threshold": threshold, "p_value": p, "violated": violated,
            "labels": labels, "baseline_counts": list(b_counts), "current_counts": list(c_counts),
            "description": f"{method.upper()} distance {dist:.3f} between the baseline and current "
                           f"distributions is above the threshold {threshold:g} (chi-square {_p(p)}, "
                           f"{int(sum(c_counts))} values)"}


def check_domain(cons: Dict[str, Any], base: Dict[str, Any]) -> List[str]:
    """The values a categorical or boolean feature is checked against: its domain, else the baseline's categories."""
    return list(cons.get("domain") or ((base.get("categorical") or {}).get("frequencies") or {}))


def bin_labels(edges: List[float]) -> List[str]:
    fmt = lambda v: f"{v:.4g}"  # noqa: E731
    inner = edges[1:-1]
    if not inner:
        return [f"all ({fmt(edges[0])} to {fmt(edges[-1])})"]
    labels = [f"≤ {fmt(inner[0])}"]
    labels += [f"{fmt(a)} – {fmt(b)}" for a, b in zip(inner[:-1], inner[1:])]
    labels.append(f"> {fmt(inner[-1])}")
    return labels
