"""`automl monitor`: check a batch (or, with watch=true, each new capture file) against a run's baseline.

Exit codes: 0 no violations, 3 violations (in watch mode: any during the session), 2 usage or
data errors. Results go to ``output`` (default ``<run_dir>/monitoring/<timestamp>/``):
``statistics.json`` (the batch's own), ``model_quality.json`` (with ``ground_truth=URL``:
automl/monitor/quality.py), ``report.html`` and, last, ``constraint_violations.json``;
each is written atomically, and a folder without the violations file is incomplete. An ``output``
that already holds results is refused unless ``overwrite=true``; watch mode reuses its folder
(``watch_state.json``) and adds one timestamped folder per batch, never replacing one.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd

from automl import artifacts as art
from automl.config.commands import compose_command
from automl.errors import ArtifactError, ConfigError, DataError
from automl.monitor.baseline import CONSTRAINTS_FILE, STATISTICS_FILE, build_baseline
from automl.monitor.attribution import live_attributions
from automl.monitor.checks import CheckResult, check_batch, check_statistics, monitoring_config
from automl.monitor.quality import QualityResult, check_settings, run_quality_check, summary_line
from automl.monitor.quality_report import HISTORY_PAGE, QUALITY_FILE, append_history, history_entry
from automl.monitor.quality_report import section as quality_section
from automl.monitor.report import render_report
from automl.monitor.sources import file_info, is_capture, list_data_files, read_batch
from automl.monitor.streamed import streamed_batch
from automl.raystart import init_ray
from automl.redact import redact_text, register_secrets
from automl.rundir.layout import MONITORING_DIR, SUMMARY_FILE, TRAIN_DATA_FILE, is_capture_file_name
from automl.rundir.summary import has_summary, read_summary

log = logging.getLogger(__name__)

EXIT_VIOLATIONS = 3
WATCH_STATE_FILE = "watch_state.json"
VIOLATIONS_FILE = "constraint_violations.json"
BATCH_STATISTICS_FILE = "statistics.json"
REPORT_FILE = "report.html"
RESULT_FILES = (VIOLATIONS_FILE, BATCH_STATISTICS_FILE, REPORT_FILE, QUALITY_FILE)


# ----------------------------------------------------------------------------- baseline
def load_baseline(run_dir: str, constraints_url: Optional[str] = None,
                  storage_options: Optional[Dict[str, Any]] = None) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(statistics, constraints) of a run; a run without ``baseline/`` gets one from its training rows."""
    so = storage_options or {}
    stats_url = art.join(run_dir, STATISTICS_FILE)
    if not has_summary(run_dir, so):
        raise ArtifactError(f"run_dir: {run_dir} is not a finished run folder (no {SUMMARY_FILE}); "
                            f"pass the folder an `automl fit` run wrote")
    if not art.exists(stats_url, so):
        summary = read_summary(run_dir, so)
        train = pd.read_parquet(io.BytesIO(art.read_bytes(art.join(run_dir, TRAIN_DATA_FILE), so)))
        target, types = summary.target, summary.column_types
        stats, cons = build_baseline(train.drop(columns=[target], errors="ignore"), types, target=target)
        art.write_json(stats_url, stats, so)
        art.write_json(art.join(run_dir, CONSTRAINTS_FILE), cons, so)
        log.info("the run had no baseline; built %s/baseline/ from its training rows", run_dir)
    stats = art.read_json(stats_url, so)
    try:
        cons = art.read_json(constraints_url or art.join(run_dir, CONSTRAINTS_FILE), so)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"constraints: {constraints_url or CONSTRAINTS_FILE} is not valid JSON "
                          f"(line {exc.lineno}: {exc.msg}); fix the edit") from None
    monitoring_config(cons)  # fail early on a bad edit
    return stats, cons


# ----------------------------------------------------------------------------- one check
@dataclass
class Outcome:
    result: CheckResult
    output: str
    files: List[str]
    quality: Optional[QualityResult] = None  # with ground_truth=URL


def _timestamp() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H-%M-%S-") + f"{now.microsecond // 1000:03d}Z"


def check_files(files: List[str], stats: Dict[str, Any], cons: Dict[str, Any], output: str,
                meta: Dict[str, Any], webhook: Optional[str] = None,
                storage_options: Optional[Dict[str, Any]] = None,
                ground_truth: Optional[str] = None, history: Optional[str] = None) -> Optional[Outcome]:
    """Check the rows of ``files`` and write the results to ``output``; None when there are no rows.
    With ``ground_truth``, also the model's quality on the labelled rows (``history``: the folder
    whose model_quality_history.json gets this batch, in watch mode)."""
    started = time.time()
    source = files[0] if len(files) == 1 else f"{len(files)} files"
    result = _check_rows(files, stats, cons, source, meta, storage_options)
    if result is None:
        return None
    result.statistics["dataset"]["files"] = files
    so = storage_options or {}
    checked_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    quality, sections = None, []
    if ground_truth:  # model quality: its violations join the data checks' (one file, one exit code)
        quality = run_quality_check(files, ground_truth, str(meta.get("run_dir")), cons, so,
                                    missing_ok=history is not None)  # watch mode: labels may not exist yet
        result.violations.extend(quality.violations)
        art.write_json(art.join(output, QUALITY_FILE), quality.to_dict(), so)
        past = append_history(history, history_entry(quality, checked_at, output), so) if history else None
        sections.append(quality_section(quality, past))
    violations = [v.to_dict() for v in result.violations]
    # each file is written atomically; the violations file comes last and marks the results complete
    art.write_json(art.join(output, BATCH_STATISTICS_FILE), result.statistics, so)
    art.write_text(art.join(output, REPORT_FILE),
                   render_report(result, stats, {**meta, "checked_at": checked_at}, sections), so)
    art.write_json(art.join(output, VIOLATIONS_FILE), {"violations": violations}, so)
    log.info("checked %d rows from %s in %.2f s: %d violation(s); results in %s", result.n_rows, source,
             time.time() - started, len(violations), output)
    if quality is not None and history:  # watch mode (a single check prints the line)
        log.info("%s", summary_line(quality, str(meta.get("metric") or "")))
    if violations and webhook:
        post_webhook(webhook, {"run_dir": redact_text(str(meta.get("run_dir"))),
                               "data": redact_text(str(meta.get("data"))), "output": redact_text(output),
                               "files": [redact_text(f) for f in files], "n_rows": result.n_rows,
                               "checked_at": checked_at, "violations": violations})
    return Outcome(result, output, files, quality)


def _check_rows(files: List[str], stats: Dict[str, Any], cons: Dict[str, Any], source: str, meta: Dict[str, Any],
                storage_options: Optional[Dict[str, Any]]) -> Optional[CheckResult]:
    """The data checks of ``files``: on one pandas frame, or with ``meta["backend"] == "ray"`` streamed
    over the files in Ray tasks (automl/monitor/streamed.py; attributions then explain its sample)."""
    run_dir = str(meta.get("run_dir"))
    if meta.get("backend") == "ray":
        batch = streamed_batch(files, stats, cons, storage_options, source=source)
        if batch.n_rows == 0:
            return None
        attributions = live_attributions(run_dir, cons, batch.sample, storage_options)  # None unless enabled
        return check_statistics(batch.statistics, batch.columns, batch.evidence, stats, cons, attributions)
    df = read_batch(files, storage_options)
    if len(df) == 0:
        return None
    attributions = live_attributions(run_dir, cons, df, storage_options)  # None unless enabled
    return check_batch(df, stats, cons, source=source, attributions=attributions)


def post_webhook(url: str, payload: Dict[str, Any], timeout_s: float = 10.0) -> bool:
    """POST ``payload`` as JSON; a failure is logged, not raised (the exit code still reports)."""
    body = json.dumps(payload, default=str).encode("utf-8")
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "automl-monitor"})
    where = _host_of(url)  # webhook paths often carry a token: log the host only
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            log.info("alert sent to %s (HTTP %d)", where, resp.status)
            return True
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.error("alert.webhook: could not POST to %s: %s", where, getattr(exc, "reason", exc))
        return False


def _host_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


# ----------------------------------------------------------------------------- watch mode
class Watcher:
    """Checks each new data file under ``data`` exactly once (the list is kept in watch_state.json)."""

    def __init__(self, data: str, stats: Dict[str, Any], cons: Dict[str, Any], output: str, interval_s: float,
                 meta: Dict[str, Any], webhook: Optional[str] = None,
                 storage_options: Optional[Dict[str, Any]] = None, ground_truth: Optional[str] = None):
        self.data, self.stats, self.cons, self.output = data, stats, cons, output
        self.ground_truth = ground_truth  # each batch is joined with the labels there when it is checked
        self.interval_s, self.meta, self.webhook, self.so = interval_s, meta, webhook, storage_options or {}
        self.stop = threading.Event()
        self.state_url = art.join(output, WATCH_STATE_FILE)
        self.state: Dict[str, Any] = {"files": {}}
        if art.exists(self.state_url, self.so):
            self.state = art.read_json(self.state_url, self.so)
        self.sizes: Dict[str, int] = {}
        self.n_batches = self.n_files = self.n_violations = 0

    def _ready(self, url: str, now: float) -> bool:
        """Capture files appear whole (the endpoint writes each at once); any other file is ready
        when its size held still between two polls or it was last modified interval_s ago."""
        name = url.rsplit("/", 1)[-1]
        if is_capture_file_name(name):
            return True
        try:
            info = file_info(url, self.so)
        except (OSError, ValueError):
            return False
        stable = self.sizes.get(url) == info["size"]
        self.sizes[url] = info["size"]
        old = info["mtime"] is not None and now - info["mtime"] >= self.interval_s
        return info["size"] > 0 and (stable or old)

    def poll(self) -> Optional[Outcome]:
        """One pass: check the files that are new and complete (together, as one batch)."""
        now = time.time()
        done = self.state["files"]
        mine = self.output.rstrip("/") + "/"  # results written inside the watched folder are not data
        pending = [u for u in list_data_files(self.data, self.so, allow_empty=True)
                   if u not in done and not u.startswith(mine)]
        ready = [u for u in pending if self._ready(u, now)]
        if not ready:
            return None
        out = art.join(self.output, _timestamp())
        try:
            outcome = check_files(ready, self.stats, self.cons, out, self.meta, self.webhook, self.so,
                                  ground_truth=self.ground_truth, history=self.output)
            status = "checked" if outcome else "no rows"
        except Exception as exc:  # a bad file must not stop the watcher; it is recorded, not retried
            log.warning("skipping %d file(s) that cannot be checked: %s: %s", len(ready), type(exc).__name__, exc)
            outcome, status = None, f"error: {type(exc).__name__}: {exc}"
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        for u in ready:
            done[u] = {"size": self.sizes.get(u), "checked_at": stamp, "status": status,
                       "result": out if outcome else None}
        art.write_json(self.state_url, self.state, self.so)
        self.n_files += len(ready)
        if outcome:
            self.n_batches += 1
            self.n_violations += len(outcome.result.violations)
        return outcome

    def run(self) -> int:
        log.info("watching %s every %g s (stop with Ctrl-C or SIGTERM); results under %s",
                 self.data, self.interval_s, self.output)
        while not self.stop.is_set():
            try:
                self.poll()
            except (DataError, ArtifactError, OSError) as exc:
                log.error("watch: %s; retrying in %g s", exc, self.interval_s)
            self.stop.wait(self.interval_s)
        return EXIT_VIOLATIONS if self.n_violations else 0


# ----------------------------------------------------------------------------- the command
def cmd_monitor(args: List[str]) -> int:
    """`automl monitor run_dir=DIR data=URL [output=URL] [alert.webhook=URL] [watch=true interval_s=N]
    [predict.backend=ray [ray.address=ADDR]]`."""
    opts = compose_command("monitor", args)  # typed and checked: MonitorConfig
    run_dir, data, webhook, watch = opts.run_dir.rstrip("/"), opts.data, opts.alert.webhook, opts.watch
    if webhook is not None:
        register_secrets([webhook])  # never shown in logs
    if opts.output and not watch:
        check_output(opts.output, data, opts.overwrite)
    if "://" not in run_dir:
        run_dir = str(Path(run_dir).resolve())
    stats, cons = load_baseline(run_dir, opts.constraints)
    meta = {"run_dir": run_dir, "data": data, "backend": opts.predict.backend}
    if opts.predict.backend == "ray":
        init_ray(opts.ray.address, None)  # the data checks stream over the files in Ray tasks
    ground_truth = opts.ground_truth
    if ground_truth:
        check_settings(cons)  # a bad edit of the model-quality settings fails before any data is read
        meta["metric"] = read_summary(run_dir).metric
    if watch:
        output = opts.output or art.join(run_dir, MONITORING_DIR)
        if "://" not in output:
            output = str(Path(output).resolve())
        watcher = Watcher(data, stats, cons, output, opts.interval_s, meta, webhook, ground_truth=ground_truth)
        previous = _on_sigterm(watcher.stop)
        try:
            code = watcher.run()
        except KeyboardInterrupt:
            code = EXIT_VIOLATIONS if watcher.n_violations else 0
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        quality = f"; model quality over the batches: {art.join(output, HISTORY_PAGE)}" if ground_truth else ""
        print(f"watch stopped: checked {watcher.n_files} file(s) in {watcher.n_batches} batch(es); "
              f"{watcher.n_violations} violation(s); results under {output}{quality}")
        return code
    output = opts.output or art.join(run_dir, MONITORING_DIR, _timestamp())
    files = list_data_files(data)
    if ground_truth:
        require_capture(files, data)
    outcome = check_files(files, stats, cons, output, meta, webhook, ground_truth=ground_truth)
    if outcome is None:
        raise DataError(f"data: {data} has no rows to check; give a table or capture files with rows")
    if outcome.quality is not None:
        print(summary_line(outcome.quality, meta["metric"]))
    vs = outcome.result.violations
    if not vs:
        print(f"no violations in {outcome.result.n_rows} rows | report: {art.join(output, REPORT_FILE)}")
        return 0
    listed = "; ".join(f"{v.feature_name}: {v.constraint_check_type}" for v in vs)
    print(f"{len(vs)} violation(s) in {outcome.result.n_rows} rows: {listed} | report: {art.join(output, REPORT_FILE)}")
    return EXIT_VIOLATIONS


def require_capture(files: List[str], data: str) -> None:
    """ground_truth joins on inference ids, which only the endpoint's capture files hold."""
    tables = [f for f in files if not is_capture(f)]
    if tables:
        raise ConfigError(f"ground_truth needs data= the capture files of `automl serve` (capture.enabled=true), "
                          f"which hold the inference ids and predictions; {tables[0]} is not one")


def check_output(output: str, data: str, overwrite: bool = False,
                 storage_options: Optional[Dict[str, Any]] = None) -> None:
    """Refuse a results folder that is the data file, or holds results of an earlier check (unless
    ``overwrite``). Watch mode is exempt: it resumes from its folder and adds timestamped ones."""
    so = storage_options or {}
    try:
        _, out_proto, out_path = art.locate(output, so)
        data_fs, data_proto, data_path = art.locate(data, so)
        if (out_proto, out_path) == (data_proto, data_path) and data_fs.isfile(data_path):
            raise ConfigError(f"output {output} is the data file; give a folder for the results, "
                              f"e.g. output=monitor-results/")
        earlier = [name for name in RESULT_FILES if art.exists(art.join(output, name), so)]
    except (OSError, ImportError) as exc:
        raise DataError(f"output: cannot check {output}: {type(exc).__name__}: {exc}") from None
    if earlier and not overwrite:
        raise ConfigError(f"output {output} already holds the results of a check ({', '.join(earlier)}); "
                          f"pass overwrite=true to replace them, or choose another output folder")


def _on_sigterm(stop: threading.Event):
    """Make SIGTERM stop the watch loop cleanly (only possible from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda *_: stop.set())
