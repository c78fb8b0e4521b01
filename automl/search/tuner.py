"""Run every candidate in one Ray Tune experiment.

The candidate is itself a searched parameter with conditional sub-spaces (Optuna
define-by-run). Warm-start portfolio points run first; then TPE (or random search) explores.
Trials get 1 CPU each, reuse their actors, and read the data from Ray's object store.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

from automl.candidates.generate import Candidate
from automl.candidates.space import portfolio_points, suggest
from automl.search.trial import TrialContext, evaluate

log = logging.getLogger(__name__)

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def init_ray(address: Optional[str], num_cpus: Optional[int], runtime_env: Optional[Dict[str, Any]] = None) -> int:
    """Start or join Ray once per process; returns the number of CPUs available to trials."""
    import ray

    if not ray.is_initialized():
        kwargs: Dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                      logging_level=logging.WARNING, configure_logging=False)
        if address:
            ray.init(address=address, runtime_env=runtime_env, **kwargs)
        else:
            # A private, local cluster started by this process: no token prompt needed.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, runtime_env=runtime_env, **kwargs)
    return int(ray.cluster_resources().get("CPU", 1))


def _trainable(config: Dict[str, Any], ctx: TrialContext = None) -> None:
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    tune.report(evaluate(config, ctx, trial_id))


class _DefineByRun:
    """The joint space: pick a candidate, then sample only its sub-space (picklable)."""

    def __init__(self, spaces: Dict[str, Dict[str, Any]], problem_type: str):
        self.spaces = spaces
        self.problem_type = problem_type

    def __call__(self, trial):
        name = trial.suggest_categorical("candidate", list(self.spaces))
        suggest(trial, name, self.spaces[name], self.problem_type)
        return None


def _searcher(candidates: List[Candidate], problem_type: str, greater_is_better: bool, searcher: str,
              seed: int, n_startup: int, warm_start: bool):
    import warnings

    import optuna
    from ray.tune.search.optuna import OptunaSearch

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = _DefineByRun({c.name: c.space for c in candidates}, problem_type)
    points = []
    if warm_start:
        for cand in candidates:
            points.extend(portfolio_points(cand.name, cand.space, problem_type))
    if searcher == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup, multivariate=True,
                                             group=True, constant_liar=True)
    return OptunaSearch(space=space, metric="objective", mode="max" if greater_is_better else "min",
                        points_to_evaluate=points or None, sampler=sampler)


def run_search(
    ctx: TrialContext,
    candidates: List[Candidate],
    *,
    greater_is_better: bool,
    max_trials: int,
    time_budget_s: float,
    searcher: str = "optuna",
    n_startup_trials: int = 8,
    warm_start: bool = True,
    cpus_per_trial: float = 1.0,
    callbacks: Optional[List[Any]] = None,
    storage_path: Optional[str] = None,
) -> List[Dict[str, Any]]:
    """Run the experiment; return one row per trial (completed, failed or timed out)."""
    import ray
    from ray import tune

    total_cpus = int(ray.cluster_resources().get("CPU", 1))
    parallel = max(1, int(total_cpus // cpus_per_trial))
    alg = _searcher(candidates, ctx.problem_type, greater_is_better, searcher, ctx.seed,
                    n_startup_trials, warm_start)
    trainable = tune.with_resources(tune.with_parameters(_trainable, ctx=ctx), {"cpu": cpus_per_trial})
    storage = storage_path or tempfile.mkdtemp(prefix="automl-tune-")
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=alg, num_samples=max_trials, max_concurrent_trials=parallel,
            reuse_actors=True, time_budget_s=max(1.0, time_budget_s),
        ),
        run_config=tune.RunConfig(name="search", storage_path=storage, verbose=0,
                                  callbacks=callbacks or []),
    )
    log.info("search: %d candidate(s), up to %d trials, %d in parallel, %.0f s budget",
             len(candidates), max_trials, parallel, time_budget_s)
    started = time.time()
    grid = tuner.fit()
    rows = []
    for i, res in enumerate(grid):
        row: Dict[str, Any] = {}
        trial_id = os.path.basename(res.path or "") or f"trial_{i}"
        metrics = res.metrics or {}
        config = res.config or {}
        if "status" in metrics:
            row.update({k: v for k, v in metrics.items() if k in _RESULT_KEYS or k.startswith("metric_")})
            trial_id = metrics.get("trial_id", trial_id)
        elif res.error is not None:
            row.update({"candidate": config.get("candidate"), "status": "failed",
                        "error": str(res.error).strip().splitlines()[-1][:500]})
            trial_id = metrics.get("trial_id", trial_id)
        else:
            row.update({"candidate": config.get("candidate"), "status": "stopped",
                        "error": "stopped by the run's time budget before it reported"})
        row["trial_id"] = trial_id
        row["config"] = config
        rows.append(row)
    log.info("search finished: %d trial(s) in %.1f s", len(rows), time.time() - started)
    return rows


_RESULT_KEYS = {"candidate", "params_json", "status", "error", "objective", "fit_s", "predict_ms_per_row",
                "latency_ms_single_row", "model_size_bytes", "trial_id"}
