"""What the candidate-definitions notebook calls: read a run's candidates, describe, train one.

Everything here reads the run folder's own files (``summary.json``, ``config.yaml``,
``candidates/*.yaml``, ``data/train.parquet``), so the notebook runs anywhere the folder is.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Optional

import pandas as pd
import yaml

from automl.candidates.algorithms import get_algorithm
from automl.candidates.from_dir import read_candidate_files
from automl.candidates.generate import Candidate, explain_processing
from automl.candidates.space import applicable, init_point, load_space, normalise_space
from automl.rundir.layout import CONFIG_FILE, SUMMARY_FILE, TRAIN_DATA_FILE


def read_run(folder: str = ".") -> tuple[Dict[str, Any], Dict[str, Any], pd.DataFrame]:
    """``(summary, config, training rows)`` of a run folder."""
    with open(f"{folder}/{SUMMARY_FILE}") as fh:
        summary = json.load(fh)
    with open(f"{folder}/{CONFIG_FILE}") as fh:
        config = yaml.safe_load(fh)
    return summary, config, pd.read_parquet(f"{folder}/{TRAIN_DATA_FILE}")


def load_candidates(folder: str, feature_types: Dict[str, str]) -> Dict[str, Candidate]:
    """The candidates in ``folder`` (``candidates/``), with the reasons for their processing."""
    out = {}
    for name, spec in read_candidate_files(folder).items():
        algo = get_algorithm(spec["algorithm"])
        space = normalise_space(spec["space"], name) if spec.get("space") else load_space(
            spec.get("search_space") or spec["algorithm"])
        cand = Candidate(name, spec["algorithm"], dict(spec.get("processing") or {}), space,
                         spec.get("description") or algo.description)
        cand.reasons = explain_processing(cand.processing, feature_types, algo.needs_scaling)
        out[name] = cand
    return out


def candidates_overview(cands: Dict[str, Candidate]) -> pd.DataFrame:
    """One row per candidate: algorithm, description, number of searched parameters."""
    rows = [{"candidate": c.name, "algorithm": c.algorithm, "description": c.description,
             "searched parameters": len(c.space["params"]), "warm-start points": len(c.space["portfolio"])}
            for c in cands.values()]
    return pd.DataFrame(rows).set_index("candidate")


def processing_steps(cand: Candidate) -> pd.DataFrame:
    """The candidate's processing recipe, setting by setting."""
    return pd.DataFrame({"setting": list(cand.processing), "value": [str(v) for v in cand.processing.values()]}
                        ).set_index("setting")


def search_space_table(cand: Candidate, problem_type: str) -> pd.DataFrame:
    """Searched parameters (range, scale, start value) and fixed ones."""
    rows = []
    for name, spec in cand.space["params"].items():
        if not applicable(spec, problem_type):
            continue
        rng = (", ".join(map(str, spec["choices"])) if spec["type"] == "categorical"
               else f"[{spec['low']}, {spec['high']}]")
        rows.append({"parameter": name, "type": spec["type"], "range": rng,
                     "scale": "log" if spec.get("log") else ("-" if spec["type"] == "categorical" else "linear"),
                     "start": spec.get("init", "")})
    for name, value in cand.space.get("fixed", {}).items():
        rows.append({"parameter": name, "type": "fixed", "range": str(value), "scale": "-", "start": value})
    return pd.DataFrame(rows, columns=["parameter", "type", "range", "scale", "start"]).set_index("parameter")


def search_settings(config: Dict[str, Any], summary: Dict[str, Any]) -> pd.DataFrame:
    """How the search runs and how the final model is chosen, from the run's config."""
    s, b, v = config.get("search", {}), config.get("budget", {}), config.get("validation", {})
    n = int(summary.get("n_rows", 0))
    scheme = (f"{v.get('n_folds')}-fold cross-validation (stratified for classification)"
              if n <= int(v.get("cv_max_rows", 0)) else
              f"one holdout split of {100 * float(v.get('holdout_fraction', 0.2)):.0f}% (more than "
              f"{v.get('cv_max_rows')} rows)")
    direction = "highest" if summary.get("greater_is_better") else "lowest"
    choose = (f"the trial with the {direction} validation {summary.get('metric')}; "
              + ("then greedy ensemble selection over the trials' out-of-fold predictions, kept only if it "
                 "beats that trial on validation; " if s.get("ensemble", False) else "")
              + "the choice is refit on all training rows")
    rows = [
        ("searcher", f"{s.get('searcher')} (TPE after {s.get('n_startup_trials')} random trials)"
         if s.get("searcher") == "optuna" else str(s.get("searcher"))),
        ("candidates searched together", "yes: the candidate is itself a searched parameter"),
        ("warm start", "each space's portfolio runs first" if s.get("warm_start") else "off"),
        ("budget", f"{b.get('max_trials')} trials or {b.get('time_limit_s')} s, whichever comes first"),
        ("validation", scheme),
        ("metric", f"{summary.get('metric')} ({direction} is best)"),
        ("how the final model is chosen", choose),
        ("seed", str(config.get("seed"))),
    ]
    return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")


def train_candidate(cand: Candidate, df: pd.DataFrame, summary: Dict[str, Any], config: Dict[str, Any],
                    params: Optional[Dict[str, Any]] = None, max_rows: Optional[int] = 2000) -> pd.Series:
    """Cross-validate one candidate exactly as a search trial does (``automl.search.trial.evaluate``).

    ``params`` default to the search space's start values; ``max_rows`` subsamples the rows so
    the notebook runs in seconds (``None``: all rows).
    """
    from automl.problem import encode_target, resolve_problem
    from automl.search.trial import TrialContext, evaluate, make_folds

    target, problem_type = summary["target"], summary["problem_type"]
    seed = int(config.get("seed", 0))
    if max_rows and len(df) > max_rows:
        df = df.sample(max_rows, random_state=seed).reset_index(drop=True)
    info = resolve_problem(df[target], problem_type, summary["metric"], target)
    y = encode_target(df[target], info)
    v = config.get("validation", {})
    folds = make_folds(y, problem_type, int(v.get("n_folds", 5)), int(v.get("cv_max_rows", 50_000)),
                       float(v.get("holdout_fraction", 0.2)), seed)
    features = summary["features"]
    types = {c: summary["column_types"][c] for c in features}
    ctx = TrialContext(X=df[features], y=y, folds=folds, column_types=types, candidates={cand.name: cand},
                       problem_type=problem_type, metric=info.metric, n_classes=len(info.classes),
                       pos_index=info.pos_index, seed=seed, trial_time_limit_s=float("inf"))
    params = init_point(cand.space, problem_type) if params is None else params
    result = evaluate({"candidate": cand.name, **{f"{cand.name}:{k}": val for k, val in params.items()}}, ctx)
    if result["status"] != "completed":
        raise RuntimeError(f"candidate {cand.name} failed: {result.get('error')}")
    keep = ["status", "objective"] + [k for k in result if k.startswith("metric_")] + [
        "fit_s", "predict_ms_per_row", "model_size_bytes"]
    out = pd.Series({k: result.get(k) for k in keep}, name=cand.name, dtype=object)
    out.index = [k.replace("metric_", "") for k in out.index]
    return out


def cheapest(cands: Dict[str, Candidate]) -> Candidate:
    """The candidate whose algorithm is cheapest to train (the notebook trains it)."""
    return min(cands.values(), key=lambda c: (get_algorithm(c.algorithm).cost, c.name))


__all__ = ["candidates_overview", "cheapest", "load_candidates", "processing_steps", "read_run",
           "search_settings", "search_space_table", "train_candidate"]
