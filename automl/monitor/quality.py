"""Model-quality monitoring: the run's metrics on captured predictions joined with later labels,
against constraints written at fit time from the final model's out-of-fold metrics.

``baseline/constraints.json`` gets a ``model_quality`` list at fit time, one entry per metric of
the problem type (binary precision and recall excepted: ``UNCONSTRAINED``), e.g.
``{"metric": "auc", "baseline": 0.91, "threshold": 0.86, "comparison": "greater_than"}``:
higher-is-better metrics get ``baseline - monitor.quality_margin`` (default 0.05), lower-is-better
ones (logloss, mse, rmse, mae) ``baseline * (1 + monitor.quality_relative_margin)`` (default 0.2).
Edit the list like the data constraints (remove an entry to stop checking it).

`automl monitor ... ground_truth=URL` computes each metric on the joined rows with a seeded
percentile-bootstrap interval (``n_bootstrap``, 1000 resamples; ``confidence``, 0.95, split over
the constrained metrics: 99% each for five), and the best constant prediction's value on the same
rows (the majority class with the rows' class shares as probabilities; the mean for regression).
``model_quality_check`` fires only when the whole interval lies on the wrong side of the
threshold (its upper bound below it for higher-is-better metrics), so a fair batch alarms rarely.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from automl import artifacts as art
from automl.errors import ConfigError
from automl.metrics import METRICS
from automl.monitor.bootstrap import bootstrap_samples, metric_samples
from automl.monitor.checks import Violation, monitoring_config
from automl.monitor.groundtruth import Joined, as_text, join_ground_truth
from automl.rundir.layout import CONSTRAINTS_FILE

log = logging.getLogger(__name__)

QUALITY = "model quality"  # feature_name prefix of a model_quality_check violation
CHECK = "model_quality_check"
COMPARISONS = ("greater_than", "less_than")
SEED = 0  # the bootstrap's seed: the same batch always gets the same interval
# Binary precision and recall trade against each other when the decision threshold of the refit
# model sits a little off the out-of-fold one: one of them drops while quality does not (f1 and
# balanced accuracy, which are constrained, see both). They are reported; add an entry to
# constraints.json's model_quality list to constrain them too.
UNCONSTRAINED = ("precision", "recall")


# ----------------------------------------------------------------------------- constraints (fit time)
def quality_constraints(problem_type: str, oof_metrics: Dict[str, Any], margin: float = 0.05,
                        relative_margin: float = 0.2) -> List[Dict[str, Any]]:
    """One constraint per metric of the problem type that has a finite out-of-fold value, except
    binary precision and recall (reported, not constrained: see ``UNCONSTRAINED``)."""
    out = []
    for name, metric in METRICS[problem_type].items():
        if problem_type == "binary" and name in UNCONSTRAINED:
            continue
        try:
            value = float(oof_metrics.get(name))
        except (TypeError, ValueError):
            continue
        if not np.isfinite(value):
            continue
        if metric.greater_is_better:
            threshold, comparison = value - margin, "greater_than"
        else:
            threshold, comparison = value * (1 + relative_margin), "less_than"
        out.append({"metric": name, "baseline": round(value, 6), "threshold": round(threshold, 6),
                    "comparison": comparison})
    return out


def chosen_metrics(leaderboard: Any, trial_id: Any) -> Dict[str, Any]:
    """The out-of-fold metrics of one leaderboard row (the run's chosen model: a trial or the ensemble)."""
    row = leaderboard[leaderboard["trial_id"].astype(str) == str(trial_id)]
    return row.iloc[0].to_dict() if len(row) else {}


def write_quality_constraints(out: str, so: Dict[str, Any], problem_type: str, leaderboard: Any, trial_id: Any,
                              margin: float = 0.05, relative_margin: float = 0.2) -> bool:
    """Add the ``model_quality`` list (from the chosen model's out-of-fold metrics in ``leaderboard``)
    to the run's ``baseline/constraints.json`` at fit time; a failure logs a warning and never fails
    the fit (`automl monitor` then builds the list from leaderboard.csv)."""
    try:
        url = art.join(out, CONSTRAINTS_FILE)
        cons = art.read_json(url, so)
        oof = chosen_metrics(leaderboard, trial_id)
        cons["model_quality"] = quality_constraints(problem_type, oof, float(margin), float(relative_margin))
        art.write_json(url, cons, so)
    except Exception as exc:  # monitoring must never break training
        log.warning("could not write the model-quality constraints (%s: %s); `automl monitor` builds them "
                    "from leaderboard.csv", type(exc).__name__, exc)
        return False
    return True


def read_quality_constraints(cons: Dict[str, Any], problem_type: str) -> List[Dict[str, Any]]:
    """The ``model_quality`` list of constraints.json, checked (an edit that breaks it is a ConfigError)."""
    entries = cons.get("model_quality")
    if not isinstance(entries, list):
        raise ConfigError("constraints.json: model_quality must be a list like [{\"metric\": \"auc\", "
                          "\"threshold\": 0.86, \"comparison\": \"greater_than\"}]")
    valid = METRICS[problem_type]
    for e in entries:
        name = e.get("metric") if isinstance(e, dict) else None
        if name not in valid:
            raise ConfigError(f"constraints.json: model_quality has metric {name!r}; a {problem_type} run "
                              f"has {', '.join(valid)}")
        if e.get("comparison") not in COMPARISONS or isinstance(e.get("threshold"), bool) \
                or not isinstance(e.get("threshold"), (int, float)):
            raise ConfigError(f"constraints.json: model_quality entry for {name} needs a number threshold and "
                              f"comparison {' or '.join(COMPARISONS)}; got {e.get('threshold')!r}, "
                              f"{e.get('comparison')!r}")
    return entries


def check_settings(cons: Dict[str, Any]) -> Dict[str, Any]:
    """``monitoring.model_quality_check`` of constraints.json, checked."""
    cfg = monitoring_config(cons)[CHECK]
    n, conf, min_rows = cfg["n_bootstrap"], cfg["confidence"], cfg["min_rows"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 100 or isinstance(min_rows, bool) \
            or not isinstance(min_rows, int) or min_rows < 1 or not isinstance(conf, (int, float)) \
            or not 0.5 <= conf < 1:
        raise ConfigError(f"constraints.json: monitoring.{CHECK} needs an integer n_bootstrap >= 100, an integer "
                          f"min_rows >= 1 and a confidence in [0.5, 1); got n_bootstrap={n!r}, min_rows={min_rows!r}, "
                          f"confidence={conf!r}")
    return cfg


# ----------------------------------------------------------------------------- the joined rows as arrays
@dataclass
class Rows:
    """Joined rows as the metrics take them: true and predicted class indices (or values), probabilities."""

    y: np.ndarray
    pred: np.ndarray
    proba: Optional[np.ndarray]
    n_unknown: int = 0  # labels that are not a class of the model (or not numbers): left out


def _class_rows(joined: Joined, classes: List[Any], pos: int) -> Rows:
    index = {as_text(c): i for i, c in enumerate(classes)}
    k = len(classes)
    y, pred, proba, unknown = [], [], [], 0
    for label, obj in zip(joined.labels, joined.predictions):
        yi, pi = index.get(as_text(label)), index.get(as_text(obj.get("predicted_label")))
        if yi is None or pi is None:
            unknown += 1
            continue
        y.append(yi)
        pred.append(pi)
        proba.append(_probabilities(obj, pi, index, k, pos))
    have = bool(proba) and all(p is not None for p in proba)
    return Rows(np.asarray(y, dtype=int), np.asarray(pred, dtype=int),
                np.asarray(proba, dtype=float) if have else None, unknown)


def _probabilities(obj: Dict[str, Any], pi: int, index: Dict[Optional[str], int], k: int,
                   pos: int) -> Optional[List[float]]:
    """A row's class probabilities from its response: ``probabilities`` (in ``labels`` order when
    given), or, for binary, ``probability`` of the predicted label; None when they cannot be known."""
    probs = obj.get("probabilities")
    if isinstance(probs, list) and len(probs) == k:
        order = [index.get(as_text(lab)) for lab in obj.get("labels") or []]
        if len(order) == k and None not in order:
            out = [0.0] * k
            for i, p in zip(order, probs):
                out[i] = float(p)
            return out
        return [float(p) for p in probs]
    p = obj.get("probability")
    if k == 2 and isinstance(p, (int, float)):
        p_pos = float(p) if pi == pos else 1.0 - float(p)
        return [1 - p_pos, p_pos] if pos == 1 else [p_pos, 1 - p_pos]
    return None


def _regression_rows(joined: Joined) -> Rows:
    y, pred, unknown = [], [], 0
    for label, obj in zip(joined.labels, joined.predictions):
        try:
            a, b = float(label), float(obj.get("predicted_label"))
        except (TypeError, ValueError):
            unknown += 1
            continue
        if not (np.isfinite(a) and np.isfinite(b)):
            unknown += 1
            continue
        y.append(a)
        pred.append(b)
    return Rows(np.asarray(y, dtype=float), np.asarray(pred, dtype=float), None, unknown)


def rows_of(joined: Joined, problem_type: str, classes: List[Any], pos: int) -> Rows:
    return _regression_rows(joined) if problem_type == "regression" else _class_rows(joined, classes, pos)


# ----------------------------------------------------------------------------- the check
@dataclass
class QualityResult:
    """Each constrained metric on the joined rows, with its interval and the best constant's value."""

    counts: Dict[str, int]
    metrics: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    violations: List[Violation] = field(default_factory=list)
    note: str = ""  # why there is no verdict (no joined rows, too few)
    confidence: float = 0.95  # of the whole check: no metric alarms on a fair batch with this probability
    n_bootstrap: int = 1000
    interval_level: float = 0.95  # of each metric's interval: confidence split over the constrained metrics

    def to_dict(self) -> Dict[str, Any]:
        return {"counts": self.counts, "confidence": self.confidence, "interval_level": self.interval_level,
                "n_bootstrap": self.n_bootstrap, "note": self.note or None, "metrics": self.metrics,
                "violations": [v.to_dict() for v in self.violations]}


def point_value(problem_type: str, name: str, rows: Rows, pos: int, n_classes: int) -> float:
    """The metric as automl.metrics computes it: labels from the captured predicted labels."""
    metric = METRICS[problem_type][name]
    if problem_type == "regression":
        return metric.fn(rows.y, rows.pred, pos)
    if metric.needs_proba:
        if rows.proba is None:
            return float("nan")
        return metric.fn(rows.y, rows.proba, pos)
    return metric.fn(rows.y, np.eye(n_classes)[rows.pred], pos)


def constant_rows(rows: Rows, problem_type: str, n_classes: int) -> Rows:
    """The best constant prediction on the same rows: the majority class with the rows' class shares
    as probabilities, or the mean for regression."""
    if problem_type == "regression":
        return Rows(rows.y, np.full(len(rows.y), rows.y.mean()), None)
    shares = np.bincount(rows.y, minlength=n_classes) / len(rows.y)
    return Rows(rows.y, np.full(len(rows.y), int(np.argmax(shares))), np.tile(shares, (len(rows.y), 1)))


def _constant_value(problem_type: str, name: str, const: Rows, pos: int, n_classes: int) -> float:
    """The best constant's value (the vectorised metric with every row once: automl.metrics' value)."""
    ones = np.ones((1, len(const.y)))
    with np.errstate(all="ignore"):
        return float(metric_samples(problem_type, name, ones, const.y, const.pred, const.proba, pos, n_classes)[0])


def _safe(fn, *args) -> float:
    try:
        value = float(fn(*args))
    except ValueError:  # e.g. AUC on one class
        return float("nan")
    return value if np.isfinite(value) else float("nan")


def evaluate(rows: Rows, constraints: List[Dict[str, Any]], problem_type: str, pos: int, n_classes: int,
             confidence: float = 0.95, n_bootstrap: int = 1000, seed: int = SEED) -> Dict[str, Dict[str, Any]]:
    """Every metric of the problem type: value, interval, best constant's value and, where it has a
    constraint, its threshold and verdict."""
    const = constant_rows(rows, problem_type, n_classes)
    tail = (1 - confidence) / 2 * 100
    by_metric = {c["metric"]: c for c in constraints}
    values = {name: _safe(point_value, problem_type, name, rows, pos, n_classes) for name in METRICS[problem_type]}
    samples = bootstrap_samples(problem_type, [n for n, v in values.items() if np.isfinite(v)], n_bootstrap,
                                np.random.default_rng(seed), rows.y, rows.pred, rows.proba, pos, n_classes)
    out: Dict[str, Dict[str, Any]] = {}
    for name, value in values.items():
        c = by_metric.get(name, {})
        entry = {"value": None, "lower": None, "upper": None, "threshold": _none(c.get("threshold")),
                 "comparison": c.get("comparison"), "baseline": c.get("baseline"),
                 "constant": _none(_constant_value(problem_type, name, const, pos, n_classes)),
                 "violated": False}
        if name in samples:
            with np.errstate(all="ignore"):
                finite = np.isfinite(samples[name]).any()
                lo, hi = np.nanpercentile(samples[name], [tail, 100 - tail]) if finite else (np.nan, np.nan)
            entry.update(value=value, lower=_none(lo), upper=_none(hi))
            if entry["lower"] is not None and entry["threshold"] is not None:
                entry["violated"] = bool(hi < entry["threshold"] if c["comparison"] == "greater_than"
                                         else lo > entry["threshold"])
        out[name] = entry
    return out


def _none(v: float) -> Optional[float]:
    return float(v) if v is not None and np.isfinite(v) else None


def check_quality(joined: Joined, cons: Dict[str, Any], problem_type: str, classes: List[Any],
                  pos: int, constraints: Optional[List[Dict[str, Any]]] = None) -> QualityResult:
    """``model_quality_check`` of one batch of joined rows (constraints: ``cons["model_quality"]``)."""
    cfg = check_settings(cons)
    constraints = read_quality_constraints(cons, problem_type) if constraints is None else constraints
    rows = rows_of(joined, problem_type, classes, pos)
    counts = {**joined.counts(), "labels_not_usable": rows.n_unknown, "rows_scored": int(len(rows.y))}
    result = QualityResult(counts, confidence=float(cfg["confidence"]), n_bootstrap=int(cfg["n_bootstrap"]))
    if not cfg["enabled"]:
        result.note = f"{CHECK} is disabled in constraints.json"
        return result
    if len(rows.y) < int(cfg["min_rows"]):
        result.note = (f"{len(rows.y)} labelled row(s) joined, fewer than min_rows={cfg['min_rows']}: "
                       f"no model-quality verdict")
        return result
    # Bonferroni, as the data checks split significance_level over the features: the check alarms on
    # a fair batch with probability under 1 - confidence however many metrics it constrains.
    result.interval_level = 1 - (1 - result.confidence) / max(1, len(constraints))
    result.metrics = evaluate(rows, constraints, problem_type, pos, max(len(classes), 2),
                              result.interval_level, result.n_bootstrap)
    for name, m in result.metrics.items():
        if m["violated"]:
            result.violations.append(Violation(f"{QUALITY} ({name})", CHECK, describe(name, m, result),
                                               details={"report_section": False}))  # the report has its own
    return result


def describe(name: str, m: Dict[str, Any], result: QualityResult) -> str:
    side, bound = ("below", m["upper"]) if m["comparison"] == "greater_than" else ("above", m["lower"])
    return (f"{name} {m['value']:.4g} on {result.counts['rows_scored']} labelled rows, its "
            f"{result.interval_level:.1%} interval [{m['lower']:.4g}, {m['upper']:.4g}] lies wholly {side} the "
            f"threshold {m['threshold']:.4g} (out of fold {_fmt(m['baseline'])}; best constant "
            f"{_fmt(m['constant'])}); the bound {bound:.4g} decides")


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{float(v):.4g}"


def summary_line(result: QualityResult, metric: str) -> str:
    """One line for the terminal: the join counts and the run's metric with its interval."""
    c = result.counts
    head = f"model quality: {c['joined']} of {c['captured_predictions']} prediction(s) joined with labels"
    m = result.metrics.get(metric)
    if result.note or m is None or m["value"] is None:
        return f"{head}; {result.note or f'{metric} not computed'}"
    return (f"{head}; {metric} {m['value']:.4g} [{_fmt(m['lower'])}, {_fmt(m['upper'])}] "
            f"(threshold {_fmt(m['threshold'])}, best constant {_fmt(m['constant'])})")


# ----------------------------------------------------------------------------- a run folder's check
def _from_leaderboard(run: Any) -> List[Dict[str, Any]]:
    """Constraints for a run whose constraints.json has none (an earlier release's, or an edited copy
    without the list): from its chosen model's leaderboard row, with the default margins."""
    log.info("constraints.json has no model_quality list; using the chosen model's out-of-fold metrics "
             "from leaderboard.csv with the default margins")
    return quality_constraints(run.summary.problem_type, chosen_metrics(run.leaderboard, run.best_trial_id))


def run_quality_check(files: List[str], ground_truth: str, run_dir: str, cons: Dict[str, Any],
                      so: Optional[Dict[str, Any]] = None, missing_ok: bool = False) -> QualityResult:
    """Join the capture files ``files`` with ``ground_truth`` and check the run's model quality
    (``missing_ok``: no ground-truth files yet is no labels yet, as in watch mode)."""
    from automl.rundir.run import Run

    check_settings(cons)  # a bad edit fails before any file is read
    run = Run(run_dir, so or {})
    summary = run.summary
    pt = summary.problem_type
    constraints = (read_quality_constraints(cons, pt) if "model_quality" in cons else _from_leaderboard(run))
    pos = summary.problem_info().pos_index if pt == "binary" else 1
    joined = join_ground_truth(files, ground_truth, so, missing_ok)
    if joined.n_joined == 0:
        log.warning("ground_truth: none of its %d label(s) matches an inference id of the %d captured "
                    "prediction(s); no model-quality verdict", joined.n_labels, joined.n_captured)
    others = sorted({t for t in joined.trial_ids if t and t != str(run.best_trial_id)})
    if others:
        log.warning("ground_truth: predictions of trial(s) %s are checked against the constraints of the run's "
                    "model (trial %s)", ", ".join(others), run.best_trial_id)
    return check_quality(joined, cons, pt, summary.classes, pos, constraints)
