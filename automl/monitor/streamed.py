"""A batch's data-check statistics streamed over its files (a first step towards ``automl monitor``
with a Ray backend, docs/distributed.md): each file is read and summarised in its own Ray task
with the monitor's own reader and value rules (``sources.read_data_file``, ``baseline``), and
only the per-file partial aggregates reach the caller, which merges them. The result has the
shape of ``baseline.dataset_statistics`` for numeric, categorical and boolean columns (counts,
missing, invalid, negative, mean, std, min, max, the histogram on the baseline's bins, category
frequencies), equal to what the pandas path computes on the same rows. Quantiles are not
streamed (empty here), nor are datetime and text columns (their statistics are left out).

``streamed_batch`` is what ``automl monitor ... predict.backend=ray`` checks: the same per-file
aggregates, plus what the checks need from rows, gathered per file and merged (the commonest
values of a broken type and the values outside a categorical domain, the first ``EXAMPLES`` per
file; exact counts inside and outside each domain), plus a bounded uniform sample of rows
(``SAMPLE_ROWS``: the rows with the smallest random keys across files). Drift needs no sample:
the checks compare binned counts on the baseline's bins and category counts. What comes from the
sample (numeric quantiles, datetime min/max, text length and distinct count; attributions when
enabled) is named in the statistics' ``sampling`` note; every count the checks test is exact."""
from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from automl.errors import AutoMLError, DataError
from automl.monitor.baseline import (FORMAT_VERSION, MAX_CATEGORIES, QUANTILES, as_booleans, as_categories,
                                     as_numbers, bin_counts, column_statistics, missing_mask)
from automl.monitor.checks import check_domain, domain_split, invalid_values, quote_examples
from automl.monitor.sources import read_data_file

log = logging.getLogger(__name__)
STREAMED_KINDS = ("numeric", "categorical", "boolean")
SAMPLED_KINDS = ("datetime", "text")  # counts exact, the rest of their statistics from the sample
SAMPLE_ROWS = 10_000  # rows of the bounded uniform sample
EXAMPLES = 50  # per file: the commonest values of a broken type, and outside a domain, kept


def _edges(reference: Optional[Dict[str, Any]], col: str) -> Optional[List[float]]:
    hist = ((((reference or {}).get("features") or {}).get(col) or {}).get("numeric") or {}).get("histogram") or {}
    return list(hist["edges"]) if hist.get("edges") else None


def partial_statistics(url: str, column_types: Dict[str, str], reference: Optional[Dict[str, Any]],
                       storage_options: Optional[Dict[str, Any]] = None,
                       checks: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One file's mergeable aggregates: per column its counts, and numeric moments (n, mean, M2),
    min, max and bin counts, or category counts. With ``checks`` (``features``: the constraints,
    ``domains``, ``sample_rows``): also the checks' evidence and the file's share of the sample."""
    df = read_data_file(url, storage_options)
    if checks is not None:
        return _with_evidence(_partial(df, column_types, reference), df, url, checks)
    return _partial(df, column_types, reference)


def _partial(df: pd.DataFrame, column_types: Dict[str, str], reference: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"n_rows": int(len(df)), "columns": [str(c) for c in df.columns], "features": {}}
    for col, kind in column_types.items():
        if col not in df.columns or kind not in STREAMED_KINDS:
            continue
        s = df[col]
        missing = missing_mask(s)
        present = s[~missing]
        part: Dict[str, Any] = {"count": int(len(s)), "present": int(len(present)), "missing": int(missing.sum())}
        if kind == "numeric":
            values, part["invalid"] = as_numbers(present)
            edges = _edges(reference, col)
            part.update(negative=int((values < 0).sum()), n=int(len(values)),
                        mean=float(values.mean()) if len(values) else 0.0,
                        m2=float(((values - values.mean()) ** 2).sum()) if len(values) else 0.0,
                        min=float(values.min()) if len(values) else None,
                        max=float(values.max()) if len(values) else None,
                        bins=bin_counts(values, edges[1:-1]) if edges else None)
        else:
            cats, invalid = as_booleans(present) if kind == "boolean" else (as_categories(present), 0)
            part.update(invalid=invalid, values={str(k): int(v) for k, v in cats.value_counts().items()})
        out["features"][col] = part
    return out


def _merge_numeric(parts: List[Dict[str, Any]], edges: Optional[List[float]]) -> Dict[str, Any]:
    n, mean, m2 = 0, 0.0, 0.0
    for p in parts:  # Chan et al.'s pairwise update of the mean and the sum of squared deviations
        if p["n"]:
            total = n + p["n"]
            delta = p["mean"] - mean
            mean += delta * p["n"] / total
            m2 += p["m2"] + delta * delta * n * p["n"] / total
            n = total
    if n == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "quantiles": {}, "histogram": None}
    lo = min(p["min"] for p in parts if p["n"])
    hi = max(p["max"] for p in parts if p["n"])
    counts = np.sum([p["bins"] for p in parts if p["bins"] is not None], axis=0).astype(int).tolist() if edges else None
    return {"mean": mean, "std": float(np.sqrt(m2 / (n - 1))) if n > 1 else 0.0, "min": lo, "max": hi,
            "quantiles": {}, "histogram": {"edges": edges, "counts": counts} if edges else None}


def _merge_categories(parts: List[Dict[str, Any]]) -> Dict[str, Any]:
    counts: Dict[str, int] = {}
    for p in parts:
        for k, v in p["values"].items():
            counts[k] = counts.get(k, 0) + v
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])  # as value_counts orders them (ties aside)
    return {"distinct": len(ordered), "frequencies": dict(ordered[:MAX_CATEGORIES]),
            "other_count": int(sum(v for _, v in ordered[MAX_CATEGORIES:]))}


def merge_statistics(parts: List[Dict[str, Any]], column_types: Dict[str, str],
                     reference: Optional[Dict[str, Any]], source: str = "") -> Dict[str, Any]:
    """The files' aggregates as one batch's statistics (``dataset_statistics``' shape, no quantiles)."""
    features: Dict[str, Any] = {}
    for col, kind in column_types.items():
        mine = [p["features"][col] for p in parts if col in p["features"]]
        if not mine:
            continue
        st: Dict[str, Any] = {"inferred_type": kind,
                              **{k: int(sum(m[k] for m in mine)) for k in ("count", "present", "missing", "invalid")}}
        absent = sum(p["n_rows"] for p in parts if col not in p["features"])  # pandas' concat: missing there
        st["count"] += absent
        st["missing"] += absent
        if kind == "numeric":
            st["negative"] = int(sum(m["negative"] for m in mine))
            st["numeric"] = _merge_numeric(mine, _edges(reference, col))
        else:
            st["categorical"] = _merge_categories(mine)
        features[col] = st
    columns = list(dict.fromkeys(c for p in parts for c in p["columns"]))  # as pandas' concat unites them
    return {"version": FORMAT_VERSION, "dataset": {"n_rows": int(sum(p["n_rows"] for p in parts)),
                                                   "n_columns": len(columns), "source": source},
            "features": features, "streamed": {"files": len(parts), "not_streamed": ["quantiles", "datetime", "text"]}}


def streamed_statistics(files: List[str], column_types: Dict[str, str], reference: Optional[Dict[str, Any]],
                        storage_options: Optional[Dict[str, Any]] = None, source: str = "") -> Dict[str, Any]:
    """``files``' statistics, each file summarised in a Ray task (Ray started or joined by the caller)."""
    import ray

    task = ray.remote(num_cpus=1)(partial_statistics)
    refs = [task.remote(url, column_types, reference, storage_options) for url in files]
    parts = ray.get(refs)
    log.info("streamed the statistics of %d file(s) (%d rows) in Ray tasks", len(files),
             sum(p["n_rows"] for p in parts))
    return merge_statistics(parts, column_types, reference, source)


# ----------------------------------------------------------------------------- the checks' evidence
def _with_evidence(out: Dict[str, Any], df: pd.DataFrame, url: str, checks: Dict[str, Any]) -> Dict[str, Any]:
    """``out`` plus the checks' evidence of one file's rows and its rows of the sample."""
    dup = df.columns[df.columns.duplicated()].tolist()
    if dup:
        raise DataError(f"data: duplicate column name(s) {', '.join(map(str, dup))} in {url}; "
                        f"rename them so each is unique")
    invalid: Dict[str, Dict[str, int]] = {}
    domains: Dict[str, Tuple[Dict[str, int], int, Dict[str, int]]] = {}
    other: Dict[str, Dict[str, int]] = {}
    for col, cons in checks["features"].items():
        if col not in df.columns:
            continue
        kind = cons["type"]
        if kind in SAMPLED_KINDS:
            st = column_statistics(df[col], kind)
            other[col] = {k: st[k] for k in ("count", "present", "missing", "invalid")}
        part = out["features"].get(col) or other.get(col) or {}
        if part.get("invalid") or (cons.get("is_non_negative") and part.get("negative")):
            invalid[col] = {str(k): int(v) for k, v in invalid_values(df[col], kind, cons).head(EXAMPLES).items()}
        if col in checks["domains"]:
            domains[col] = domain_split(df[col], kind, checks["domains"][col], EXAMPLES)
    rng = np.random.default_rng(zlib.crc32(url.encode("utf-8")))
    keys = rng.random(len(df))
    keep = np.argsort(keys, kind="stable")[:checks["sample_rows"]]
    sample = df.iloc[np.sort(keep)].reset_index(drop=True).assign(_sample_key=keys[np.sort(keep)])
    out.update(invalid_values=invalid, domains=domains, other=other, sample=sample)
    return out


def _add(into: Dict[str, int], counts: Dict[str, int]) -> None:
    for k, v in counts.items():
        into[k] = into.get(k, 0) + v


def _commonest(counts: Dict[str, int]) -> Dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))  # stable: ties keep the files' order


class CountsEvidence:
    """The checks' evidence merged from the files (``checks.FrameEvidence``'s interface)."""

    def __init__(self) -> None:
        self.invalid: Dict[str, Dict[str, int]] = {}
        self.inside: Dict[str, Dict[str, int]] = {}
        self.unknown: Dict[str, int] = {}
        self.new: Dict[str, Dict[str, int]] = {}

    def add(self, part: Dict[str, Any]) -> None:
        for col, counts in part["invalid_values"].items():
            _add(self.invalid.setdefault(col, {}), counts)
        for col, (inside, unknown, new) in part["domains"].items():
            _add(self.inside.setdefault(col, {}), inside)
            self.unknown[col] = self.unknown.get(col, 0) + unknown
            _add(self.new.setdefault(col, {}), new)

    def invalid_examples(self, name: str, kind: str, cons: Dict[str, Any]) -> str:
        return quote_examples(list(_commonest(self.invalid.get(name, {})))[:3])

    def domain_split(self, name: str, kind: str, domain: List[str]) -> Tuple[Dict[str, int], int, Dict[str, int]]:
        return dict(self.inside.get(name, {})), self.unknown.get(name, 0), _commonest(self.new.get(name, {}))


@dataclass
class StreamedBatch:
    statistics: Dict[str, Any]  # dataset_statistics' shape, with a ``sampling`` note
    columns: List[str]  # the files' columns, united in order of appearance
    evidence: CountsEvidence
    sample: pd.DataFrame  # a uniform sample of at most SAMPLE_ROWS rows
    n_rows: int


def _sampled_statistics(stats: Dict[str, Any], sample: pd.DataFrame, other: Dict[str, Dict[str, int]],
                        types: Dict[str, str], reference: Dict[str, Any]) -> List[str]:
    """Fill ``stats`` with what comes from the sample; the sampled columns."""
    ref = reference.get("features") or {}
    sampled = []
    for col, kind in types.items():
        if col not in sample.columns:
            continue
        if kind in SAMPLED_KINDS and col in other:
            stats["features"][col] = {**column_statistics(sample[col], kind, ref.get(col)), **other[col]}
            sampled.append(col)
        elif kind == "numeric" and (stats["features"].get(col) or {}).get("numeric", {}).get("mean") is not None:
            values, _ = as_numbers(sample[col][~missing_mask(sample[col])])
            if len(values):
                stats["features"][col]["numeric"]["quantiles"] = {
                    f"p{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES))}
    return sampled


def streamed_batch(files: List[str], statistics: Dict[str, Any], constraints: Dict[str, Any],
                   storage_options: Optional[Dict[str, Any]] = None, source: str = "",
                   sample_rows: int = SAMPLE_ROWS) -> StreamedBatch:
    """A batch's statistics, the checks' evidence and a bounded sample, each file read and summarised
    in a Ray task (Ray started or joined by the caller); the driver holds one file's part at a time."""
    import ray

    features = constraints.get("features") or {}
    types = {name: c["type"] for name, c in features.items()}
    base = statistics.get("features") or {}
    domains = {n: check_domain(c, base.get(n) or {}) for n, c in features.items() if c["type"] in ("categorical",
                                                                                                   "boolean")}
    checks = {"features": features, "domains": domains, "sample_rows": sample_rows}
    task = ray.remote(num_cpus=1)(partial_statistics)
    refs = [task.remote(url, types, statistics, storage_options, checks) for url in files]
    index = {ref: i for i, ref in enumerate(refs)}
    parts: List[Dict[str, Any]] = [{} for _ in files]
    sample, pending = pd.DataFrame(), list(refs)
    while pending:  # one file's part at a time: its rows of the sample join the running sample
        done, pending = ray.wait(pending, num_returns=1)
        part = _get(done[0])
        mine = part.pop("sample")
        sample = pd.concat([sample, mine], ignore_index=True, sort=False) if len(sample) else mine
        sample = sample.nsmallest(sample_rows, "_sample_key") if len(sample) > sample_rows else sample
        parts[index[done[0]]] = part
    evidence, other = CountsEvidence(), {}
    for part in parts:  # in the files' order, as the pandas path concatenates them
        evidence.add(part)
        for col, counts in part["other"].items():
            _add(other.setdefault(col, {}), counts)
    for col, counts in other.items():  # rows of files without the column count as missing, as in pandas
        _add(counts, {k: sum(p["n_rows"] for p in parts if col not in p["other"]) for k in ("count", "missing")})
    stats = merge_statistics(parts, types, statistics, source)
    sample = sample.sort_values("_sample_key", kind="stable").drop(columns="_sample_key").reset_index(drop=True)
    sampled = _sampled_statistics(stats, sample, other, types, statistics)
    n_rows = stats["dataset"]["n_rows"]
    stats["sampling"] = {"rows": int(len(sample)), "of_rows": int(n_rows), "columns": sampled,
                         "from_sample": "numeric quantiles, datetime min/max, text mean_length and distinct, "
                                        "feature attributions (when enabled)",
                         "exact": "counts, missing, invalid, negative, mean, std, min, max, histograms, category "
                                  "frequencies, the examples of each violation (first 50 per file)"}
    columns = list(dict.fromkeys(c for p in parts for c in p["columns"]))
    log.info("streamed the checks' statistics of %d file(s) (%d rows) in Ray tasks; a sample of %d rows",
             len(files), n_rows, len(sample))
    return StreamedBatch(stats, columns, evidence, sample, n_rows)


def _get(ref: Any) -> Dict[str, Any]:
    """A task's result; automl's own errors (a bad file) come back as themselves, on one line."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, AutoMLError):
            raise cause from None
        raise
