"""Issue 14, the endpoint: one input contract with `automl predict`, no 5xx for a client's mistake,
capture that stops at its cap, no credentials in /metadata, api_key from a file or the environment.

A real `automl serve` subprocess on a loopback port, a real fit (tiny budget) with a 0/1 column.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import requests

from conftest import VENV_BIN, automl_cli, free_port
from test_serving import wait_ping

pytestmark = pytest.mark.slow

KEY = "flag-run-key-1234"


def automl_cmd() -> list:
    exe = VENV_BIN / "automl"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "automl"]


@pytest.fixture(scope="module")
def flag_run(tmp_path_factory):
    """A finished run whose features are a 0/1 column (boolean), a number and a category."""
    import automl

    rng = np.random.default_rng(1)
    n = 160
    flag, x1 = rng.integers(0, 2, n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], n)
    y = np.where(flag + 0.3 * x1 + rng.normal(scale=0.2, size=n) > 0.5, "yes", "no")
    df = pd.DataFrame({"flag": flag, "x1": x1, "color": color, "y": y})
    out = tmp_path_factory.mktemp("flag_run")
    run = automl.fit(df, target="y", output_dir=str(out), budget={"max_trials": 2, "time_limit_s": 30},
                     search={"executor": "local", "ensemble": False}, validation={"n_folds": 3, "rerank_repeats": 0},
                     candidates={"dpp2-mlp": {"enabled": False}, "dpp5-svm": {"enabled": False}})
    assert run.summary["column_types"]["flag"] == "boolean"
    return run


def start_server(run_dir: str, tmp: Path, *args: str, env: dict | None = None):
    """`automl serve` in a subprocess, its log in a file (a pipe nobody reads would block it)."""
    port = free_port()
    log = open(tmp / f"serve-{port}.log", "w")
    env = {k: v for k, v in os.environ.items() if k != "AUTOML_API_KEY"} | (env or {})
    proc = subprocess.Popen(automl_cmd() + ["serve", f"run_dir={run_dir}", f"port={port}", *args],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ping(url, proc)
    except AssertionError:
        proc.kill()
        raise AssertionError(Path(log.name).read_text()[-3000:]) from None
    return proc, url, Path(log.name)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def flag_server(flag_run, tmp_path_factory):
    """The key in a file (not on the command line), capture with tiny caps, a 1 s body timeout."""
    tmp = tmp_path_factory.mktemp("flag_server")
    (tmp / "key").write_text(KEY + "\n")
    capture = tmp / "capture"
    proc, url, log = start_server(flag_run.run_dir, tmp, f"api_key_file={tmp / 'key'}", "serve.body_timeout_s=1",
                                  "capture.enabled=true", f"capture.destination={capture}", "capture.rotate_s=3600",
                                  "capture.max_file_mb=0.002", "capture.max_total_mb=0.01")
    yield {"url": url, "proc": proc, "log": log, "capture": capture, "port": int(url.rsplit(":", 1)[1])}
    stop(proc)


def post(url: str, data, content_type: str = "text/csv", key: str | None = KEY):
    headers = {"Content-Type": content_type}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return requests.post(f"{url}/invocations", data=data, headers=headers, timeout=60)


# -- one input contract ---------------------------------------------------------------------------

GOOD = [("1", "0.5", "red"), ("0", "-1.2", "blue"), ("1", "0.1", "green"), ("0", "2.5", "red")]
COLUMNS = ["flag", "x1", "color"]
# name: {row: {column: (CSV text, JSON literal)}}, refused? (row 2 is the refused one)
CASES = {
    "inf in the 0/1 column": ({2: {"flag": ("inf", "Infinity")}}, True),
    "-Infinity in a numeric column": ({2: {"x1": ("-Infinity", "-Infinity")}}, True),
    "1e400 in a numeric column": ({2: {"x1": ("1e400", "1e400")}}, True),
    "a 400-digit integer in a numeric column": ({2: {"x1": ("1" + "0" * 400, "1" + "0" * 400)}}, True),
    "inf in a categorical column": ({2: {"color": ("inf", '"inf"')}}, True),
    # a 0/1 column is numeric to the model (digits' pixel columns are 0/1 in training, 2 at test)
    "2 in the 0/1 column": ({2: {"flag": ("2", "2")}}, False),
    "NaN, empty and huge finite numbers": ({2: {"x1": ("NaN", "NaN")}, 3: {"x1": ("", "null")},
                                            4: {"x1": ("1e300", "1e300"), "flag": ("", "null")}}, False),
}


def csv_rows(changes: dict) -> list:
    rows = [list(r) for r in GOOD]
    for row, fields in changes.items():
        for column, (text, _) in fields.items():
            rows[row - 1][COLUMNS.index(column)] = text
    return rows


def json_body(changes: dict) -> str:
    out = []
    for i, row in enumerate(GOOD, start=1):
        fields = {"flag": row[0], "x1": row[1], "color": json.dumps(row[2])}
        fields.update({c: literal for c, (_, literal) in changes.get(i, {}).items()})
        out.append("{" + ",".join(f'"{c}":{v}' for c, v in fields.items()) + "}")
    return '{"instances":[' + ",".join(out) + "]}"


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_rows_get_the_same_answer_at_the_endpoint_and_in_batch(flag_server, flag_run, tmp_path, case):
    changes, refused = CASES[case]
    rows = csv_rows(changes)
    (tmp_path / "in.csv").write_text(",".join(COLUMNS) + "\n" + "".join(",".join(r) + "\n" for r in rows))
    res = automl_cli("predict", f"run_dir={flag_run.run_dir}", f"input={tmp_path / 'in.csv'}",
                     f"output={tmp_path / 'out.csv'}")
    rc, err = res.returncode, res.stderr
    by_csv = post(flag_server["url"], "".join(",".join(r) + "\n" for r in rows))
    by_json = post(flag_server["url"], json_body(changes), "application/json")
    if refused:
        column = next(iter(changes[2]))
        assert rc == 2, err
        batch_error = [ln for ln in err.splitlines() if ln.startswith("automl predict:")]
        assert len(batch_error) == 1 and f"'{column}'" in batch_error[0] and "row 2" in batch_error[0], err
        for res in (by_csv, by_json):
            assert res.status_code == 400, res.text
            assert f"'{column}'" in res.json()["error"] and "row 2" in res.json()["error"], res.text
    else:
        assert rc == 0, err
        expected = pd.read_csv(tmp_path / "out.csv")["predicted_label"].tolist()
        for res in (by_csv, by_json):
            assert res.status_code == 200, res.text
            assert [p["predicted_label"] for p in res.json()["predictions"]] == expected


# -- no 5xx for a client's mistake -----------------------------------------------------------------

def test_deep_json_and_huge_numbers_get_400_not_500(flag_server):
    url = flag_server["url"]
    deep = '{"instances":' + "[" * 5000 + "]" * 5000 + "}"
    nested_value = '{"instances":[{"flag":1,"x1":0.5,"color":' + "[" * 50 + "]" * 50 + "}]}"
    for body, words in ((deep, "nested"), (nested_value, "color"),
                        ('{"instances":[{"flag":1,"x1":1e400,"color":"red"}]}', "x1"),
                        ('{"instances":[{"flag":1,"x1":1' + "0" * 400 + ',"color":"red"}]}', "x1"),
                        ('{"instances":[{"flag":1,"x1":1' + "0" * 5000 + ',"color":"red"}]}', "number"),
                        ('{"instances":[{"flag":1,"x1":0.5,"color":1' + "0" * 400 + "}]}", "color")):
        res = post(url, body, "application/json")
        assert res.status_code == 400, (body[:80], res.status_code, res.text[:300])
        assert words in res.json()["error"], res.text
    assert "Traceback" not in flag_server["log"].read_text()


def partial_request(port: int, body_sent: bytes = b"1,0.5,") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n"
              b"Authorization: Bearer " + KEY.encode() + b"\r\n\r\n" + body_sent)
    return s


def test_a_client_that_disconnects_is_logged_on_one_line(flag_server):
    for _ in range(3):
        s = partial_request(flag_server["port"])
        time.sleep(0.2)
        s.close()
    end = time.time() + 30
    while time.time() < end and flag_server["log"].read_text().count("disconnected") < 3:
        time.sleep(0.2)
    assert requests.get(f"{flag_server['url']}/ping", timeout=10).status_code == 200
    text = flag_server["log"].read_text()
    assert text.count("disconnected") == 3, text[-3000:]
    assert "Traceback" not in text and "internal error" not in text, text[-3000:]


def test_a_body_that_never_ends_gets_408(flag_server):
    s = partial_request(flag_server["port"])
    s.settimeout(60)
    answer = b""
    while chunk := s.recv(4096):  # serve.body_timeout_s=1: the server answers, then closes
        answer += chunk
    s.close()
    answer = answer.decode("latin-1")
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "serve.body_timeout_s" in answer


# -- capture ---------------------------------------------------------------------------------------

def test_capture_rotates_by_size_and_stops_at_its_cap(flag_server):
    body = "".join(",".join(r) + "\n" for r in GOOD * 3)  # 9 rows: a record of ~900 bytes
    log, capture = flag_server["log"], flag_server["capture"]
    end = time.time() + 60
    while time.time() < end and "capture.max_total_mb" not in log.read_text():
        assert post(flag_server["url"], body).status_code == 200
    assert "capture.max_total_mb" in log.read_text(), log.read_text()[-2000:]
    for _ in range(5):  # after the cap: still answered, not captured
        assert post(flag_server["url"], body).status_code == 200
    time.sleep(1)
    files = sorted(capture.glob("capture-*.jsonl"))
    sizes = [f.stat().st_size for f in files]
    mb = 1024 * 1024
    assert len(files) >= 2 and max(sizes) <= 0.002 * mb and sum(sizes) <= 0.01 * mb, sizes  # the two caps
    assert not [p for p in capture.iterdir() if p.name.startswith(".")]  # no temp file left behind
    for f in files:  # every segment whole
        assert all("instances" in json.loads(line) for line in f.read_text().splitlines())
    assert log.read_text().count("data capture stopped: capture.max_total_mb=0.01 ") == 1  # warned once


# -- secrets ---------------------------------------------------------------------------------------

def test_api_key_comes_from_a_file_not_the_command_line(flag_server):
    url = flag_server["url"]
    assert KEY not in " ".join(psutil.Process(flag_server["proc"].pid).cmdline())
    assert requests.get(f"{url}/metadata", timeout=10).status_code == 401
    assert post(url, "1,0.5,red\n", key=None).status_code == 401
    assert requests.get(f"{url}/metadata", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).status_code == 200
    assert post(url, "1,0.5,red\n").status_code == 200


def test_api_key_from_the_environment_and_its_errors(flag_run, tmp_path, monkeypatch):
    from automl.errors import ConfigError
    from automl.serving.server import serve_options

    run = f"run_dir={flag_run.run_dir}"
    monkeypatch.setenv("AUTOML_API_KEY", "from-the-environment")
    assert serve_options([run])["api_key"] == "from-the-environment"
    (tmp_path / "key").write_text("from-a-file\n")
    assert serve_options([run, f"api_key_file={tmp_path / 'key'}"])["api_key"] == "from-a-file"  # explicit wins
    (tmp_path / "blank").write_text("\n")
    for args, words in (([f"api_key_file={tmp_path / 'nope'}"], "cannot read"),
                        ([f"api_key_file={tmp_path / 'blank'}"], "empty"),
                        (["api_key=abcd1234", f"api_key_file={tmp_path / 'key'}"], "not both")):
        with pytest.raises(ConfigError, match=words):
            serve_options([run, *args])
    monkeypatch.setenv("AUTOML_API_KEY", "  ")
    with pytest.raises(ConfigError, match="AUTOML_API_KEY"):
        serve_options([run])


def test_metadata_never_shows_the_password_of_a_run_dir_url(flag_run, tmp_path):
    """The run folder served over HTTP with user:password in its URL: /metadata and the log mask it."""
    folder = Path(flag_run.run_dir)
    http_port = free_port()
    files = subprocess.Popen([sys.executable, "-m", "http.server", str(http_port), "--bind", "127.0.0.1",
                              "--directory", str(folder.parent)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    secret = "hunter2-very-secret"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        run_url = f"http://alice:{secret}@127.0.0.1:{http_port}/{folder.name}"
        proc, url, log = start_server(run_url, tmp_path)
        try:
            md = requests.get(f"{url}/metadata", timeout=10)
            assert md.status_code == 200, md.text
            assert secret not in md.text and md.json()["run_dir"] == f"http://alice:***@127.0.0.1:{http_port}/{folder.name}"
        finally:
            stop(proc)
        assert secret not in log.read_text()
    finally:
        files.terminate()
        files.wait(timeout=10)


def test_a_0_1_column_takes_any_finite_number_on_every_parse_path():
    """digits' pixel columns are 0/1 in training and 2 in test: the model reads them as numbers,
    so 2 is a value (the contract refused it on the all-numeric block path, and digits' batch
    predict failed); inf is still refused."""
    from automl.errors import DataError
    from automl.serving.schema import InputSchema

    schema = InputSchema(columns=["pixel", "x"], types={"pixel": "boolean", "x": "numeric"},
                         dtypes={"pixel": "float", "x": "float"})  # as digits: 0.0/1.0 in train.csv
    rows = schema.frame_from_rows([["2", "0.5"], ["0", "1.5"]])  # the all-float block path
    records = schema.frame_from_records([{"pixel": 2, "x": 0.5}])
    batch = schema.coerce(pd.DataFrame({"pixel": [2, 1], "x": [0.5, 1.0]}))
    assert rows["pixel"].tolist() == [2.0, 0.0] and records["pixel"].iloc[0] == 2 and batch["pixel"].iloc[0] == 2
    for bad in (["inf", "0.5"], ["-Infinity", "0.5"]):
        with pytest.raises(DataError, match="pixel"):
            schema.frame_from_rows([bad])
