"""Rerun the search from a run's candidate YAML files (candidates_dir=...), edited; and the live view."""
from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import time

import pandas as pd
import pytest
import yaml

from automl.errors import ConfigError
from automl.search.live import LiveView, make_progress
from automl.search.progress import ProgressLogger
from conftest import VENV_BIN, make_binary_frame


def _run_in_terminal(args, timeout: float = 300) -> tuple[int, str]:
    """Run the real `automl` CLI with stdout and stderr on a pseudo-terminal; returns (rc, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(VENV_BIN / "automl"), *args], stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "120"}, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    rc = proc.wait(timeout=30)
    os.close(master)
    return rc, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("rerun")
    data = base / "train.csv"
    make_binary_frame(240, seed=3).to_csv(data, index=False)
    out = base / "first"
    rc, text = _run_in_terminal(["fit", f"data.path={data}", "data.target=y", "mode=candidates_only",
                                 f"output_dir={out}"])
    assert rc == 0, text
    return data, out


@pytest.mark.slow
def test_rerun_from_edited_candidates_honours_the_edits(first_run, tmp_path):
    data, first = first_run
    edited = tmp_path / "candidates"
    edited.mkdir()
    keep = ("dpp0-xgboost", "dpp1-linear")
    originals = sorted(p.stem for p in (first / "candidates").glob("*.yaml"))
    assert set(keep) < set(originals) and "dpp3-random_forest" in originals
    for name in keep:
        (edited / f"{name}.yaml").write_text((first / "candidates" / f"{name}.yaml").read_text())
    spec = yaml.safe_load((edited / "dpp0-xgboost.yaml").read_text())
    spec["space"]["params"]["model.max_depth"].update({"low": 2, "high": 3})  # init (6) and portfolio fall outside
    spec["processing"]["categorical"] = "onehot"
    (edited / "dpp0-xgboost.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "second"
    rc, text = _run_in_terminal(["fit", f"data.path={data}", "data.target=y", f"candidates_dir={edited}",
                                 "budget.max_trials=4", "budget.time_limit_s=90", f"output_dir={out}"])
    assert rc == 0, text
    lb = pd.read_csv(out / "leaderboard.csv")
    trials = lb[lb["candidate"] != "ensemble"]
    assert set(trials["candidate"]) <= set(keep) and len(trials) == 4
    assert "dpp3-random_forest" not in set(lb["candidate"])  # a removed file is a removed candidate
    depths = trials.loc[trials["candidate"] == "dpp0-xgboost", "model.max_depth"].dropna()
    assert len(depths) and depths.between(2, 3).all(), depths.tolist()
    used = yaml.safe_load((out / "candidates" / "dpp0-xgboost.yaml").read_text())
    assert used["processing"]["categorical"] == "onehot"
    assert used["space"]["params"]["model.max_depth"]["high"] == 3
    assert sorted(p.stem for p in (out / "candidates").glob("*.yaml")) == sorted(keep)
    # the live view drew in place on the terminal, in automl's words
    assert "\x1b[" in text and "[automl] trials" in text and "completed" in text and "best" in text


def test_candidates_dir_errors(tmp_path):
    from automl.candidates.from_dir import read_candidate_files

    with pytest.raises(ConfigError, match="is not a folder"):
        read_candidate_files(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="no \\*.yaml"):
        read_candidate_files(str(tmp_path))
    (tmp_path / "a.yaml").write_text("algorithm: xgboost\nspeed: fast\n")
    with pytest.raises(ConfigError, match="unknown key"):
        read_candidate_files(str(tmp_path))
    (tmp_path / "a.yaml").write_text("algorithm: [xgboost\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_candidate_files(str(tmp_path))


def test_warm_start_values_are_moved_into_edited_ranges():
    from automl.candidates.from_dir import clip_warm_start

    space = {"params": {"model.max_depth": {"type": "int", "low": 2, "high": 3, "init": 6},
                        "model.kind": {"type": "categorical", "choices": ["a"], "init": "b"}},
             "portfolio": [{}, {"model.max_depth": 8, "model.kind": "b"}]}
    out = clip_warm_start(space, "c")
    assert out["params"]["model.max_depth"]["init"] == 3 and out["params"]["model.kind"]["init"] == "a"
    assert out["portfolio"] == [{}, {"model.max_depth": 3, "model.kind": "a"}]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_view_redraws_on_a_terminal_and_degrades_to_lines():
    term = _Terminal()
    view = make_progress(10, 60.0, "f1", True, stream=term)
    assert isinstance(view, LiveView)
    view.record({"status": "completed", "candidate": "dpp0-xgboost", "objective": 0.8, "fit_s": 1.2})
    view.draw(force=True)
    view.record({"status": "completed", "candidate": "dpp1-linear", "objective": 0.9, "fit_s": 0.3})
    view.record({"status": "failed", "candidate": "dpp2-mlp", "error": "ValueError: boom"})
    view.draw(force=True)
    text = term.getvalue()
    assert "\x1b[" in text  # the second draw moved the cursor back over the first
    last = "\n".join(view.lines())
    assert "2 completed | 1 failed" in last and "best    f1 0.90000 (dpp1-linear)" in last
    assert "/ 1:00" in last and "dpp2-mlp: failed - ValueError: boom" in last
    assert isinstance(make_progress(10, 60.0, "f1", True, stream=io.StringIO()), ProgressLogger)


def test_candidate_file_with_a_misspelt_setting_is_a_config_error(tmp_path):
    from automl.candidates.from_dir import apply_candidates_dir
    from automl.config import compose_config

    (tmp_path / "dpp0-xgboost.yaml").write_text("algorithm: xgboost\nprocessing: {scal: none}\n")
    cfg = compose_config([f"candidates_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="candidate schema.*scal"):
        apply_candidates_dir(cfg)
    (tmp_path / "dpp0-xgboost.yaml").write_text("algorithm: xgboost\nprocessing: {scale: none}\n")
    apply_candidates_dir(cfg)
    assert list(cfg.candidates) == ["dpp0-xgboost"] and cfg.candidates["dpp0-xgboost"].processing.scale == "none"
