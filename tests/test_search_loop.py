"""The search loop (search/loop.py) over its two executors: forked workers and Ray Tune give
the same trial events, and every finished trial is persisted exactly once."""
import collections
import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import automl.search.loop as loop_module
from automl.candidates.generate import Candidate
from automl.search.events import CRASHED, ENDED, FINISHED, STARTED, STOPPED, TICK, TrialEvent
from automl.search.loop import SearchLoop
from automl.search.resume import begin_run
from automl.search.trial import TrialContext, make_folds

KNN = Candidate("dpp6-knn", "knn", {"categorical": "onehot", "scale": "standard"},
                {"params": {"model.n_neighbors": {"type": "int", "low": 1, "high": 15, "init": 5}},
                 "fixed": {}, "portfolio": [{}]})


class Events:
    """A sink that keeps every event."""

    def __init__(self):
        self.events = []

    def on_event(self, event):
        self.events.append(event)


def _ctx(out: str) -> TrialContext:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    y = (X["a"] + rng.normal(scale=0.5, size=80) > 0).astype(int).to_numpy()
    return TrialContext(X=X, y=y, folds=make_folds(y, "binary", 3, 50_000, 0.2, 0),
                        column_types={c: "numeric" for c in X}, candidates={KNN.name: KNN},
                        problem_type="binary", metric="auc", n_classes=2, seed=0, trial_time_limit_s=60,
                        output_dir=out)


def _persist_spy(monkeypatch):
    """Count what reaches the run folder through the loop (the real writer still runs)."""
    written = collections.Counter()
    real = loop_module.persist_row

    def spy(output_dir, row, storage_options, state):
        written[row["trial_id"]] += 1
        real(output_dir, row, storage_options, state)

    monkeypatch.setattr(loop_module, "persist_row", spy)
    return written


def _search(executor, tmp_path, monkeypatch, n=3):
    out = str(tmp_path / "run")
    state = begin_run({"resume": False}, out, {}, time.time())
    written, sink = _persist_spy(monkeypatch), Events()
    rows = SearchLoop(_ctx(out), [KNN], greater_is_better=True, max_trials=n, time_budget_s=120,
                      callbacks=[sink], state=state).run(executor)
    return rows, written, sink.events, state, tmp_path / "run"


def _shape(events):
    """Each trial's event kinds in order, and the search's own events (the executor's ticks aside)."""
    per_trial = collections.defaultdict(list)
    for e in events:
        if e.trial_id:
            per_trial[e.trial_id].append(e.kind)
    return sorted(per_trial.values()), [e.kind for e in events if not e.trial_id and e.kind != TICK]


def _check_one_search(rows, written, events, state, run):
    ids = [r["trial_id"] for r in rows]
    assert len(ids) == 3 == len(set(ids)) and all(r["status"] == "completed" for r in rows), rows
    assert dict(written) == {i: 1 for i in ids}  # each finished trial persisted once
    on_disk = {p.parent.name: json.loads(p.read_text()) for p in run.glob("trials/*/result.json")}
    assert set(on_disk) == set(ids) and all(on_disk[r["trial_id"]]["objective"] == r["objective"] for r in rows)
    assert state.n_trials == 3 and json.loads((run / "run_state.json").read_text())["n_trials"] == 3
    assert [e.trial_id for e in events if e.kind == FINISHED] == ids
    assert events[-1].kind == ENDED


@pytest.mark.slow
def test_forked_workers_and_ray_tune_emit_the_same_events_and_persist_each_trial_once(tmp_path, monkeypatch):
    from automl.raystart import init_ray
    from automl.search.local import ForkExecutor
    from automl.search.tuner import TuneExecutor

    local = _search(ForkExecutor(1), tmp_path / "local", monkeypatch)
    _check_one_search(*local)
    init_ray(None, 1)
    tune = _search(TuneExecutor(1.0), tmp_path / "tune", monkeypatch)
    _check_one_search(*tune)
    assert _shape(local[2]) == _shape(tune[2]) == ([[STARTED, FINISHED]] * 3, [ENDED])
    # The same leaderboard columns (Tune adds its own bookkeeping, e.g. node_ip, as it always has).
    assert all(set(a) <= set(b) for a, b in zip(local[0], tune[0])), set(tune[0][0]) ^ set(local[0][0])


def test_a_trial_reported_twice_is_persisted_once_and_a_stopped_one_is_kept_unpersisted(tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    state = begin_run({"resume": False}, out, {}, time.time())
    written, sink = _persist_spy(monkeypatch), Events()
    loop = SearchLoop(_ctx(out), [KNN], greater_is_better=True, max_trials=3, time_budget_s=60,
                      callbacks=[sink], state=state)
    done = loop.row("aaaa0001", {"candidate": KNN.name}, {"candidate": KNN.name, "status": "completed",
                                                          "objective": 0.7})
    loop.emit(TrialEvent(STARTED, "aaaa0001", running=1))
    loop.emit(TrialEvent(FINISHED, "aaaa0001", row=done))
    # Tune may still report an error for a trial whose result it has: shown, not persisted again.
    loop.emit(TrialEvent(CRASHED, "aaaa0001", reason="actor died", row=None))
    loop.emit(TrialEvent(FINISHED, "aaaa0001", row=dict(done, objective=0.1)))
    loop.emit(TrialEvent(STOPPED, "aaaa0001", row={"trial_id": "aaaa0001", "status": "stopped"}))
    loop.emit(TrialEvent(STOPPED, "bbbb0002", row={"trial_id": "bbbb0002", "status": "stopped"}))
    assert dict(written) == {"aaaa0001": 1} and state.n_trials == 1
    assert loop.rows == {"aaaa0001": done} and [r["trial_id"] for r in loop.unfinished] == ["bbbb0002"]
    assert not (tmp_path / "run" / "trials" / "bbbb0002").exists()
    assert [e.kind for e in sink.events] == [STARTED, FINISHED, CRASHED, FINISHED, STOPPED, STOPPED]


def test_the_search_without_ray_and_its_progress_never_import_ray():
    code = ("import sys, automl.search.local, automl.search.live, automl.search.progress, automl.raystart; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
