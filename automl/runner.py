"""`automl fit`: the whole Autopilot flow, in one visible order (the stages are in automl/stages/).

prepare (read, check, infer the problem and the column types, hold out test rows, make the folds)
-> plan (the candidates) -> search (tune them all) -> select (ensemble, re-rank, refit or bag,
gates) -> publish (model, leaderboard, summary, report, notebooks, manifest). The run folder is
written under its lock, and only once everything is read and checked.
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from pathlib import Path
from typing import Any, Dict, Optional

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from automl import artifacts as art
from automl.candidates.from_dir import apply_candidates_dir
from automl.distributed.mode import is_distributed
from automl.redact import install_log_filter, register_config_secrets
from automl.rundir.lock import RunLock
from automl.rundir.staging import Workspace, check_output_dir, clean_leftovers, remove_if_empty
from automl.search.resume import begin_run, is_finished_run
from automl.stages.env import EXIT_S, RunEnv
from automl.stages.plan import plan_candidates
from automl.stages.prepare import drop_bad_targets, load_training_data, prepare  # noqa: F401 (former names)
from automl.stages.publish import publish, publish_candidates_only, write_inputs
from automl.stages.search import leaderboard_frame, search
from automl.stages.select import select

log = logging.getLogger(__name__)


def default_output_dir() -> str:
    now = _dt.datetime.now()
    return str(Path("outputs") / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S-%f"))


def resolve_output_dir(cfg: DictConfig) -> str:
    out = cfg.output_dir or default_output_dir()
    if "://" not in out:
        out = str(Path(out).resolve())
    return out


# Former names, for callers and tests that import them from here.
_drop_bad_targets = drop_bad_targets
_leaderboard = leaderboard_frame


def fit(cfg: DictConfig, frame: Optional[pd.DataFrame] = None, started: Optional[float] = None):
    """Run the whole flow for a composed config; returns a :class:`automl.run.Run`.

    The run folder is written under its lock (rundir/lock.py). A folder that already holds files
    is only continued (``resume=true``) or replaced (``overwrite=true``: the new run is built next
    to it and swapped in when complete, rundir/staging.py); otherwise the fit stops untouched."""
    from automl.rundir.run import Run

    started = started or time.time()
    so = dict(cfg.data.storage_options)
    out = resolve_output_dir(cfg)
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = out
    OmegaConf.set_struct(cfg, True)
    register_config_secrets(cfg)  # secret option values and URL passwords are masked in logs and errors
    apply_candidates_dir(cfg)  # candidates_dir=: its files replace the candidates, checked before any data is read
    log.info("run folder: %s", out)
    install_log_filter()
    created = not art.exists(out, so)
    try:
        with RunLock(out, so) as lock:
            clean_leftovers(out, so, lock)
            replace = check_output_dir(out, so, bool(cfg.get("resume")), bool(cfg.get("overwrite")))
            # resume=true on a finished run continues it next to it: the earlier run stays until the new is complete
            continuing = bool(cfg.get("resume")) and is_finished_run(out, so)
            space = Workspace(out, so, replace or continuing)
            try:
                _fit_into(cfg, frame, started, space.dir, so, source=out)
                space.publish(lock)
            except BaseException:
                space.discard()
                raise
    except BaseException:
        if created:
            remove_if_empty(out, so)  # a failed first fit leaves no empty folder behind
        raise
    return Run(out, storage_options=so)


def _fit_into(cfg: DictConfig, frame: Optional[pd.DataFrame], started: float, out: str, so: Dict[str, Any],
              source: Optional[str] = None) -> None:
    """The flow, writing to ``out`` (the output_dir, or the staging folder that replaces it;
    ``source``: the output_dir, where resume=true reads the earlier attempts from).
    Everything is read and checked before the first write."""
    state = begin_run(cfg, out, so, started, source)  # resume=true: earlier trials and spent time (reads only)
    # the steps end before the deadline; the process' exit takes the rest of the budget (more when
    # it stops a Ray this fit starts: RunEnv.stops_ray_at_exit, where Ray starts)
    deadline = started + float(cfg.budget.time_limit_s) - state.budget_spent_s - EXIT_S
    env = RunEnv(cfg, out, so, started, deadline, state)
    with trial_blas_threads(cfg):
        _run_stages(env, cfg, frame)


def trial_blas_threads(cfg: DictConfig):
    """BLAS (numpy's and scipy's OpenBLAS) in this process on as many threads as a trial has CPUs,
    as Ray gives its trial workers: the refit's time is predicted from the trials' fold times, and
    forked workers inherit the limit. OpenBLAS on two threads fitted a 13k-row logistic regression
    6x slower than on one (small matrices; happiness: 3.0 s vs 0.5 s), so a refit predicted at
    0.8 s took 11 s. automl's models run on one thread each (n_jobs=1) in trials and refits alike."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=max(1, int(float(cfg.ray.cpus_per_trial))), user_api="blas")


def _run_stages(env: RunEnv, cfg: DictConfig, frame: Optional[pd.DataFrame]) -> None:
    if is_distributed(cfg, frame is not None):  # scale.mode: the table as a Ray Dataset (docs/distributed.md)
        from automl.distributed.flow import fit_distributed

        fit_distributed(env)
        return
    prepared = prepare(cfg, frame)
    plan = plan_candidates(cfg, prepared)
    # Everything is read and checked: only now is the run folder written (run_state.json first;
    # a continuation copies the earlier trials into the new folder).
    env.state.begin(prepared.df, cfg.data.target, [c.name for c in plan.candidates])
    write_inputs(env, prepared, plan)
    if cfg.mode == "candidates_only":
        publish_candidates_only(env, prepared, plan)
        return
    outcome = search(env, prepared, plan)
    selection = select(env, prepared, outcome)
    publish(env, prepared, plan, outcome, selection)
