"""A quiet, honest terminal (issue 17, point 5): off a terminal the search prints a line on each
new best and otherwise at most one every 5 s; trials stopped by the clock or by ASHA are counted
apart from failed ones; Ray's own messages go to the run folder's logs/ray.log, not to the
terminal; on a terminal rich draws the live view."""
from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest

from conftest import automl_cli
from automl.search.events import CRASHED, ENDED, FINISHED, PRUNED, STARTED, STOPPED, TrialEvent, outcome
from automl.search.live import LiveView, make_progress
from automl.search.progress import LINE_EVERY_S, ProgressLogger, Tally, line_gaps


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """Keeps the progress log's lines (the automl logger may not propagate to pytest's)."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def progress_lines():
    handler, logger = Lines(), logging.getLogger("automl.progress")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(old)


def _finished(trial_id: str, status: str = "completed", objective: float = 0.5, candidate: str = "dpp1-linear",
              error: str = "") -> TrialEvent:
    row = {"trial_id": trial_id, "candidate": candidate, "status": status, "objective": objective, "error": error,
           "fit_s": 0.1}
    return TrialEvent(FINISHED, trial_id, {"candidate": candidate}, row, running=2)


def test_off_a_terminal_a_line_comes_on_each_new_best_and_otherwise_at_most_every_5_s(progress_lines):
    clock = Clock()
    view = ProgressLogger(250, 60.0, "accuracy", True, clock=clock)
    bests = {0: 0.80, 3: 0.85, 40: 0.90}  # trial number -> a new best score
    for i in range(100):  # 100 trials in 20 s: one every 0.2 s, as the digits demo on 2 cores
        clock.now += 0.2
        view.on_event(_finished(f"t{i}", objective=bests.get(i, 0.5)))
    view.on_event(TrialEvent(ENDED))
    best_lines = [line for line in progress_lines if "best accuracy" in line]
    assert progress_lines[0].startswith("trials: 1 done, 0 stopped, 0 failed")  # the first trial: a new best
    assert len(best_lines) == len(progress_lines) <= len(bests) + 20 / LINE_EVERY_S
    assert len(progress_lines) >= len(bests)
    assert "best accuracy 0.90000 (dpp1-linear)" in progress_lines[-1]
    assert any("best accuracy 0.85000" in line for line in progress_lines)  # 0.6 s after a line: shown next


def test_stopped_trials_are_counted_apart_from_failed_ones(progress_lines):
    clock = Clock()
    view = ProgressLogger(10, 60.0, "auc", True, clock=clock)
    view.on_event(_finished("a", objective=0.7))
    view.on_event(_finished("b", status="stopped", error="stopped at the search deadline after 1 of 5 folds"))
    view.on_event(_finished("c", status="timeout", error="trial would exceed its time limit of 3 s"))
    view.on_event(TrialEvent(PRUNED, "d", {}, {"trial_id": "d", "status": "pruned", "error": "stopped early by ASHA"}))
    view.on_event(TrialEvent(CRASHED, "e", {"candidate": "dpp2-mlp"}, None, "ValueError: boom", 1))
    view.on_event(TrialEvent(CRASHED, "f", {"candidate": "dpp2-mlp"}, None, "ValueError: boom", 1))
    view.on_event(TrialEvent(CRASHED, "a", {}, None, "actor died after its result", 0))  # already counted
    view.on_event(TrialEvent(STOPPED, "g", {}, {"trial_id": "g", "status": "stopped"}))
    clock.now += line_gaps(60.0)[0]  # the plain-line gap of a 60 s budget
    view.on_event(_finished("h", objective=0.6))
    assert progress_lines[-1].startswith("trials: 2 done, 4 stopped, 2 failed")
    errors = [line for line in progress_lines if "failed:" in line]
    assert errors == ["trial e (dpp2-mlp) failed: ValueError: boom"]  # the same error is shown once, then counted
    assert [outcome(s) for s in ("completed", "stopped", "timeout", "pruned", "failed", None)] == [
        "completed", "stopped", "stopped", "stopped", "failed", "failed"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_rich_draws_the_live_view_with_stopped_trials_apart():
    term = _Terminal()
    view = make_progress(10, 60.0, "f1", True, stream=term)
    assert isinstance(view, LiveView)
    view.on_event(TrialEvent(STARTED, "a", {"candidate": "dpp1-linear"}, running=2))
    view.on_event(_finished("a", objective=0.9))
    view.on_event(_finished("b", status="stopped", candidate="dpp0-xgboost",
                            error="stopped at the search deadline after 2 of 5 folds"))
    view.on_event(TrialEvent(ENDED))
    text = term.getvalue()
    assert "\x1b[?25l" in text and "\x1b[?25h" in text  # rich hid the cursor while drawing and gave it back
    assert "1 completed | 0 failed | 1 stopped" in text and "f1 0.90000 (dpp1-linear)" in text
    assert "dpp0-xgboost: stopped - stopped at the search deadline" in text
    assert view._live is None  # the terminal is given back at the end


def test_the_tally_counts_each_trial_once_and_keeps_the_best():
    tally = Tally(greater_is_better=False)
    assert tally.add(_finished("a", objective=3.0)) == ("completed", True)
    assert tally.add(_finished("b", objective=2.0)) == ("completed", True)
    assert tally.add(_finished("c", objective=2.5)) == ("completed", False)
    assert tally.add(_finished("b", objective=1.0)) == ("", False)  # reported twice: counted once
    assert (tally.done, tally.best, tally.count("completed")) == (3, 2.0, 3)


def test_ray_messages_go_to_the_file_and_not_to_the_terminal(tmp_path, capfd):
    from ray._private import worker as ray_worker

    from automl.raystart import ray_messages_captured, send_ray_messages

    path = tmp_path / "ray.log"
    try:
        assert send_ray_messages(str(path), to_terminal=False)
        assert ray_messages_captured()
        logging.getLogger("ray.tune").warning("a message from Tune")
        ray_worker.print_worker_logs({"lines": ["A worker died or was killed"], "pid": "raylet", "is_err": False},
                                     sys.stdout)
        ray_worker.print_worker_logs({"lines": ["ConvergenceWarning: lbfgs failed"], "pid": 42, "is_err": True,
                                      "actor_name": "ImplicitFunc"}, sys.stderr)
        out, err = capfd.readouterr()
        assert "Tune" not in out + err and "worker died" not in out + err and "lbfgs" not in out + err
        send_ray_messages(str(path), to_terminal=True)  # verbose=true: the terminal too
        ray_worker.print_worker_logs({"lines": ["shown with verbose"], "pid": 7, "is_err": False}, sys.stdout)
        assert "shown with verbose" in capfd.readouterr().out
    finally:
        send_ray_messages(None)
    text = path.read_text()
    assert "a message from Tune" in text and "(pid=raylet) A worker died or was killed" in text
    assert "(ImplicitFunc pid=42, stderr) ConvergenceWarning: lbfgs failed" in text
    assert "(pid=7) shown with verbose" in text and not ray_messages_captured()


@pytest.mark.slow
def test_the_digits_demo_off_a_terminal_prints_at_most_20_lines_and_keeps_rays_messages_in_the_run(tmp_path):
    """The README's demo (`automl fit`, the digits), on Ray, with a 20 s budget, through pipes."""
    res = automl_cli("fit", "budget.time_limit_s=20", "search.executor=ray", f"output_dir={tmp_path}/run",
                     cwd=str(tmp_path), timeout=240)
    lines = (res.stdout + res.stderr).splitlines()
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(lines) <= 20, "\n".join(lines)
    foreign = [line for line in lines if not line.startswith(("[automl] ", "run folder: "))]
    rays = [line for line in foreign if any(w in line.lower() for w in ("ray", "pid=", "tune", "trial", "worker"))]
    assert not rays, foreign  # nothing of Ray's: its messages are in logs/ray.log
    assert (tmp_path / "run" / "logs" / "ray.log").is_file()
    assert (tmp_path / "run" / "model.skops").is_file()


def test_the_quiet_progress_never_imports_ray():
    code = ("import sys, automl.search.progress, automl.search.live, automl.search.events; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.') or m == 'rich'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
