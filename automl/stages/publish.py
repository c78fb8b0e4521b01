"""The publish stage: write the run folder. First its inputs (training rows, monitoring baseline,
config, candidates, notebooks) once everything is read and checked; at the end the model, the
leaderboard, summary.json, report.html and, last, the manifest."""
from __future__ import annotations

import io
import json
import logging
import time
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd

from automl import artifacts as art
from automl.candidates.generate import Candidate
from automl.rundir.manifest import write_manifest
from automl.model import ModelBundle
from automl.notebooks import write_notebooks
from automl.problem import encode_target
from automl.redact import redacted_yaml
from automl.report import write_report
from automl.rundir.bias import write_bias
from automl.rundir.layout import CONFIG_FILE, TRAIN_DATA_FILE, candidate_file
from automl.rundir.summary import write_summary
from automl.rundir.modelfile import save_model
from automl.selection.calibration import ECE_BINS, expected_calibration_error, score_calibrated
from automl.selection.final import Selection
from automl.rundir.leaderboard import rank_score, write_leaderboard
from automl.stages.env import RunEnv
from automl.stages.plan import Plan
from automl.stages.prepare import Prepared, drop_bad_targets
from automl.stages.search import SearchOutcome, report_share_s
from automl.tracking import track_fit

log = logging.getLogger(__name__)


def save_training_data(out: str, df: pd.DataFrame, so: Dict[str, Any]) -> None:
    """Keep the exact training rows in the run folder (to refit any trial, rebuild baselines)."""
    buf = io.BytesIO()
    try:
        df.to_parquet(buf, index=False)
    except Exception:  # mixed-type object columns: store them as strings, say so
        mixed = [c for c in df.columns if df[c].dtype == object]
        log.info("storing mixed-type column(s) %s as text in %s", ", ".join(map(str, mixed)), TRAIN_DATA_FILE)
        buf = io.BytesIO()
        df.astype({c: "string" for c in mixed}).to_parquet(buf, index=False)
    art.write_bytes(art.join(out, TRAIN_DATA_FILE), buf.getvalue(), so)


def write_candidates(out: str, cands: List[Candidate], so: Dict[str, Any]) -> None:
    for c in cands:
        art.write_yaml(art.join(out, candidate_file(c.name)), c.to_dict(), so,
                       header=f"# Candidate {c.name} as this run used it. Edit and rerun with\n"
                              f"#   automl fit candidates_dir=<this folder> ...\n")


def inputs_summary(env: RunEnv, prepared: Prepared, plan: Plan) -> Dict[str, Any]:
    """summary.json's first keys: the problem, the data and the candidates."""
    info = prepared.info
    return {
        "problem_type": info.problem_type, "problem_type_reason": info.reason, "metric": info.metric,
        "greater_is_better": info.greater_is_better, "target": env.cfg.data.target, "n_rows": len(prepared.df),
        "n_rows_read": prepared.n_rows_read, "n_columns": int(prepared.X.shape[1]),
        "column_types": prepared.column_types, "features": prepared.features, "classes": info.classes,
        "positive_class": info.positive_class, "imbalance_ratio": info.imbalance_ratio, "mode": env.cfg.mode,
        "candidates": [c.name for c in plan.candidates], "skipped_candidates": plan.skipped,
        "memory_plan": plan.memory,  # predicted peak MB per trial and the limit (search/memory.py)
        "sample_weights": prepared.weighting.record(prepared.weights) if prepared.weighting else None,
    }


def write_inputs(env: RunEnv, prepared: Prepared, plan: Plan) -> None:
    """The run folder's inputs: training rows, baseline/, config.yaml, candidates/, notebooks."""
    cfg, out, so = env.cfg, env.out, env.so
    phase = time.time()
    save_training_data(out, prepared.df, so)
    log.debug("saved the training rows to %s in %.1f s", TRAIN_DATA_FILE, time.time() - phase)
    from automl.monitor import write_baseline  # baseline/ for `automl monitor`; never fails the fit

    roles = [c for c in (cfg.data.get("weight_column"), cfg.validation.get("group_column")) if c]  # not features
    write_baseline(out, prepared.X, prepared.column_types, so, target=cfg.data.target,
                   ignored=list(cfg.data.drop) + roles)
    art.write_text(art.join(out, CONFIG_FILE), redacted_yaml(cfg), so)  # secrets masked
    write_candidates(out, plan.candidates, so)
    if cfg.get("notebooks", True):
        write_notebooks(out, so, inputs_summary(env, prepared, plan))  # never fails the fit


def publish_candidates_only(env: RunEnv, prepared: Prepared, plan: Plan) -> None:
    """mode=candidates_only: the summary and the manifest, no model."""
    summary = inputs_summary(env, prepared, plan)
    summary.update({"wall_time_s": round(time.time() - env.started, 2), "n_trials_completed": 0,
                    "n_trials_failed": 0, "best": None})
    write_summary(env.out, summary, env.so)
    log.info("candidates written to %s/candidates; stopped before training (mode=candidates_only)",
             env.cfg.output_dir)
    write_manifest(env.out, env.so)  # last: digests every file written so far


def save_final_model(env: RunEnv, prepared: Prepared, sel: Selection) -> Tuple[ModelBundle, int]:
    """model.skops (loads without running code, rundir/modelfile.py) and leaderboard.csv with its size."""
    info = prepared.info
    bundle = ModelBundle(pipeline=sel.model, problem_type=info.problem_type, target=env.cfg.data.target,
                         feature_columns=prepared.features, column_types=prepared.feature_types,
                         classes=info.classes, positive_class=info.positive_class, threshold=sel.threshold,
                         calibration=sel.calibration, trial_id=str(sel.trial_id), candidate=str(sel.candidate))
    size = save_model(env.out, bundle, env.so)
    lb = sel.leaderboard
    if sel.is_ensemble:  # a large ensemble is pickled once, here (forests: hundreds of MB)
        lb.loc[lb["trial_id"] == sel.trial_id, "model_size_bytes"] = size
    write_leaderboard(env.out, lb, env.so)
    plan = (sel.final_model or {}).get("time_plan")  # the refit would not fit the clock (selection/timeplan.py)
    built = f"built {sel.candidate} ({plan['decision']})" if plan else \
        f"refit {sel.candidate} on all {len(prepared.df)} rows"
    log.info("%s in %.1f s (%d bytes; choosing, refitting and saving it took %.1f s)",
             built, sel.refit_s, size, time.time() - sel.started)
    return bundle, size


def outcome_summary(outcome: SearchOutcome, sel: Selection, size: int) -> Dict[str, Any]:
    """summary.json's keys for the search and the final model."""
    best = sel.record()
    if not sel.is_ensemble:
        best["params"] = next(json.loads(r.get("refit_params_json") or "{}") for r in outcome.rows
                              if str(r["trial_id"]) == sel.trial_id)
    reranked = best.pop("rerank", None)  # see selection/rerank.py
    single, counts, n_folds = sel.best_single(), outcome.counts, len(outcome.ctx.folds)
    return {
        "best": {**best, "model_size_bytes": size},
        "fallback": sel.fallback,  # no trial finished: a default configuration, not validated (selection/fallback.py)
        "best_single": {"trial_id": str(single.trial_id), "candidate": str(single.candidate),
                        "score": rank_score(single)},
        "n_trials": int(sum(counts.values())), "n_trials_completed": int(counts.get("completed", 0)),
        "n_trials_failed": int(counts.get("failed", 0)), "n_trials_timeout": int(counts.get("timeout", 0)),
        "n_trials_stopped": int(counts.get("stopped", 0)),
        "search_clock": outcome.clock,  # the search ended early for the predicted refit (selection/timeplan.py)
        "validation": {"scheme": "holdout" if n_folds == 1 else f"{n_folds}-fold cross-validation",
                       "n_folds": n_folds, "rerank": reranked},
    }


def score_test_data(env: RunEnv, prepared: Prepared, bundle: ModelBundle) -> Optional[Dict[str, Any]]:
    """The final model's scores on the test data; None without test data."""
    if prepared.test_df is None:
        return None
    info, target = prepared.info, env.cfg.data.target
    test_df = drop_bad_targets(prepared.test_df, target, info.problem_type, "test")
    raw = bundle.raw_matrix(test_df)
    pred = bundle.calibrate(raw)
    y_test = encode_target(test_df[target], info)
    w_test = prepared.weighting.of(test_df, target, "test") if prepared.weighting else None  # weighted run
    test_metrics = score_calibrated(info.problem_type, y_test, raw, pred, info.pos_index, sample_weight=w_test)
    log.info("test %s: %.5f on %d rows", info.metric, test_metrics[info.metric], len(test_df))
    out = {"test_score": test_metrics[info.metric], "test_metrics": test_metrics, "n_test_rows": int(len(test_df))}
    if info.problem_type != "regression":  # top-class reliability on the test rows, as the report shows it
        out["test_calibration"] = {"ece": expected_calibration_error(y_test, pred),
                                   "ece_uncalibrated": expected_calibration_error(y_test, raw), "bins": ECE_BINS}
    return out


def publish(env: RunEnv, prepared: Prepared, plan: Plan, outcome: SearchOutcome, sel: Selection) -> None:
    """Save the model, then summary.json, report.html and, last, the manifest."""
    bundle, size = save_final_model(env, prepared, sel)
    summary = {**inputs_summary(env, prepared, plan), **outcome_summary(outcome, sel, size)}
    held_out = prepared.test_df is not None and not env.cfg.data.test_path  # split off by data.test_fraction
    summary.setdefault("validation", {}).update(prepared.structure.record(held_out))  # plain, group or time
    summary.update(score_test_data(env, prepared, bundle) or {})
    summary["wall_time_s"] = round(time.time() - env.started, 2)
    summary.update({"resumed": env.state.resumed, "wall_time_total_s": round(env.state.spent_s, 2)})  # all attempts
    summary["continued"] = env.state.continued  # resume=true on a finished run: more budget (search/resume.py)
    summary["attempts"] = env.state.record_attempt(summary, float(env.cfg.budget.time_limit_s))  # and history.json
    env.state.save("finished")
    write_summary(env.out, summary, env.so)
    from automl.monitor.attribution import write_attribution_baseline  # mean |SHAP| per feature; never fails

    write_attribution_baseline(env.out, env.so, bundle, prepared.X, deadline=env.deadline,  # the report shows it
                               report_s=report_share_s(float(env.cfg.budget.time_limit_s)))
    from automl.monitor.quality import write_quality_constraints  # model_quality in baseline/constraints.json

    margins = env.cfg.get("monitor") or {}  # from out-of-fold metrics; never fails the fit
    write_quality_constraints(env.out, env.so, prepared.info.problem_type, sel.leaderboard, sel.trial_id,
                              margins.get("quality_margin", 0.05), margins.get("quality_relative_margin", 0.2))
    write_bias(env.out, env.so, env.cfg.get("explain"), env.cfg.seed)  # explain.facet: bias.json; never fails
    if env.cfg.get("report", True):
        write_report(env.out, env.so, summary, bundle, env.cfg.seed, env.deadline)  # a failure only logs a warning
    # from process start to now: summary.json's wall_time_s stops before the attributions and the report
    log.info("done in %.1f s; run folder: %s", time.time() - env.started, env.cfg.output_dir)
    write_manifest(env.out, env.so)  # last: digests every file written so far (see automl/manifest.py)
    # tracking=mlflow: log the complete run folder (trials, scores, the model); a failure only warns
    track_fit(env.cfg.get("tracking"), env.out, env.so, shown_dir=env.cfg.output_dir)
