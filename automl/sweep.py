"""`automl fit -m`: one fit per sweep point, each in its own run folder, then a summary table.

``sweep.parallel`` points run at once: 1 (the default) runs them in turn in this process; N > 1
runs N ``automl fit`` processes on this machine (forked from this one on Linux, so none pays
automl's start-up again; each given ``ray.num_cpus`` = its share of the cores unless
``ray.num_cpus`` is set), or, when ``ray.address`` is set, N Ray tasks on that cluster. Every
point is composed and checked before the first one starts.

The sweep folder (``output_dir``, else ``outputs/multirun/<date>/<time>``) is this module's:
``<i>/`` the run folder of point ``i``; ``<i>.log`` what point ``i`` printed when it ran as a
process or a Ray task; ``sweep_summary.csv`` (written atomically when every point has ended)
one row per point: its overrides, status, metric, score, test score, best candidate, wall time
and run folder.
"""
from __future__ import annotations

import io
import logging
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import pandas as pd
from omegaconf import DictConfig, open_dict

from automl import artifacts as art
from automl.config import compose_config, expand_sweep
from automl.errors import AutoMLError
from automl.redact import redact_text

log = logging.getLogger(__name__)

SUMMARY_FILE = "sweep_summary.csv"
COLUMNS = ["run", "overrides", "status", "metric", "score", "test_score", "best_candidate", "wall_s", "run_dir",
           "error"]
_PLAIN = re.compile(r"[\w./:@+\-]+")


def log_file(index: int) -> str:
    """The log of sweep point ``index``, relative to the sweep folder."""
    return f"{index}.log"


@dataclass
class Point:
    """One sweep point: its overrides (``output_dir`` last), the swept ones, its run folder."""

    index: int
    overrides: List[str]
    label: str
    output_dir: str


@dataclass
class PointResult:
    """How one point ended: its summary.json (None when it failed), or its one-line error."""

    point: Point
    wall_s: float
    summary: Optional[Dict[str, Any]] = None
    error: str = ""
    exit_code: int = 0  # 0: done; 2: a user error (config, data); 1: unexpected

    def row(self) -> Dict[str, Any]:
        s = self.summary or {}
        best = s.get("best") or {}
        return {"run": self.point.index, "overrides": self.point.label, "status": "ok" if not self.exit_code else "failed",
                "metric": s.get("metric"), "score": best.get("score"), "test_score": s.get("test_score"),
                "best_candidate": best.get("candidate"), "wall_s": round(self.wall_s, 1),
                "run_dir": self.point.output_dir, "error": redact_text(self.error)}


@dataclass
class SweepOutcome:
    folder: str
    results: List[PointResult]

    @property
    def summary_url(self) -> str:
        return art.join(self.folder, SUMMARY_FILE)

    @property
    def exit_code(self) -> int:
        """0 when every point ended with a model; 1 when one failed unexpectedly; else 2."""
        codes = {r.exit_code for r in self.results}
        return 1 if 1 in codes else 2 if 2 in codes else 0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.row() for r in self.results], columns=COLUMNS)

    def table(self) -> str:
        """The summary as a plain-text table (the error column only when a point failed)."""
        df = self.frame()
        if not (df["status"] == "failed").any():
            df = df.drop(columns=["error"])
        return df.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.5g}")


# ----------------------------------------------------------------------------- planning
def quote(value: str) -> str:
    """A value as a Hydra override writes it (quoted unless plain)."""
    if _PLAIN.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sweep_folder(cfg: DictConfig) -> str:
    """``output_dir``, else ``outputs/multirun/<date>/<time>``; local paths made absolute."""
    from automl.runner import default_output_dir

    base = cfg.output_dir or default_output_dir().replace("outputs", str(Path("outputs") / "multirun"), 1)
    return base.rstrip("/") if "://" in base else str(Path(base).resolve())


def plan(overrides: Sequence[str]) -> tuple[List[Point], List[DictConfig], str]:
    """The sweep's points and their composed, checked configs; nothing runs before all pass."""
    runs = expand_sweep(list(overrides))
    cfgs = [compose_config(ov) for ov in runs]
    folder = sweep_folder(cfgs[0])
    swept = [j for j in range(len(runs[0])) if len({run[j] for run in runs}) > 1]
    points = []
    for i, (ov, cfg) in enumerate(zip(runs, cfgs)):
        out = art.join(folder, str(i))
        with open_dict(cfg):
            cfg.output_dir = out
        label = " ".join(ov[j] for j in swept) or "(defaults)"
        points.append(Point(i, [*ov, f"output_dir={quote(out)}"], label, out))
    return points, cfgs, folder


# ----------------------------------------------------------------------------- one point
def _attempt(work: Callable[[], Any], verbose: bool) -> Dict[str, Any]:
    """``work()`` (a fit, returning a Run) as a result record; errors become one line."""
    started = time.time()
    try:
        run = work()
        out = {"summary": run.summary.to_dict(), "error": "", "exit_code": 0}
    except AutoMLError as exc:
        if verbose:
            raise
        out = {"summary": None, "error": str(exc).strip().splitlines()[0], "exit_code": 2}
    except Exception as exc:  # noqa: BLE001 - one failed point does not end the sweep
        if verbose:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        out = {"summary": None, "error": f"{type(exc).__name__}: {first}", "exit_code": 1}
    out["wall_s"] = time.time() - started
    return out


def search_space_files(cfg: DictConfig) -> Dict[str, str]:
    """automl's own search-space files, ``{name: YAML text}``, for a Ray task whose node may lack
    them (a clone's automl ships to the cluster without its top-level folders); none when the
    config names its own ``search_spaces_dir``."""
    from automl.resources import project_dir

    if cfg.get("search_spaces_dir"):
        return {}
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(project_dir("search_spaces").glob("*.yaml"))}


def fit_point(config: Dict[str, Any], spaces: Dict[str, str], cwd: str) -> Dict[str, Any]:
    """One sweep point in a Ray task: the config composed and checked by the sweep, fitted here;
    the result record with the log lines. Relative paths mean what they mean where the sweep
    was started (``cwd``, when it exists on this node)."""
    from omegaconf import OmegaConf

    from automl.config import Config, project_dir
    from automl.errors import ConfigError
    from automl.runner import fit

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[automl] %(message)s"))
    root = logging.getLogger("automl")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if os.path.isdir(cwd):
        os.chdir(cwd)  # the task's worker serves this task only (max_calls=1)
    cfg = OmegaConf.merge(OmegaConf.structured(Config), config)
    with tempfile.TemporaryDirectory(prefix="automl-spaces-") as tmp:
        try:
            project_dir("search_spaces")
        except ConfigError:  # this node's automl has no search_spaces/: use the sweep's copies
            if spaces:
                for name, text in spaces.items():
                    Path(tmp, name).write_text(text, encoding="utf-8")
                cfg.search_spaces_dir = tmp
                log.info("search spaces: the sweep's copies (this node's automl has no search_spaces/)")
        OmegaConf.set_struct(cfg, True)
        try:
            out = _attempt(lambda: fit(cfg, started=time.time()), verbose=False)
        finally:
            root.removeHandler(handler)
    out["log"] = stream.getvalue()
    return out


def _result(point: Point, out: Dict[str, Any], total: int) -> PointResult:
    res = PointResult(point, out["wall_s"], out.get("summary"), out.get("error", ""), out.get("exit_code", 0))
    row = res.row()
    if res.exit_code:
        log.error("sweep run %d/%d (%s) failed: %s", point.index + 1, total, point.label, row["error"])
    else:
        log.info("sweep run %d/%d (%s) done in %.1f s: %s=%s, %s", point.index + 1, total, point.label,
                 res.wall_s, row["metric"], row["score"], point.output_dir)
    return res


# ----------------------------------------------------------------------------- the three ways
def run_in_turn(points: List[Point], cfgs: List[DictConfig]) -> List[PointResult]:
    """``sweep.parallel=1``: one point after the other, in this process."""
    from automl.runner import fit

    results = []
    for point, cfg in zip(points, cfgs):
        log.info("sweep run %d/%d: %s", point.index + 1, len(points), point.label)
        out = _attempt(lambda cfg=cfg: fit(cfg, started=time.time()), verbose=bool(cfg.verbose))
        results.append(_result(point, out, len(points)))
    return results


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("automl fit:")]
    line = errors[-1] if errors else (lines[-1] if lines else "the process ended without output")
    return line[len("automl fit: "):] if line.startswith("automl fit: ") else line


def _child(cli: Callable[[List[str]], int], args: List[str], log_path: str) -> None:
    """A sweep point's process: `automl fit args` (``cli``: the command's entry point), its output to
    ``log_path``, its exit code kept."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 1
    try:
        code = cli(["fit", *args])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@dataclass
class _Process:
    """A point running as an ``automl fit`` process, its output going to ``log_path``."""

    point: Point
    proc: Any  # multiprocessing.Process
    log_path: str
    started: float

    def output(self) -> str:
        path = Path(self.log_path)
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()


def _start(p: Point, extra: List[str], folder: str, cli: Callable[[List[str]], int]) -> _Process:
    """Start `automl fit` for one point: forked from this process where fork is safe (Linux: no
    second import of automl, whose seconds would count against the point's budget), else spawned."""
    import multiprocessing

    if "://" in folder:  # a local file first, uploaded when the point ends
        fd, log_path = tempfile.mkstemp(suffix=".log")
        os.close(fd)
    else:
        log_path = os.path.join(folder, log_file(p.index))
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    sys.stdout.flush()
    sys.stderr.flush()
    proc = multiprocessing.get_context(method).Process(target=_child, args=(cli, [*p.overrides, *extra], log_path),
                                                       name=f"automl-sweep-{p.index}")
    proc.start()
    return _Process(p, proc, log_path, time.time())


def _finish(run: _Process, folder: str, so: Dict[str, Any]) -> Dict[str, Any]:
    from automl.rundir.summary import read_summary

    run.proc.join()
    text, rc = run.output(), run.proc.exitcode
    if "://" in folder:
        art.write_text(art.join(folder, log_file(run.point.index)), text, so)
        os.unlink(run.log_path)
    out: Dict[str, Any] = {"wall_s": time.time() - run.started, "exit_code": 0 if rc == 0 else 2 if rc == 2 else 1,
                           "error": "" if rc == 0 else _last_error(text)}
    if rc == 0:
        out["summary"] = read_summary(run.point.output_dir, so).to_dict()
    return out


def run_processes(points: List[Point], parallel: int, cfg: DictConfig, folder: str,
                  cli: Callable[[List[str]], int]) -> List[PointResult]:
    """``parallel`` ``automl fit`` processes at a time on this machine, each given its share of
    the cores (unless ``ray.num_cpus`` is set); each one's output in ``<i>.log``."""
    so = dict(cfg.data.storage_options or {})
    extra = [] if cfg.ray.num_cpus else [f"ray.num_cpus={max(1, (os.cpu_count() or 1) // parallel)}"]
    if "://" not in folder:
        os.makedirs(folder, exist_ok=True)
    queue, running, results = list(points), {}, {}
    try:
        while queue or running:
            while queue and len(running) < parallel:
                run = _start(queue.pop(0), extra, folder, cli)
                running[run.point.index] = run
                log.info("sweep run %d/%d started (pid %d): %s", run.point.index + 1, len(points), run.proc.pid,
                         run.point.label)
            time.sleep(0.2)
            for index in [i for i, r in running.items() if not r.proc.is_alive()]:
                run = running.pop(index)
                results[index] = _result(run.point, _finish(run, folder, so), len(points))
    finally:
        for run in running.values():  # interrupted: stop the processes this sweep started
            run.stop()
    return [results[p.index] for p in points]


def run_on_ray(points: List[Point], cfgs: List[DictConfig], parallel: int, folder: str) -> List[PointResult]:
    """``parallel`` Ray tasks at a time on the cluster at ``ray.address``. A task reserves no CPU
    (it mostly waits on its trials, which reserve theirs), so N points never starve their trials."""
    import ray
    from omegaconf import OmegaConf

    from automl.raystart import init_ray

    cfg = cfgs[0]
    so = dict(cfg.data.storage_options or {})
    configs = {p.index: OmegaConf.to_container(c, resolve=True) for p, c in zip(points, cfgs)}
    init_ray(cfg.ray.address, cfg.ray.num_cpus, keep_logs=bool(cfg.verbose))
    spaces = ray.put(search_space_files(cfg))
    task = ray.remote(num_cpus=0, max_calls=1)(fit_point)
    queue, pending, results = list(points), {}, {}
    while queue or pending:
        while queue and len(pending) < parallel:
            p = queue.pop(0)
            pending[task.remote(configs[p.index], spaces, os.getcwd())] = p
            log.info("sweep run %d/%d sent to Ray: %s", p.index + 1, len(points), p.label)
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            p = pending.pop(ref)
            try:
                out = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the task's worker died
                out = {"wall_s": 0.0, "exit_code": 1, "error": f"the Ray task failed: {type(exc).__name__}"}
            if out.get("log"):
                art.write_text(art.join(folder, log_file(p.index)), out.pop("log"), so)
            results[p.index] = _result(p, out, len(points))
    return [results[p.index] for p in points]


def run_sweep(overrides: Sequence[str], cli: Callable[[List[str]], int]) -> SweepOutcome:
    """Plan, run every point (in turn, as processes or as Ray tasks), write the summary table.
    ``cli`` is the `automl` command's entry point (``automl.cli.main``), which a point's process runs."""
    points, cfgs, folder = plan(overrides)
    cfg = cfgs[0]
    parallel = min(int(cfg.sweep.parallel), len(points))
    log.info("sweep of %d runs in %s (%s)", len(points), folder,
             "in turn" if parallel == 1 else f"{parallel} at a time on Ray at {cfg.ray.address}"
             if cfg.ray.address else f"{parallel} processes at a time")
    if parallel == 1:
        results = run_in_turn(points, cfgs)
    elif cfg.ray.address:
        results = run_on_ray(points, cfgs, parallel, folder)
    else:
        results = run_processes(points, parallel, cfg, folder, cli)
    outcome = SweepOutcome(folder, results)
    art.write_text(outcome.summary_url, outcome.frame().to_csv(index=False), dict(cfg.data.storage_options or {}))
    return outcome
