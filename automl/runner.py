"""`automl fit`: the whole Autopilot flow, in one visible order.

read data -> infer column types and the problem -> generate candidates -> tune them all on Ray
-> refit the best -> score the test data -> write the run folder.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import train_test_split

from automl import artifacts as art
from automl.candidates.from_dir import apply_candidates_dir
from automl.candidates.generate import Candidate, generate_candidates
from automl.candidates.space import params_of
from automl.data.compact import compact_features
from automl.data.io import DEMO_DATASETS, read_table
from automl.data.types import FEATURE_TYPES, infer_column_types
from automl.errors import ConfigError, DataError, SearchError
from automl.finalize import ENSEMBLE_ID, finalize
from automl.manifest import write_manifest
from automl.metrics import METRICS, score_all
from automl.model import ModelBundle
from automl.notebooks import write_notebooks
from automl.problem import ProblemInfo, check_enough_rows, encode_target, resolve_problem
from automl.redact import install_log_filter, redacted_yaml, register_config_secrets
from automl.report import write_report
from automl.rundir.layout import TRAIN_DATA_FILE, candidate_file
from automl.rundir.lock import RunLock
from automl.rundir.modelfile import save_model
from automl.rundir.staging import Workspace, check_output_dir, clean_leftovers, remove_if_empty
from automl.search.rerank import RerankSpec, rank_score
from automl.search.resume import begin_run
from automl.search.sampling import cap_fold_rows
from automl.search.trial import TrialContext, fold_count, make_folds
from automl.selection import SelectSpec

log = logging.getLogger(__name__)


def default_output_dir() -> str:
    now = _dt.datetime.now()
    return str(Path("outputs") / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S-%f"))


def resolve_output_dir(cfg: DictConfig) -> str:
    out = cfg.output_dir or default_output_dir()
    if "://" not in out:
        out = str(Path(out).resolve())
    return out


def load_training_data(cfg: DictConfig, frame: Optional[pd.DataFrame] = None):
    """Read the table, drop configured columns and rows without a target (logging how many)."""
    d = cfg.data
    df = frame.copy() if frame is not None else read_table(d.path, dict(d.storage_options), d.sheet)
    if df.empty:
        raise DataError("data.path: the table has no rows; give data with at least a few rows")
    if d.target not in df.columns:
        shown = ", ".join(map(str, list(df.columns)[:30])) + (" …" if df.shape[1] > 30 else "")
        raise DataError(f"data.target '{d.target}' is not a column; the columns are: {shown}")
    dup = df.columns[df.columns.duplicated()].tolist()
    if dup:
        raise DataError(f"duplicate column name(s): {', '.join(map(str, dup))}; rename them so each is unique")
    drop = [c for c in d.drop if c in df.columns]
    if drop:
        df = df.drop(columns=drop)
    test = None
    if d.test_path:
        test = read_table(d.test_path, dict(d.storage_options), d.sheet, what="data.test_path")
        test = test.drop(columns=[c for c in drop if c in test.columns])
    return df, test


REPORT_RESERVE_S = 4.0  # what writing report.html, the summary and the manifest may take
FINAL_WRITE_S = 2.0  # the least kept for the model, summary and a plain report after the refit
SEARCH_TEARDOWN_S = 0.5  # trials stop themselves at the search deadline; Tune then winds down


def save_training_data(out: str, df: pd.DataFrame, so: Dict[str, Any]) -> None:
    """Keep the exact training rows in the run folder (to refit any trial, rebuild baselines)."""
    import io

    buf = io.BytesIO()
    try:
        df.to_parquet(buf, index=False)
    except Exception:  # mixed-type object columns: store them as strings, say so
        mixed = [c for c in df.columns if df[c].dtype == object]
        log.info("storing mixed-type column(s) %s as text in %s", ", ".join(map(str, mixed)), TRAIN_DATA_FILE)
        buf = io.BytesIO()
        df.astype({c: "string" for c in mixed}).to_parquet(buf, index=False)
    art.write_bytes(art.join(out, TRAIN_DATA_FILE), buf.getvalue(), so)


def use_local_search(cfg: DictConfig) -> bool:
    """Search in this process (no Ray) when asked, or for a small budget on this machine:
    Ray's start-up (3-9 s here) would eat most of it."""
    from automl.search.local import can_fork

    executor = cfg.search.executor
    if executor == "auto":
        return (not cfg.ray.address and float(cfg.budget.time_limit_s) < float(cfg.search.local_below_s)
                and can_fork(auto=True))
    if executor == "local" and not can_fork():
        raise ConfigError("search.executor=local needs the fork start method, which this platform lacks; "
                          "use search.executor=ray")
    return executor == "local"


def search_reserve_s(budget_s: float) -> float:
    """Kept back from the search: the final refit (ensemble members in parallel), the report and
    writing. 10% of the budget plus the report's share (all of REPORT_RESERVE_S from 30 s on;
    less for smaller budgets, where the report skips its slow parts) plus the search's teardown."""
    return 0.1 * budget_s + REPORT_RESERVE_S * min(1.0, budget_s / 30.0) + SEARCH_TEARDOWN_S


def _drop_bad_targets(df: pd.DataFrame, target: str, problem_type: str, where: str) -> pd.DataFrame:
    y = df[target]
    bad = y.isna()
    if problem_type == "regression":
        num = pd.to_numeric(y, errors="coerce")
        bad |= ~np.isfinite(num.fillna(np.nan).astype(float))
    n_bad = int(bad.sum())
    if n_bad:
        log.warning("dropped %d of %d %s rows whose target '%s' is missing or not finite",
                    n_bad, len(df), where, target)
    return df.loc[~bad].reset_index(drop=True)


def _leaderboard(rows: List[Dict[str, Any]], candidates: Dict[str, Candidate], info: ProblemInfo) -> pd.DataFrame:
    records = []
    for number, row in enumerate(rows):
        rec = {"trial_id": row["trial_id"], "trial_number": number, "candidate": row.get("candidate"),
               "algorithm": candidates[row["candidate"]].algorithm if row.get("candidate") in candidates else None,
               "status": row.get("status"), "objective": row.get("objective") if row.get("status") == "completed" else np.nan}
        for m in METRICS[info.problem_type]:
            rec[m] = row.get(f"metric_{m}", np.nan)
        for k in ("fit_s", "predict_ms_per_row", "latency_ms_single_row", "model_size_bytes"):
            rec[k] = row.get(k, np.nan)
        rec["error"] = row.get("error", "")
        rec["node_ip"], rec["node_id"] = row.get("node_ip", ""), row.get("node_id", "")  # where it ran
        # exact, typed params and tuned threshold: Run.trial_model refits any trial from them
        for k in ("params_json", "refit_params_json", "threshold"):
            rec[k] = row.get(k, "" if k != "threshold" else np.nan)
        if row.get("candidate"):
            rec.update(params_of(row.get("config") or {}, row["candidate"]))
        records.append(rec)
    lb = pd.DataFrame.from_records(records)
    if lb.empty:
        return pd.DataFrame(columns=["trial_id", "trial_number", "candidate", "algorithm", "status", "objective",
                                     *METRICS[info.problem_type], "error"])
    ok = lb["status"] == "completed"
    lb = pd.concat([lb[ok].sort_values("objective", ascending=not info.greater_is_better), lb[~ok]])
    return lb.reset_index(drop=True)


def _write_candidates(out: str, cands: List[Candidate], so: Dict[str, Any]) -> None:
    for c in cands:
        art.write_yaml(art.join(out, candidate_file(c.name)), c.to_dict(), so,
                       header=f"# Candidate {c.name} as this run used it. Edit and rerun with\n"
                              f"#   automl fit candidates_dir=<this folder> ...\n")


def fit(cfg: DictConfig, frame: Optional[pd.DataFrame] = None, started: Optional[float] = None):
    """Run the whole flow for a composed config; returns a :class:`automl.run.Run`.

    The run folder is written under its lock (rundir/lock.py). A folder that already holds files
    is only continued (``resume=true``) or replaced (``overwrite=true``: the new run is built next
    to it and swapped in when complete, rundir/staging.py); otherwise the fit stops untouched."""
    from automl.run import Run

    started = started or time.time()
    so = dict(cfg.data.storage_options)
    out = resolve_output_dir(cfg)
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = out
    OmegaConf.set_struct(cfg, True)
    register_config_secrets(cfg)  # secret option values and URL passwords are masked in logs and errors
    log.info("run folder: %s", out)
    install_log_filter()
    created = not art.exists(out, so)
    try:
        with RunLock(out, so) as lock:
            clean_leftovers(out, so, lock)
            replace = check_output_dir(out, so, bool(cfg.get("resume")), bool(cfg.get("overwrite")))
            space = Workspace(out, so, replace)
            try:
                _fit_into(cfg, frame, started, space.dir, so)
                space.publish(lock)
            except BaseException:
                space.discard()
                raise
    except BaseException:
        if created:
            remove_if_empty(out, so)  # a failed first fit leaves no empty folder behind
        raise
    return Run(out, storage_options=so)


def _folds(cfg: DictConfig, y, info: ProblemInfo, n_rows: int):
    """The validation splits every trial uses (k-fold, or a holdout on large data)."""
    v = cfg.validation
    n_folds = v.large_data_folds if n_rows >= v.large_data_rows else v.n_folds
    if n_folds != v.n_folds and n_rows <= v.cv_max_rows:
        log.info("%d rows >= validation.large_data_rows=%d: %d-fold cross-validation", n_rows,
                 v.large_data_rows, n_folds)
    if n_rows <= v.cv_max_rows:
        fitted, why = fold_count(y, info.problem_type, n_folds, info.classes)
        if why:  # tiny data: fewer folds (check_enough_rows stopped data too small for 2)
            key = "n_folds" if n_folds == v.n_folds else "large_data_folds"
            log.info("%s, fewer than validation.%s=%d: %d-fold cross-validation", why, key, n_folds, fitted)
    folds = make_folds(y, info.problem_type, n_folds, v.cv_max_rows, v.holdout_fraction, cfg.seed)
    return cap_fold_rows(folds, y, v.get("max_train_rows"), info.problem_type, cfg.seed)


def _fit_into(cfg: DictConfig, frame: Optional[pd.DataFrame], started: float, out: str, so: Dict[str, Any]) -> None:
    """The flow, writing to ``out`` (the output_dir, or the staging folder that replaces it).
    Everything is read and checked before the first write."""
    from automl.search.live import make_progress

    deadline = started + float(cfg.budget.time_limit_s)
    state = begin_run(cfg, out, so, started)  # resume=true: earlier trials and spent time (reads only)
    deadline -= state.spent_before_s
    phase = time.time()
    df, test_df = load_training_data(cfg, frame)
    target = cfg.data.target
    log.info("read %d rows x %d columns in %.1f s", len(df), df.shape[1], time.time() - phase)
    info = resolve_problem(df[target], cfg.problem_type, cfg.metric, target)
    log.info("problem: %s (%s); metric: %s", info.problem_type, info.reason, info.metric)
    n_read = len(df)
    df = _drop_bad_targets(df, target, info.problem_type, "training")
    test_fraction = cfg.data.test_fraction
    if test_fraction is None:
        test_fraction = 0.25 if cfg.data.path in DEMO_DATASETS and frame is None and test_df is None else 0.0
    if test_df is None and test_fraction > 0:
        strat = df[target] if info.problem_type != "regression" and df[target].value_counts().min() >= 2 else None
        df, test_df = train_test_split(df, test_size=test_fraction, random_state=cfg.seed, stratify=strat)
        df, test_df = df.reset_index(drop=True), test_df.reset_index(drop=True)
        log.info("held out %d rows (%.0f%%) as test data", len(test_df), 100 * test_fraction)
    check_enough_rows(df[target], info.problem_type, target)  # tiny data: a one-line error
    phase = time.time()
    X = df.drop(columns=[target])
    column_types = infer_column_types(X)
    log.info("inferred %d column types in %.1f s", len(column_types), time.time() - phase)
    features = [c for c, t in column_types.items() if t in FEATURE_TYPES]
    unused = {c: t for c, t in column_types.items() if t not in FEATURE_TYPES}
    if unused:
        log.info("not used as features: %s", ", ".join(f"{c} ({t})" for c, t in unused.items()))
    if not features:
        raise DataError("no usable feature columns: every column is ID-like or constant; add informative columns")
    feature_types = {c: column_types[c] for c in features}
    y = encode_target(df[target], info)
    apply_candidates_dir(cfg)  # candidates_dir=PATH: that folder's YAML files replace cfg.candidates
    candidates, skipped = generate_candidates(cfg, info.problem_type, len(df), feature_types)
    folds = None if cfg.mode == "candidates_only" else _folds(cfg, y, info, len(df))
    # Everything is read and checked: only now is the run folder written (run_state.json first).
    state.save()
    phase = time.time()
    save_training_data(out, df, so)
    log.info("saved the training rows to %s in %.1f s", TRAIN_DATA_FILE, time.time() - phase)
    from automl.monitor import write_baseline  # baseline/ for `automl monitor`; never fails the fit
    write_baseline(out, X, column_types, so, target=target, ignored=list(cfg.data.drop))
    art.write_text(art.join(out, art.CONFIG_FILE), redacted_yaml(cfg), so)  # secrets masked
    _write_candidates(out, candidates, so)
    summary: Dict[str, Any] = {
        "problem_type": info.problem_type, "problem_type_reason": info.reason, "metric": info.metric,
        "greater_is_better": info.greater_is_better, "target": target, "n_rows": len(df),
        "n_rows_read": n_read, "n_columns": int(X.shape[1]), "column_types": column_types,
        "features": features, "classes": info.classes, "positive_class": info.positive_class,
        "imbalance_ratio": info.imbalance_ratio, "mode": cfg.mode,
        "candidates": [c.name for c in candidates], "skipped_candidates": skipped,
    }
    write_notebooks(out, so, summary)  # data_exploration / candidate_definitions.ipynb; never fails the fit
    if cfg.mode == "candidates_only":
        summary.update({"wall_time_s": round(time.time() - started, 2), "n_trials_completed": 0,
                        "n_trials_failed": 0, "best": None})
        art.write_json(art.join(out, art.SUMMARY_FILE), summary, so)
        log.info("candidates written to %s/candidates; stopped before training (mode=candidates_only)",
                 cfg.output_dir)
        write_manifest(out, so)  # last: digests every file written so far
        return

    v = cfg.validation
    budget_total = float(cfg.budget.time_limit_s)
    trial_limit = cfg.budget.trial_time_limit_s or max(10.0, budget_total / 3)
    ctx = TrialContext(X=compact_features(X[features], feature_types), y=y, folds=folds, column_types=feature_types,
                       candidates={c.name: c for c in candidates}, problem_type=info.problem_type,
                       metric=info.metric, n_classes=len(info.classes), pos_index=info.pos_index,
                       seed=cfg.seed, trial_time_limit_s=trial_limit, output_dir=out, storage_options=so,
                       multi_fidelity=len(folds) > 1 and len(df) >= cfg.validation.multi_fidelity_min_rows)
    if ctx.multi_fidelity:
        log.info("multi-fidelity: %d rows >= %d, ASHA stops poor trials after their first folds",
                 len(df), cfg.validation.multi_fidelity_min_rows)
    local = use_local_search(cfg)
    if not local:
        from automl.search.tuner import init_ray

        phase = time.time()
        init_ray(cfg.ray.address, cfg.ray.num_cpus, keep_logs=bool(cfg.verbose))
        log.info("ray ready in %.1f s", time.time() - phase)
    reserve = search_reserve_s(budget_total)
    search_budget = deadline - time.time() - reserve
    if search_budget < (0.5 if local else 1.0) and not state.previous_rows:
        raise SearchError(
            f"budget.time_limit_s={budget_total:.0f} is used up before the search starts "
            f"(data loading{'' if local else ' and Ray start'} took {time.time() - started:.0f} s); "
            "raise budget.time_limit_s"
        )
    progress = make_progress(cfg.budget.max_trials, search_budget, info.metric, info.greater_is_better)
    common = dict(greater_is_better=info.greater_is_better, max_trials=cfg.budget.max_trials,
                  time_budget_s=search_budget, searcher=cfg.search.searcher,
                  n_startup_trials=cfg.search.n_startup_trials, warm_start=cfg.search.warm_start,
                  callbacks=[progress], state=state)
    if local:
        from automl.search.local import run_local_search

        workers = max(1, int((cfg.ray.num_cpus or os.cpu_count() or 1) // max(1e-9, cfg.ray.cpus_per_trial)))
        rows = run_local_search(ctx, candidates, workers=workers, **common)
    else:
        from automl.search.tuner import run_search

        rows = run_search(ctx, candidates, cpus_per_trial=cfg.ray.cpus_per_trial, **common)
    lb = _leaderboard(rows, ctx.candidates, info)
    art.write_text(art.join(out, art.LEADERBOARD_FILE), lb.to_csv(index=False), so)
    done = lb[lb["status"] == "completed"]
    counts = lb["status"].value_counts().to_dict()
    if done.empty:
        errors = lb["error"].replace("", np.nan).dropna()
        if errors.empty:
            raise SearchError(f"no trial finished within the budget ({len(lb)} started); "
                              "raise budget.time_limit_s")
        raise SearchError(f"all {len(lb)} trial(s) failed; commonest cause: {errors.value_counts().index[0]}")
    best = done.iloc[0]
    log.info("best trial %s (%s): %s=%.5f", best.trial_id, best.candidate, info.metric, best.objective)
    phase = time.time()
    # The refit may use the reserve up to FINAL_WRITE_S before the deadline: the report sizes
    # itself to the time left (it skips permutation importance when short).
    spec = RerankSpec(v.rerank_top, v.rerank_repeats, v.rerank_share * budget_total)
    model, chosen, threshold, lb = finalize(ctx, lb, rows, info, deadline - FINAL_WRITE_S, out, so,
                                            ensemble=cfg.search.ensemble, rerank_spec=spec,
                                            select=SelectSpec(**OmegaConf.to_container(cfg.select)))
    best = lb[(lb["status"] == "completed") & (lb["trial_id"].astype(str) != ENSEMBLE_ID)].iloc[0]  # re-ranked
    bundle = ModelBundle(pipeline=model, problem_type=info.problem_type, target=target, feature_columns=features,
                         column_types=feature_types, classes=info.classes, positive_class=info.positive_class,
                         threshold=threshold, temperature=chosen.get("temperature"),
                         trial_id=str(chosen["trial_id"]), candidate=str(chosen["candidate"]))
    size = save_model(out, bundle, so)  # model.skops: loads without running code (rundir/modelfile.py)
    if chosen["trial_id"] == ENSEMBLE_ID:  # a large ensemble is pickled once, here (forests: hundreds of MB)
        lb.loc[lb["trial_id"] == ENSEMBLE_ID, "model_size_bytes"] = size
    art.write_text(art.join(out, art.LEADERBOARD_FILE), lb.to_csv(index=False), so)
    log.info("refit %s on all %d rows in %.1f s (%d bytes; choosing, refitting and saving it took %.1f s)",
             chosen["candidate"], len(df), chosen["refit_s"], size, time.time() - phase)
    if chosen["trial_id"] != ENSEMBLE_ID:
        chosen["params"] = next(json.loads(r.get("refit_params_json") or "{}") for r in rows
                                if str(r["trial_id"]) == chosen["trial_id"])
    reranked = chosen.pop("rerank", None)  # see search/rerank.py
    summary.update({
        "best": {**chosen, "model_size_bytes": size},
        "best_single": {"trial_id": str(best.trial_id), "candidate": str(best.candidate),
                        "score": rank_score(best)},
        "n_trials": int(sum(counts.values())), "n_trials_completed": int(counts.get("completed", 0)),
        "n_trials_failed": int(counts.get("failed", 0)), "n_trials_timeout": int(counts.get("timeout", 0)),
        "n_trials_stopped": int(counts.get("stopped", 0)),
        "validation": {"scheme": "holdout" if len(folds) == 1 else f"{len(folds)}-fold cross-validation",
                       "n_folds": len(folds), "rerank": reranked},
    })
    if test_df is not None:
        test_df = _drop_bad_targets(test_df, target, info.problem_type, "test")
        pred = bundle.predict_matrix(test_df)
        y_test = encode_target(test_df[target], info)
        test_metrics = score_all(info.problem_type, y_test, pred, info.pos_index)
        summary.update({"test_score": test_metrics[info.metric], "test_metrics": test_metrics,
                        "n_test_rows": int(len(test_df))})
        log.info("test %s: %.5f on %d rows", info.metric, test_metrics[info.metric], len(test_df))
    summary["wall_time_s"] = round(time.time() - started, 2)
    summary.update({"resumed": state.resumed, "wall_time_total_s": round(state.spent_s, 2)})  # all attempts
    state.save("finished")
    art.write_json(art.join(out, art.SUMMARY_FILE), summary, so)
    write_report(out, so, summary, bundle, cfg.seed, deadline)  # report.html; a failure only logs a warning
    log.info("done in %.1f s; run folder: %s", summary["wall_time_s"], cfg.output_dir)
    write_manifest(out, so)  # last: digests every file written so far (see automl/manifest.py)
