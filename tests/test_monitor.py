"""`automl monitor`: the baseline, every check and its threshold edge, the credit acceptance
matrix (files and data capture), exit codes, the webhook and watch mode through the real CLI."""
from __future__ import annotations

import copy
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import pandas as pd
import pytest

import automl
from automl.cli import main
from automl.data.types import infer_column_types
from automl.errors import ConfigError
from automl.monitor import build_baseline, check_batch, write_baseline
from automl.monitor.sources import list_data_files, read_batch
from conftest import SHARED, VENV_BIN, automl_cli, free_port

CREDIT = SHARED / "credit"
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty", 6: "sixty", 7: "seventy", 8: "eighty", 9: "ninety"}


def words(n: int) -> str:
    """33 -> 'thirty-three'."""
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def found(result) -> List[Tuple[str, str]]:
    return [(v.feature_name, v.constraint_check_type) for v in result.violations]


# ----------------------------------------------------------------------------- credit data
@pytest.fixture(scope="module")
def credit() -> Dict[str, pd.DataFrame]:
    return {"train": pd.read_csv(CREDIT / "train.csv"), "test": pd.read_csv(CREDIT / "test.csv")}


@pytest.fixture(scope="module")
def credit_baseline(credit):
    X = credit["train"].drop(columns=["Status"])
    return build_baseline(X, infer_column_types(X), target="Status")


def _income_x3(df, rng):
    df["Income"] = df["Income"] * 3
    return df


def _drop_job(df, rng):
    return df.drop(columns=["Job"])


def _age_words(df, rng):
    df["Age"] = [words(int(a)) for a in df["Age"]]
    return df


def _new_home(df, rng):
    rows = rng.choice(len(df), int(round(0.3 * len(df))), replace=False)
    df.loc[rows, "Home"] = "boat"
    return df


def _assets_missing(df, rng):
    rows = rng.choice(len(df), int(round(0.4 * len(df))), replace=False)
    df.loc[rows, "Assets"] = np.nan
    return df


def _extra_column(df, rng):
    df["Channel"] = rng.choice(["web", "branch"], size=len(df))
    return df


DRIFTS: Dict[str, Tuple[Callable, Tuple[str, str]]] = {
    "income_x3": (_income_x3, ("Income", "baseline_drift_check")),
    "job_dropped": (_drop_job, ("Job", "missing_column_check")),
    "age_as_words": (_age_words, ("Age", "data_type_check")),
    "new_home_category": (_new_home, ("Home", "categorical_values_check")),
    "assets_40pct_missing": (_assets_missing, ("Assets", "completeness_check")),
    "extra_column": (_extra_column, ("Channel", "extra_column_check")),
}


def drifted(test: pd.DataFrame, name: str, seed: int = 0) -> pd.DataFrame:
    return DRIFTS[name][0](test.copy(), np.random.default_rng(seed))


def write_capture(folder: Path, df: pd.DataFrame, n_files: int = 3, per_record: int = 40, tag: str = "a") -> List[Path]:
    """``df``'s rows as capture files in the endpoint's format (instances without the target)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = df.drop(columns=["Status"], errors="ignore").astype(object)
    rows = rows.where(pd.notna(rows), None).to_dict(orient="records")
    paths = []
    for f, chunk in enumerate(np.array_split(np.arange(len(rows)), n_files)):
        lines = []
        for r, part in enumerate(np.array_split(chunk, max(1, len(chunk) // per_record))):
            inst = [rows[i] for i in part]
            lines.append(json.dumps({"request_id": f"{tag}{f}-{r}", "timestamp": "2026-01-01T00:00:00.000+00:00",
                                     "trial_id": "t0", "content_type": "application/json", "instances": inst,
                                     "predictions": [{"predicted_label": "good"} for _ in inst]}))
        path = folder / f"capture-20260101T0000{f:02d}-{os.getpid()}-{tag}{f:05d}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def test_baseline_statistics_and_constraints(credit_baseline):
    stats, cons = credit_baseline
    json.dumps(stats, allow_nan=False), json.dumps(cons, allow_nan=False)
    inc = stats["features"]["Income"]
    assert inc["inferred_type"] == "numeric" and inc["count"] == 3340 and inc["missing"] == 271
    num = inc["numeric"]
    assert num["min"] == 6 and num["max"] == 959 and 100 < num["mean"] < 200 and num["std"] > 0
    assert num["quantiles"]["p01"] <= num["quantiles"]["p50"] <= num["quantiles"]["p99"]
    hist = num["histogram"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1 and sum(hist["counts"]) == inc["present"]
    home = stats["features"]["Home"]
    assert home["inferred_type"] == "categorical" and home["categorical"]["distinct"] == 6
    assert home["categorical"]["frequencies"]["owner"] > home["categorical"]["frequencies"]["rent"]
    assert "Status" not in stats["features"] and cons["target"] == "Status"
    assert cons["features"]["Income"] == {"type": "numeric", "completeness": pytest.approx(1 - 271 / 3340),
                                          "invalid_fraction": 0.0, "is_non_negative": True}
    assert cons["features"]["Home"]["domain"] == ["ignore", "other", "owner", "parents", "priv", "rent"]
    assert cons["features"]["Records"]["type"] == "boolean"
    assert cons["monitoring"]["baseline_drift_check"]["numeric_method"] == "psi"


def test_credit_test_set_passes(credit, credit_baseline):
    assert found(check_batch(credit["test"], *credit_baseline)) == []


@pytest.mark.parametrize("n", [25, 50, 100, 250, 500])
def test_fair_samples_of_test_rows_do_not_alarm(credit, credit_baseline, n):
    for seed in range(8):
        sample = credit["test"].sample(n, random_state=seed)
        assert found(check_batch(sample, *credit_baseline)) == [], (n, seed)


@pytest.mark.parametrize("name", list(DRIFTS))
def test_credit_drift_reports_exactly_the_broken_check(credit, credit_baseline, name):
    assert found(check_batch(drifted(credit["test"], name), *credit_baseline)) == [DRIFTS[name][1]]


@pytest.mark.parametrize("name", list(DRIFTS))
def test_credit_drift_through_data_capture(tmp_path, credit, credit_baseline, name):
    write_capture(tmp_path, drifted(credit["test"], name))
    (tmp_path / f".capture-half-written.jsonl.tmp").write_text("{not json")
    files = list_data_files(str(tmp_path))
    assert len(files) == 3
    batch = read_batch(files)
    assert len(batch) == len(credit["test"])
    assert found(check_batch(batch, *credit_baseline)) == [DRIFTS[name][1]]


def test_clean_capture_passes(tmp_path, credit, credit_baseline):
    write_capture(tmp_path, credit["test"])
    assert found(check_batch(read_batch(list_data_files(str(tmp_path))), *credit_baseline)) == []


# ----------------------------------------------------------------------------- threshold edges
def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"row_id": np.arange(n), "num": rng.uniform(0, 100, n),
                         "cat": rng.choice(["a", "b", "c", "d"], n), "flag": rng.choice(["yes", "no"], n),
                         "when": (pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"))
                         .strftime("%Y-%m-%d"), "y": rng.choice([0, 1], n)})


@pytest.fixture(scope="module")
def synth():
    train = _frame(4000, 0)
    X = train.drop(columns=["y"])
    stats, cons = build_baseline(X, infer_column_types(X), target="y")
    assert cons["known_non_feature_columns"] == ["row_id"]
    return stats, cons


def _set(cons, check: str, **values):
    out = copy.deepcopy(cons)
    out["monitoring"][check].update(values)
    return out


def _with(batch: pd.DataFrame, col: str, share: float, value, seed: int = 1) -> pd.DataFrame:
    batch = batch.copy()
    rows = np.random.default_rng(seed).choice(len(batch), int(round(share * len(batch))), replace=False)
    batch[col] = batch[col].astype(object)
    batch.loc[rows, col] = value
    return batch


def test_same_distribution_passes(synth):
    assert found(check_batch(_frame(10000, 7), *synth)) == []


@pytest.mark.parametrize("share,expected", [(0.09, []), (0.115, [("num", "completeness_check")])])
def test_completeness_threshold_edge(synth, share, expected):
    assert found(check_batch(_with(_frame(10000, 2), "num", share, np.nan), *synth)) == expected


def test_small_noisy_batch_does_not_alarm_but_a_clear_one_does(synth):
    batch = _frame(20, 3)
    assert found(check_batch(_with(batch, "num", 0.15, np.nan), *synth)) == []  # 3 of 20: chance
    assert found(check_batch(_with(batch, "num", 0.6, np.nan), *synth)) == [("num", "completeness_check")]


@pytest.mark.parametrize("share,expected", [(0.04, []), (0.065, [("num", "data_type_check")])])
def test_data_type_threshold_edge(synth, share, expected):
    result = check_batch(_with(_frame(10000, 4), "num", share, "n/a-value"), *synth)
    assert found(result) == expected
    if expected:
        assert "'n/a-value'" in result.violations[0].description


def test_negative_values_break_a_non_negative_column(synth):
    batch = _frame(10000, 5)
    batch.loc[: 999, "num"] = -batch.loc[: 999, "num"] - 1
    assert found(check_batch(batch, *synth)) == [("num", "data_type_check")]
    loose = copy.deepcopy(synth[1])
    loose["features"]["num"]["is_non_negative"] = False  # a user edit of constraints.json
    assert found(check_batch(batch, synth[0], loose)) == []


def test_boolean_values_that_are_not_booleans(synth):
    batch = _with(_frame(10000, 6), "flag", 0.1, "maybe")
    assert found(check_batch(batch, *synth)) == [("flag", "data_type_check")]
    assert found(check_batch(_with(_frame(10000, 6), "flag", 0.1, "TRUE"), *synth)) == []


def test_a_string_where_a_date_was_expected(synth):
    assert synth[1]["features"]["when"]["type"] == "datetime"
    result = check_batch(_with(_frame(5000, 15), "when", 0.1, "next tuesday"), *synth)
    assert found(result) == [("when", "data_type_check")]
    assert "'next tuesday'" in result.violations[0].description


@pytest.mark.parametrize("share,expected", [(0.04, []), (0.065, [("cat", "categorical_values_check")])])
def test_categorical_values_threshold_edge(synth, share, expected):
    assert found(check_batch(_with(_frame(10000, 8), "cat", share, "zz"), *synth)) == expected


def test_domain_edit_accepts_new_values(synth):
    cons = copy.deepcopy(synth[1])
    cons["features"]["cat"]["domain"].append("zz")
    assert found(check_batch(_with(_frame(10000, 8), "cat", 0.2, "zz"), synth[0], cons)) == []


@pytest.mark.parametrize("method", ["psi", "ks", "linf"])
def test_numeric_drift_threshold_edge(synth, method):
    stats, cons = synth
    batch = _frame(3000, 9)
    batch["num"] = batch["num"] * 0.8 + 12  # squeezed and shifted, same range
    probe = check_batch(batch, stats, _set(cons, "baseline_drift_check", numeric_method=method, numeric_threshold=100))
    d = probe.distances["num"]["distance"]
    assert d > 0.05
    above = _set(cons, "baseline_drift_check", numeric_method=method, numeric_threshold=d * 0.97)
    below = _set(cons, "baseline_drift_check", numeric_method=method, numeric_threshold=d * 1.03)
    assert found(check_batch(batch, stats, above)) == [("num", "baseline_drift_check")]
    assert found(check_batch(batch, stats, below)) == []


@pytest.mark.parametrize("method", ["linf", "psi"])
def test_categorical_drift_threshold_edge(synth, method):
    stats, cons = synth
    rng = np.random.default_rng(10)
    batch = _frame(3000, 10)
    batch["cat"] = rng.choice(["a", "b", "c", "d"], len(batch), p=[0.45, 0.25, 0.2, 0.1])
    probe = check_batch(batch, stats, _set(cons, "baseline_drift_check", categorical_method=method,
                                           categorical_threshold=100))
    d = probe.distances["cat"]["distance"]
    above = _set(cons, "baseline_drift_check", categorical_method=method, categorical_threshold=d * 0.97)
    below = _set(cons, "baseline_drift_check", categorical_method=method, categorical_threshold=d * 1.03)
    assert found(check_batch(batch, stats, above)) == [("cat", "baseline_drift_check")]
    assert found(check_batch(batch, stats, below)) == []


def test_default_drift_threshold_catches_a_clear_shift_only(synth):
    batch = _frame(2000, 11)
    assert found(check_batch(batch, *synth)) == []
    batch["num"] = batch["num"] + 40
    assert found(check_batch(batch, *synth)) == [("num", "baseline_drift_check")]


def test_missing_and_extra_columns(synth):
    batch = _frame(500, 12).drop(columns=["cat"])
    batch["new_col"] = 1.0
    assert found(check_batch(batch, *synth)) == [("cat", "missing_column_check"), ("new_col", "extra_column_check")]
    # the target and the ID-like column the fit set aside are known, not extra
    assert found(check_batch(_frame(500, 12), *synth)) == []
    off = _set(_set(synth[1], "missing_column_check", enabled=False), "extra_column_check", enabled=False)
    assert found(check_batch(batch, synth[0], off)) == []


@pytest.mark.parametrize("edit,match", [
    ({"no_such_check": {}}, "unknown monitoring key 'no_such_check'"),
    ({"completeness_check": {"max_missing": 0.2}}, "monitoring.completeness_check.max_missing"),
    ({"baseline_drift_check": {"numeric_method": "wasserstein"}}, "numeric_method"),
    ({"significance_level": 2}, "significance_level"),
])
def test_bad_threshold_edits_are_config_errors(synth, edit, match):
    cons = copy.deepcopy(synth[1])
    cons["monitoring"].update(edit)
    with pytest.raises(ConfigError, match=match):
        check_batch(_frame(50, 13), synth[0], cons)


def test_write_baseline_never_fails_the_fit(caplog):
    X = _frame(50, 14)
    assert write_baseline("nosuchprotocol://bucket/run", X, infer_column_types(X), {}) is False
    assert "could not write the monitoring baseline" in caplog.text


# ----------------------------------------------------------------------------- the real CLI
@pytest.fixture(scope="module")
def credit_run(tmp_path_factory) -> str:
    """A real fit on the credit training rows (mode=candidates_only: the baseline, no search)."""
    out = tmp_path_factory.mktemp("credit_run")
    run = automl.fit(str(CREDIT / "train.csv"), target="Status", output_dir=str(out), mode="candidates_only")
    return run.run_dir


def test_fit_writes_the_baseline(credit_run, credit_baseline):
    stats = json.loads((Path(credit_run) / "baseline" / "statistics.json").read_text())
    cons = json.loads((Path(credit_run) / "baseline" / "constraints.json").read_text())
    income = credit_baseline[0]["features"]["Income"]["numeric"]
    assert stats["features"]["Income"]["numeric"]["histogram"] == income["histogram"]
    assert cons["features"] == credit_baseline[1]["features"]


@pytest.mark.slow
def test_cli_exit_codes_and_outputs(tmp_path, credit_run, credit, capsys):
    ok = automl_cli("monitor", f"run_dir={credit_run}", f"data={CREDIT / 'test.csv'}", f"output={tmp_path / 'ok'}")
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "ok" / "constraint_violations.json").read_text()) == {"violations": []}
    drift_csv = tmp_path / "income.csv"
    drifted(credit["test"], "income_x3").to_csv(drift_csv, index=False)
    bad = automl_cli("monitor", f"run_dir={credit_run}", f"data={drift_csv}")
    assert bad.returncode == 3, bad.stderr
    out = sorted((Path(credit_run) / "monitoring").iterdir())[-1]  # default: <run_dir>/monitoring/<timestamp>/
    violations = json.loads((out / "constraint_violations.json").read_text())["violations"]
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [("Income", "baseline_drift_check")]
    assert set(violations[0]) == {"feature_name", "constraint_check_type", "description"}
    batch_stats = json.loads((out / "statistics.json").read_text())
    assert batch_stats["dataset"]["n_rows"] == len(credit["test"])
    assert batch_stats["features"]["Income"]["numeric"]["mean"] > 2.5 * credit["test"]["Income"].mean()
    page = (out / "report.html").read_text()
    assert "Income" in page and "baseline_drift_check" in page and "<svg" in page and "<script" not in page
    for args, msg in [([f"run_dir={credit_run}"], "needs data="),
                      ([f"run_dir={credit_run}", "data=/no/such/file.csv"], "nothing to read"),
                      ([f"run_dir={tmp_path}", f"data={drift_csv}"], "not a finished run folder"),
                      ([f"run_dir={credit_run}", f"data={drift_csv}", "colour=red"], "unknown key 'colour'")]:
        assert main(["monitor", *args]) == 2  # the CLI's entry point, in this process
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)


class _Hook(http.server.BaseHTTPRequestHandler):
    received: List[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_webhook_alert_and_capture_folder_through_cli(tmp_path, credit_run, credit):
    port = free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cap = tmp_path / "capture"
        write_capture(cap, drifted(credit["test"], "new_home_category"))
        res = automl_cli("monitor", f"run_dir={credit_run}", f"data={cap}", f"output={tmp_path / 'out'}",
                         f"alert.webhook=http://127.0.0.1:{port}/alerts")
        assert res.returncode == 3, res.stderr
        assert "Home: categorical_values_check" in res.stdout
        clean = automl_cli("monitor", f"run_dir={credit_run}", f"data={CREDIT / 'test.csv'}",
                           f"output={tmp_path / 'clean'}", f"alert.webhook=http://127.0.0.1:{port}/alerts")
        assert clean.returncode == 0
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Hook.received) == 1  # no alert without violations
    hook = _Hook.received[0]
    assert hook["type"] == "application/json"
    assert hook["body"]["n_rows"] == len(credit["test"])
    assert [(v["feature_name"], v["constraint_check_type"]) for v in hook["body"]["violations"]] == [
        ("Home", "categorical_values_check")]


def _wait_for(cond: Callable[[], bool], what: str, limit_s: float = 60) -> None:
    end = time.time() + limit_s
    while time.time() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _watch(credit_run: str, cap: Path, out: Path) -> subprocess.Popen:
    exe = VENV_BIN / "automl"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "automl"]
    return subprocess.Popen(cmd + ["monitor", f"run_dir={credit_run}", f"data={cap}", f"output={out}", "watch=true",
                                   "interval_s=0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _state(out: Path) -> Dict[str, dict]:
    path = out / "watch_state.json"
    try:
        return json.loads(path.read_text())["files"] if path.exists() else {}
    except ValueError:  # being rewritten
        return {}


@pytest.mark.slow
def test_watch_checks_each_capture_file_once(tmp_path, credit_run, credit):
    cap, out = tmp_path / "capture", tmp_path / "watch"
    cap.mkdir()
    clean = write_capture(cap, credit["test"].iloc[:400], n_files=1, tag="clean")
    proc = _watch(credit_run, cap, out)
    try:
        _wait_for(lambda: len(_state(out)) == 1, "the first file to be checked")
        bad = write_capture(cap, drifted(credit["test"], "income_x3"), n_files=2, tag="bad")
        _wait_for(lambda: len(_state(out)) == 3, "the new files to be checked")
        time.sleep(0.6)  # a few more polls: nothing is checked twice
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, stderr
    assert "checked 3 file(s)" in stdout
    state = _state(out)
    assert sorted(state) == sorted(str(p) for p in clean + bad)
    assert all(s["status"] == "checked" for s in state.values())
    results = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        results[folder.name] = json.loads((folder / "constraint_violations.json").read_text())["violations"]
    checked = sorted({s["result"] for s in state.values()})
    assert sorted(str(out / name) for name in results) == checked  # one result folder per batch, no extra checks
    flagged = [[(v["feature_name"], v["constraint_check_type"]) for v in vs] for vs in results.values()]
    assert [] in flagged and [("Income", "baseline_drift_check")] in flagged
    # a restarted watcher remembers what it checked: only the new file is read
    proc = _watch(credit_run, cap, out)
    try:
        later = write_capture(cap, credit["test"].iloc[400:800], n_files=1, tag="later")
        _wait_for(lambda: len(_state(out)) == 4, "the file added after the restart")
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "checked 1 file(s)" in stdout and str(later[0]) in _state(out)


@pytest.mark.slow
def test_capture_on_s3_and_results_to_s3(s3_bucket, tmp_path, credit_run, credit, capsys):
    fs, bucket = s3_bucket["fs"], s3_bucket["bucket"]
    local = tmp_path / "capture"
    for path in write_capture(local, drifted(credit["test"], "assets_40pct_missing")):
        fs.put(str(path), f"{bucket}/capture/{path.name}")
    assert main(["monitor", f"run_dir={credit_run}", f"data=s3://{bucket}/capture/",
                 f"output=s3://{bucket}/results"]) == 3
    assert "Assets: completeness_check" in capsys.readouterr().out
    violations = json.loads(fs.cat(f"{bucket}/results/constraint_violations.json"))["violations"]
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [("Assets", "completeness_check")]
    assert fs.exists(f"{bucket}/results/report.html") and fs.exists(f"{bucket}/results/statistics.json")
    # a prefix (not a folder) of capture files works too
    assert main(["monitor", f"run_dir={credit_run}", f"data=s3://{bucket}/capture/capture-2026",
                 f"output=s3://{bucket}/results2"]) == 3
