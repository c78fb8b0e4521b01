"""The distributed search: one Tune experiment over every candidate (the same searcher, search
spaces and warm-start portfolios as a single-machine fit, search/searcher.py). A trial of an
XGBoost candidate is a Ray Train job (its Tune trial only waits on it and reserves no CPU); the
others reserve one CPU and train on the sample. Trials run one at a time, each using the
cluster's CPUs itself, so a trial's Ray Data tasks never wait on another trial's workers."""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from typing import Any, Dict, List

from ray import tune

from automl.candidates.generate import Candidate
from automl.distributed.trials import DISTRIBUTED_ALGORITHMS, DistJob, run_trial
from automl.search.deadline import DeadlineStopper
from automl.search.resume import result_row, write_result
from automl.search.searcher import SearchSpec

log = logging.getLogger(__name__)
# A Train job's Tune trial only waits: it reserves a token of memory (Tune refuses an empty
# request) and no CPU, so no fraction of a CPU is taken from the data tasks beside the job.
WAITING_TRIAL = {"CPU": 0.0, "memory": 1024 * 1024}
SAMPLE_TRIAL = {"CPU": 1.0}


class Persist(tune.Callback):
    """Each finished trial into the run folder (trials/<id>/result.json) as it finishes, and its
    row kept for the leaderboard; logged in one line."""

    def __init__(self, output_dir: str, storage_options: Dict[str, Any], run_id: str, metric: str):
        self.output_dir, self.so, self.run_id, self.metric = output_dir, storage_options, run_id, metric
        self.rows: List[Dict[str, Any]] = []
        self.started: Dict[str, Dict[str, Any]] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = dict(trial.config or {})

    def on_trial_error(self, iteration, trials, trial, **info):
        try:
            error = str(trial.get_error() or "") or "no message"
        except Exception:  # no error text: the generic reason
            error = "no message"
        lines = [ln for ln in error.strip().splitlines() if ln.strip()]
        self.unfinished(trial.trial_id, "failed", f"the trial's process failed: {lines[-1] if lines else error}")

    def unfinished(self, trial_id: str, status: str, error: str) -> None:
        """A trial that never reported (stopped at the deadline, or its process died): its row."""
        if any(r["trial_id"] == trial_id for r in self.rows) or trial_id not in self.started:
            return
        config = self.started[trial_id]
        row = result_row(trial_id, config, {"candidate": config.get("candidate"), "status": status,
                                            "error": str(error).strip().splitlines()[0][:500]}, self.run_id)
        self.rows.append(row)
        write_result(self.output_dir, row, self.so)
        log.warning("trial %s (%s) %s: %s", trial_id, row["candidate"], status, row["error"])

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "status" not in result:
            return
        row = result_row(trial.trial_id, dict(trial.config or {}), dict(result), self.run_id)
        self.rows.append(row)
        write_result(self.output_dir, row, self.so)
        if row["status"] == "completed":
            log.info("trial %s (%s, %s on %s row(s), node(s) %s): %s=%.5f", trial.trial_id, row["candidate"],
                     row.get("trained_as"), row.get("train_rows"), row.get("node_ip") or "?", self.metric,
                     row["objective"])
        else:
            log.warning("trial %s (%s) failed: %s", trial.trial_id, row["candidate"], row.get("error"))


def trial_resources(job: DistJob):
    """A function of the trial's config: no CPU for a Train job's trial (it only waits; its workers
    reserve theirs), one for a trial that trains on the sample in its own process."""
    from ray.tune.execution.placement_groups import PlacementGroupFactory

    distributed = {name for name, c in job.candidates.items() if c.algorithm in DISTRIBUTED_ALGORITHMS}

    def resources(config: Dict[str, Any]) -> PlacementGroupFactory:
        return PlacementGroupFactory([dict(WAITING_TRIAL if config.get("candidate") in distributed else SAMPLE_TRIAL)])

    return resources


def searcher(spec: SearchSpec):
    from ray.tune.search.optuna import OptunaSearch

    points = spec.points()
    return OptunaSearch(space=spec.space(), metric="objective", mode="max" if spec.greater_is_better else "min",
                        points_to_evaluate=points or None, sampler=spec.sampler())


def run_search(job: DistJob, candidates: List[Candidate], spec: SearchSpec, max_trials: int, budget_s: float,
               run_id: str) -> List[Dict[str, Any]]:
    """The trials' rows (completed and failed), in the order they finished."""
    persist = Persist(job.output_dir, job.storage_options, run_id, job.info.metric)
    trainable = tune.with_resources(tune.with_parameters(run_trial, job=job), trial_resources(job))
    storage = tempfile.mkdtemp(prefix="automl-dtune-")
    log.info("distributed search: %d candidate(s) (%s as Ray Train jobs of %d workers), up to %d trials, %.0f s",
             len(candidates), ", ".join(c.name for c in candidates if c.algorithm in DISTRIBUTED_ALGORITHMS) or "none",
             job.num_workers, max_trials, budget_s)
    try:
        tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(
            search_alg=searcher(spec), num_samples=max_trials, max_concurrent_trials=1),
            run_config=tune.RunConfig(name="distributed-search", storage_path=storage, verbose=0,
                                      stop=DeadlineStopper(time.time() + budget_s), callbacks=[persist]))
        tuner.fit()
        for trial_id in list(persist.started):
            persist.unfinished(trial_id, "stopped", "stopped by the run's time budget before it reported")
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    return persist.rows
