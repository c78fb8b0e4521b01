"""`automl fit` with ``scale.mode=distributed``: the same run folder as a single-machine fit, from
a table that never reaches the driver whole.

read (Ray Dataset) -> profile (streaming counts and moments, a sample for types and the problem)
-> split (by row hash, in the dataset) -> plan -> search (XGBoost as Ray Train jobs, others on the
stratified sample) -> the best trial's model -> test score (in the dataset) -> publish.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

import pandas as pd

from automl import artifacts as art
from automl.candidates.generate import generate_candidates
from automl.distributed.dataset import DATA_TASK_CPUS, arrow_filesystem, read_dataset
from automl.distributed.profile import Profile, baseline_of, numeric_moments, profile_dataset
from automl.distributed.search import run_search
from automl.distributed.split import Splits, sample_frame, split_counts, split_dataset
from automl.distributed.trials import DISTRIBUTED_ALGORITHMS, DistJob, holdout_predictions
from automl.errors import ConfigError, DataError, SearchError
from automl.metrics import score_all
from automl.problem import encode_target
from automl.rundir.layout import CONSTRAINTS_FILE, STATISTICS_FILE, trial_model_file
from automl.rundir.leaderboard import write_leaderboard
from automl.rundir.manifest import write_manifest
from automl.rundir.modelfile import load_model_bytes, save_model
from automl.rundir.summary import write_summary
from automl.search.searcher import SearchSpec
from automl.stages.env import RunEnv
from automl.stages.publish import save_training_data, write_candidates
from automl.stages.search import keep_ray_messages, leaderboard_frame, ray_message_file, search_reserve_s

log = logging.getLogger(__name__)
TRAIN_STORAGE_DIR = ".ray-train"  # Train jobs' checkpoints, under the folder being written; removed at the end
DEFAULT_TEST_FRACTION = 0.1  # data.test_fraction=null in the distributed mode


@dataclass
class DistData:
    """The table, profiled and split; what the search and the summary read."""

    profile: Profile
    splits: Splits
    counts: Dict[str, int]  # exact rows per split
    sample: pd.DataFrame  # the stratified training sample
    moments: Dict[str, Dict[str, Any]]  # exact numeric moments of the training rows


def _drop_missing_target(batch: pd.DataFrame, target: str, regression: bool) -> pd.DataFrame:
    y = batch[target]
    bad = y.isna()
    if regression:
        bad |= ~pd.to_numeric(y, errors="coerce").between(-float("inf"), float("inf"))
    return batch[~bad.to_numpy()]


def given_test(cfg, profile: Profile):
    """data.test_path as a Ray Dataset (data.drop applied, rows without a usable target dropped)."""
    d = cfg.data
    ds = read_dataset(d.test_path, dict(d.storage_options), what="data.test_path")
    drop = [c for c in d.drop if c in ds.columns()]
    if d.target not in ds.columns():
        raise DataError(f"data.test_path has no column '{d.target}' (data.target); give test rows with the target")
    ds = ds.drop_columns(drop) if drop else ds
    return ds.map_batches(_drop_missing_target, batch_format="pandas", num_cpus=DATA_TASK_CPUS,
                          fn_kwargs={"target": d.target, "regression": profile.info.problem_type == "regression"})


def load(env: RunEnv) -> DistData:
    """Read, profile and split the table; only samples and aggregates reach this process."""
    cfg, d = env.cfg, env.cfg.data
    so = dict(d.storage_options)
    phase = time.time()
    ds = read_dataset(d.path, so)
    drop = [c for c in d.drop if c in ds.columns()]
    if drop:
        ds = ds.drop_columns(drop)
    n_rows = ds.count()
    if n_rows == 0:
        raise DataError("data.path: the table has no rows; give data with at least a few rows")
    s = cfg.scale
    profile = profile_dataset(ds, cfg, n_rows, sample_frame(ds, int(s.sample_rows), n_rows, cfg.seed))
    log.info("profiled %d rows x %d columns in %.1f s (types and problem on a %d-row sample)", n_rows,
             len(profile.columns), time.time() - phase, len(profile.sample))
    ds = ds.map_batches(_drop_missing_target, batch_format="pandas", num_cpus=DATA_TASK_CPUS,
                        fn_kwargs={"target": d.target, "regression": profile.info.problem_type == "regression"})
    test_fraction = 0.0 if d.test_path else DEFAULT_TEST_FRACTION if d.test_fraction is None else float(d.test_fraction)
    splits = split_dataset(ds, test_fraction, float(cfg.validation.holdout_fraction), cfg.seed)
    counts = split_counts(ds, splits, cfg.seed)
    if d.test_path:  # given test data: read as a dataset too, never split from the training table
        splits.test = given_test(cfg, profile)
        counts["test"] = splits.test.count()
    if min(counts["train"], counts["valid"]) == 0:
        raise DataError(f"too few rows for the distributed mode's split ({counts}); use scale.mode=single")
    dropped = n_rows - counts["train"] - counts["valid"] - (0 if d.test_path else counts["test"])
    if dropped:
        log.warning("dropped %d of %d rows whose target '%s' is missing or not finite", dropped, n_rows, d.target)
    log.info("split in the dataset by row hash: %d training, %d validation, %d test rows", counts["train"],
             counts["valid"], counts["test"])
    share = counts["train"] / max(1, n_rows)
    train_counts = {c: max(1, int(n * share)) for c, n in profile.class_counts.items()} or None
    sample = sample_frame(splits.train, int(s.sample_rows), counts["train"], cfg.seed + 1, d.target, train_counts)
    log.info("stratified training sample: %d rows (for the processing, the baseline and the candidates "
             "trained on one worker)", len(sample))
    numeric = [c for c in profile.features if profile.column_types[c] == "numeric"]
    return DistData(profile, splits, counts, sample, numeric_moments(splits.train, numeric))


def write_inputs(env: RunEnv, data: DistData, candidates, skipped: Dict[str, str]) -> None:
    """data/train.parquet (the training sample), baseline/, config.yaml, candidates/."""
    from automl.redact import redacted_yaml
    from automl.rundir.layout import CONFIG_FILE

    cfg, out, so = env.cfg, env.out, env.so
    save_training_data(out, data.sample, so)
    stats, constraints = baseline_of(data.profile, data.sample, data.moments, cfg.data.target, list(cfg.data.drop))
    stats["dataset"]["n_rows"] = data.counts["train"]
    art.write_json(art.join(out, STATISTICS_FILE), stats, so)
    art.write_json(art.join(out, CONSTRAINTS_FILE), constraints, so)
    art.write_text(art.join(out, CONFIG_FILE), redacted_yaml(cfg), so)
    write_candidates(out, candidates, so)


def make_job(env: RunEnv, data: DistData, candidates) -> DistJob:
    cfg, p = env.cfg, data.profile
    s = cfg.scale
    storage = art.join(env.out, TRAIN_STORAGE_DIR)
    fs, path = arrow_filesystem(storage, env.so)
    return DistJob(train=data.splits.train, valid=data.splits.valid, sample=data.sample,
                   y_sample=encode_target(data.sample[cfg.data.target], p.info),
                   candidates={c.name: c for c in candidates},
                   info=p.info, features=p.features, feature_types=p.feature_types, target=cfg.data.target,
                   seed=cfg.seed, num_workers=int(s.num_workers), cpus_per_worker=float(s.cpus_per_worker),
                   max_rounds=int(s.max_rounds), output_dir=env.out, storage_options=env.so,
                   train_storage=(path, fs if "://" in storage else None))


def best_bundle(env: RunEnv, lb: pd.DataFrame):
    """The best completed trial's saved model (models/<trial_id>.skops)."""
    done = lb[lb["status"] == "completed"]
    if done.empty:
        errors = lb["error"].replace("", pd.NA).dropna() if "error" in lb else pd.Series(dtype=str)
        raise SearchError(f"no distributed trial completed within the budget ({len(lb)} ran; "
                          f"{errors.iloc[0] if len(errors) else 'none finished'}); raise budget.time_limit_s")
    best = done.iloc[0]
    raw = art.read_bytes(art.join(env.out, trial_model_file(best["trial_id"])), env.so)
    return best, load_model_bytes(raw, f"trial {best['trial_id']}'s model")


def test_scores(data: DistData, job: DistJob, model) -> Optional[Dict[str, Any]]:
    """The final model's scores on the test rows, predicted in the dataset."""
    if data.splits.test is None or not data.counts["test"]:
        return None
    info = job.info
    y, pred = holdout_predictions(data.splits.test, model, job)
    metrics = score_all(info.problem_type, y, pred, info.pos_index)
    log.info("test %s: %.5f on %d rows (predicted in the dataset)", info.metric, metrics[info.metric], len(y))
    return {"test_score": float(metrics[info.metric]), "test_metrics": {k: float(v) for k, v in metrics.items()},
            "n_test_rows": int(len(y))}


def inputs_of(env: RunEnv, data: DistData, candidates, skipped: Dict[str, str]) -> Dict[str, Any]:
    """summary.json's first keys (the notebooks read them too), with what was exact and what sampled."""
    p, cfg = data.profile, env.cfg
    info = p.info
    return {
        "problem_type": info.problem_type, "problem_type_reason": info.reason, "metric": info.metric,
        "greater_is_better": info.greater_is_better, "target": cfg.data.target, "n_rows": data.counts["train"],
        "n_rows_read": p.n_rows, "n_columns": len(p.column_types), "column_types": p.column_types,
        "features": p.features, "classes": info.classes, "positive_class": info.positive_class,
        "imbalance_ratio": info.imbalance_ratio, "mode": cfg.mode, "candidates": [c.name for c in candidates],
        "skipped_candidates": skipped, "sample_weights": None,
        "scale": {"mode": "distributed", "num_workers": int(cfg.scale.num_workers), "rows": data.counts,
                  "sample_rows": int(len(data.sample)), "profile_sample_rows": int(len(p.sample)),
                  "trained_as_ray_train": sorted(c.name for c in candidates if c.algorithm in DISTRIBUTED_ALGORITHMS),
                  "exact": ["row counts", "class counts", "numeric count/missing/mean/std/min/max"],
                  "sampled": ["column types", "problem type", "quantiles", "histograms", "category frequencies",
                              "data/train.parquet", "the notebooks' statistics"]},
    }


def outcome_of(env: RunEnv, lb: pd.DataFrame, best: pd.Series, size: int, data: DistData) -> Dict[str, Any]:
    """summary.json's keys for the search and the chosen model (the best trial's own)."""
    counts = lb["status"].value_counts().to_dict()
    return {
        "best": {"trial_id": str(best["trial_id"]), "candidate": str(best["candidate"]),
                 "score": float(best["objective"]), "refit_s": 0.0,
                 "final_model": {"kind": "trial", "requested": str(env.cfg.select.final_model),
                                 "reason": "distributed mode: the best trial's own model, not refit"},
                 "model_size_bytes": size},
        "best_single": {"trial_id": str(best["trial_id"]), "candidate": str(best["candidate"]),
                        "score": float(best["objective"])},
        "n_trials": int(len(lb)), "n_trials_completed": int(counts.get("completed", 0)),
        "n_trials_failed": int(counts.get("failed", 0)), "n_trials_timeout": 0, "n_trials_stopped": 0,
        "validation": data.splits.record(data.counts),
    }


def configure_ray_data(verbose: bool) -> None:
    """Ray Data's progress lines and per-dataset messages stay off the terminal (verbose=true: kept).
    Parquet is read by tasks alone (its V2 reader starts a listing task of a whole CPU and dozens
    of footer-reading actors per dataset: slow on a small cluster, and stuck where a Train job
    leaves less than a CPU free)."""
    import ray.data

    if not verbose:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = verbose
    ctx.use_datasource_v2 = False


def start_ray(cfg, messages: str) -> None:
    """Join the cluster, or start a local Ray with room for a Train job's workers plus one CPU for
    reading data (logical CPUs: on a small machine more than its cores); an error when the cluster
    has no CPU left beside the job (its data tasks would wait forever)."""
    import math

    import ray

    from automl.raystart import init_ray

    s = cfg.scale
    need = int(s.num_workers) * float(s.cpus_per_worker) + 1
    num_cpus = cfg.ray.num_cpus
    if not cfg.ray.address and (num_cpus or os.cpu_count() or 1) < need:
        num_cpus = math.ceil(need)
        log.info("a local Ray of %d logical CPUs: scale.num_workers=%d workers of %g CPU plus one for reading data",
                 num_cpus, int(s.num_workers), float(s.cpus_per_worker))
    init_ray(cfg.ray.address, num_cpus, keep_logs=bool(cfg.verbose), messages=messages)
    total = float(ray.cluster_resources().get("CPU", 0))
    if total < need:
        raise ConfigError(f"scale.num_workers={s.num_workers} x scale.cpus_per_worker={s.cpus_per_worker} leaves no "
                          f"CPU to read data on a cluster of {total:g} CPUs; lower scale.num_workers or add a node")


def fit_distributed(env: RunEnv) -> None:
    """The whole distributed flow, writing ``env.out``."""
    cfg = env.cfg
    messages = ray_message_file()
    start_ray(cfg, messages)
    env.stops_ray_at_exit()
    configure_ray_data(bool(cfg.verbose))
    try:
        _fit(env)
    finally:
        keep_ray_messages(env, messages)
        _remove_train_storage(env)


def _remove_train_storage(env: RunEnv) -> None:
    """The Train jobs' checkpoints (each trial's model is in models/ already)."""
    fs, _, path = art.locate(art.join(env.out, TRAIN_STORAGE_DIR), env.so)
    try:
        if fs.exists(path):
            fs.rm(path, recursive=True)
    except OSError as exc:
        log.warning("could not remove %s: %s", TRAIN_STORAGE_DIR, exc)


def _fit(env: RunEnv) -> None:
    cfg = env.cfg
    data = load(env)
    info = data.profile.info
    candidates, skipped = generate_candidates(cfg, info.problem_type, len(data.sample), data.profile.feature_types)
    env.state.begin(data.sample, cfg.data.target, [c.name for c in candidates])
    write_inputs(env, data, candidates, skipped)
    if cfg.get("notebooks", True):
        from automl.notebooks import write_notebooks  # on the training sample; never fails the fit

        write_notebooks(env.out, env.so, inputs_of(env, data, candidates, skipped))
    job = make_job(env, data, candidates)
    spec = SearchSpec(candidates, info.problem_type, info.greater_is_better, cfg.search.searcher, cfg.seed,
                      cfg.search.n_startup_trials, cfg.search.warm_start)
    budget = env.deadline - time.time() - search_reserve_s(float(cfg.budget.time_limit_s))
    rows = run_search(job, candidates, spec, int(cfg.budget.max_trials), budget, env.state.run_id)
    lb = leaderboard_frame(rows, job.candidates, info)
    for extra in ("trained_as", "train_rows", "workers"):
        lb[extra] = [next((r.get(extra) for r in rows if r["trial_id"] == t), None) for t in lb["trial_id"]]
    best, bundle = best_bundle(env, lb)
    size = save_model(env.out, bundle, env.so)
    write_leaderboard(env.out, lb, env.so)
    summary = {**inputs_of(env, data, candidates, skipped), **outcome_of(env, lb, best, size, data)}
    summary.update(test_scores(data, job, bundle.pipeline) or {})
    summary["wall_time_s"] = round(time.time() - env.started, 2)
    summary.update({"resumed": False, "wall_time_total_s": round(env.state.spent_s, 2), "continued": False})
    summary["attempts"] = env.state.record_attempt(summary, float(cfg.budget.time_limit_s))
    env.state.save("finished")
    write_summary(env.out, summary, env.so)
    if cfg.get("report", True):
        from automl.report import write_report

        write_report(env.out, env.so, summary, bundle, cfg.seed, env.deadline)
    log.info("done in %.1f s; run folder: %s", summary["wall_time_s"], cfg.output_dir)
    _remove_train_storage(env)
    write_manifest(env.out, env.so)
