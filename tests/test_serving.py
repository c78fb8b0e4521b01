"""`automl serve`: a real uvicorn server on a loopback port (and Ray Serve), against `automl predict`."""
from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import threading
import time

import numpy as np
import pandas as pd
import pytest
import requests

from conftest import automl_cli, free_port, make_binary_frame, start_serve

KEY = "s3cret-key"
CAPTURE_NAME = re.compile(r"^capture-\d{8}T\d{6}-\d+-\d+\.jsonl$")


def wait_ping(url: str, proc: subprocess.Popen | None = None, timeout: float = 120, name: str = "automl serve") -> None:
    """Until ``url``/ping answers 200; an AssertionError when ``proc`` exits first or time runs out."""
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{name} exited: {proc.stderr.read()}")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url}/ping did not answer")


@pytest.fixture(scope="module")
def rows():
    """Fresh rows (no target) with a missing value, in training column order."""
    df = make_binary_frame(40, seed=7)
    return df[["x1", "x2", "color"]]


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    """`automl serve` as users start it: api_key, data capture, a small body limit."""
    capture = tmp_path_factory.mktemp("capture")
    proc, url = start_serve(tiny_run.run_dir, f"api_key={KEY}", "max_body_bytes=20000", "capture.enabled=true",
                            f"capture.destination={capture}", "capture.rotate_s=0.5")
    try:
        wait_ping(url, proc)
        yield {"url": url, "capture": capture, "proc": proc}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def post(url: str, data, content_type: str = "text/csv", key: str | None = KEY, **headers):
    h = {"Content-Type": content_type, **headers}
    if key:
        h["Authorization"] = f"Bearer {key}"
    return requests.post(f"{url}/invocations", data=data, headers=h, timeout=30)


def csv_body(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, header=False)


def records(df: pd.DataFrame) -> list:
    """JSON instances at full float precision, missing values as null."""
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in df.to_dict(orient="records")]


def test_round_trips_match_automl_predict(server, tiny_run, rows, tmp_path):
    rows.to_csv(tmp_path / "in.csv", index=False)
    res = automl_cli("predict", f"run_dir={tiny_run.run_dir}", f"input={tmp_path}/in.csv", f"output={tmp_path}/out.csv")
    assert res.returncode == 0, res.stderr
    expected = pd.read_csv(tmp_path / "out.csv")
    by_csv = post(server["url"], csv_body(rows))
    assert by_csv.status_code == 200, by_csv.text
    preds = by_csv.json()["predictions"]
    assert [p["predicted_label"] for p in preds] == expected["predicted_label"].tolist()
    proba = np.array([p["probability"] for p in preds])
    picked = [expected.loc[i, f"proba_{lab}"] for i, lab in enumerate(expected["predicted_label"])]
    np.testing.assert_allclose(proba, picked, rtol=1e-12)
    assert set(preds[0]) == {"predicted_label", "probability"}  # the default keys
    wide = make_binary_frame(40, seed=7).drop(columns=["y"])  # every training column but the target, IDs too
    by_wide_csv = post(server["url"], csv_body(wide))
    assert by_wide_csv.status_code == 200 and by_wide_csv.json() == by_csv.json()
    by_json = post(server["url"], json.dumps({"instances": records(rows)}), "application/json")
    assert by_json.status_code == 200, by_json.text
    assert by_json.json() == by_csv.json()
    as_csv = post(server["url"], csv_body(rows), Accept="text/csv")
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    lines = as_csv.text.strip().splitlines()
    assert [ln.split(",")[0] for ln in lines] == expected["predicted_label"].tolist()


def test_ping_metadata_and_api_key(server, tiny_run):
    url = server["url"]
    assert requests.get(f"{url}/ping").status_code == 200  # /ping needs no key
    assert requests.get(f"{url}/metadata").status_code == 401
    assert requests.get(f"{url}/metadata", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert post(url, "0.1,1.0,red\n", key=None).status_code == 401
    assert post(url, "0.1,1.0,red\n", key="nope").status_code == 401
    md = requests.get(f"{url}/metadata", headers={"Authorization": f"Bearer {KEY}"})
    assert md.status_code == 200
    md = md.json()
    assert md["trial_id"] == tiny_run.best_trial_id and md["problem_type"] == "binary"
    assert md["classes"] == ["no", "yes"] and md["score"] == pytest.approx(tiny_run.best_score)
    assert [c["name"] for c in md["input_schema"]["columns"]] == ["x1", "x2", "color"]
    assert md["candidate"] == tiny_run.summary["best"]["candidate"]


BAD_REQUESTS = [
    ("malformed CSV", '0.1,"1.0,red\n', "text/csv", 400, "malformed CSV"),
    ("malformed JSON", '{"instances": [', "application/json", 400, "malformed JSON"),
    ("JSON without instances", '{"rows": []}', "application/json", 400, "instances"),
    ("instance not an object", '{"instances": [[1, 2, "red"]]}', "application/json", 400, "not an object"),
    ("wrong number of fields", "0.1,1.0\n", "text/csv", 400, "expected 3"),
    ("too many fields", "1,0.1,1.0,red,extra\n", "text/csv", 400, "or 4"),
    ("non-numeric value", "0.1,abc,red\n", "text/csv", 400, "x2"),
    ("non-numeric JSON value", '{"instances": [{"x1": "high", "x2": 1, "color": "red"}]}', "application/json", 400,
     "x1"),
    ("missing column", '{"instances": [{"x1": 0.1, "color": "red"}]}', "application/json", 400, "x2"),
    ("empty body", "", "text/csv", 400, "empty"),
    ("blank CSV body", "\n\n", "text/csv", 400, "empty"),
    ("body over the limit", "0.1,1.0,red\n" * 3000, "text/csv", 413, "limit"),
    ("wrong content type", "0.1,1.0,red\n", "text/plain", 415, "content type"),
    ("no content type", "0.1,1.0,red\n", "", 415, "content type"),
    ("not UTF-8", b"\xff\xfe0.1,1.0,red\n", "text/csv", 400, "UTF-8"),
]


@pytest.mark.parametrize("name, body, ctype, status, words", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_4xx_with_a_message(server, name, body, ctype, status, words):
    res = post(server["url"], body, ctype)
    assert res.status_code == status, res.text
    assert words.lower() in res.json()["error"].lower()


def test_streamed_body_over_the_limit_and_bad_accept(server):
    chunks = (b"0.1,1.0,red\n" * 500 for _ in range(10))  # chunked transfer: no Content-Length
    res = requests.post(f"{server['url']}/invocations", data=chunks, timeout=30,
                        headers={"Content-Type": "text/csv", "Authorization": f"Bearer {KEY}"})
    assert res.status_code == 413
    res = post(server["url"], "0.1,1.0,red\n", Accept="image/png")
    assert res.status_code == 406 and "text/csv" in res.json()["error"]


def test_data_capture_writes_json_lines(server, tiny_run, rows):
    before = {p.name for p in server["capture"].glob("capture-*.jsonl")}
    res = post(server["url"], csv_body(rows.head(3)), **{"X-Request-Id": "req-capture-1"})
    assert res.status_code == 200
    record = None
    for _ in range(100):  # files rotate every 0.5 s
        for path in sorted(server["capture"].glob("capture-*.jsonl")):
            if path.name in before:
                continue
            for line in path.read_text().splitlines():
                obj = json.loads(line)
                if obj["request_id"] == "req-capture-1":
                    record, name = obj, path.name
        if record:
            break
        time.sleep(0.1)
    assert record is not None, "no capture record appeared"
    assert CAPTURE_NAME.match(name), name
    assert set(record) == {"request_id", "timestamp", "trial_id", "content_type", "instances", "predictions"}
    dt.datetime.fromisoformat(record["timestamp"])
    assert record["trial_id"] == tiny_run.best_trial_id and record["content_type"] == "text/csv"
    assert record["predictions"] == res.json()["predictions"]
    assert len(record["instances"]) == 3 and set(record["instances"][0]) == {"x1", "x2", "color"}
    assert record["instances"][0]["color"] == rows.iloc[0]["color"]
    assert not list(server["capture"].glob(".*"))  # no half-written temporary files left


@pytest.fixture
def thread_server():
    """uvicorn in a thread of this process, for endpoints with other options."""
    import uvicorn

    from automl.serving.app import create_app
    from automl.serving.server import load_endpoint, serve_options

    started = []

    def start(*args: str):
        opts = serve_options(list(args))
        port = free_port()
        endpoint = load_endpoint(opts)
        srv = uvicorn.Server(uvicorn.Config(create_app(endpoint), host="127.0.0.1", port=port, log_level="warning"))
        t = threading.Thread(target=srv.run, daemon=True)
        t.start()
        started.append((srv, t))
        url = f"http://127.0.0.1:{port}"
        wait_ping(url)
        return url, endpoint

    yield start
    for srv, t in started:
        srv.should_exit = True
        t.join(15)


def test_any_trial_response_keys_and_capture_to_s3(thread_server, tiny_run, rows, s3_bucket):
    lb = tiny_run.leaderboard
    other = lb[(lb["status"] == "completed") & (lb["trial_id"] != tiny_run.best_trial_id)].iloc[0]
    dest = f"s3://{s3_bucket['bucket']}/capture"
    url, endpoint = thread_server(f"run_dir={tiny_run.run_dir}", f"trial={other.trial_id}",
                                  "response_keys=[predicted_label,probabilities,labels]", "capture.enabled=true",
                                  f"capture.destination={dest}", "capture.sampling_percentage=100")
    md = requests.get(f"{url}/metadata").json()
    assert md["trial_id"] == other.trial_id and md["candidate"] == other.candidate and not md["best"]
    res = post(url, csv_body(rows), key=None)
    assert res.status_code == 200, res.text
    preds = res.json()["predictions"]
    model = tiny_run.trial_model(other.trial_id)
    expected = model.predict_proba(rows)
    assert set(preds[0]) == {"predicted_label", "probabilities", "labels"} and preds[0]["labels"] == ["no", "yes"]
    np.testing.assert_allclose([p["probabilities"] for p in preds], expected.to_numpy(), rtol=1e-12)
    assert [p["predicted_label"] for p in preds] == list(model.predict(rows))
    endpoint.capture.close()  # flush now: a file per close
    files = s3_bucket["fs"].glob(f"{s3_bucket['bucket']}/capture/capture-*.jsonl")
    assert files and CAPTURE_NAME.match(files[0].rsplit("/", 1)[-1])
    record = json.loads(s3_bucket["fs"].cat(files[0]).decode().splitlines()[0])
    assert record["trial_id"] == other.trial_id and record["predictions"] == preds


def test_fast_path_equals_the_saved_pipeline(tiny_run):
    from automl.serving.predictor import Predictor
    from automl.serving.schema import InputSchema, training_dtypes

    frame = make_binary_frame(60, seed=3)[["x1", "x2", "color"]]
    frame.loc[0, "x1"] = 1e6  # far out of range (inf is refused by the input contract before the model)
    frame.loc[1, "color"] = None
    frame.loc[2, "color"] = "purple"  # unseen category
    lb = tiny_run.leaderboard
    for trial_id in lb[lb["status"] == "completed"]["trial_id"]:  # every algorithm of the run
        bundle = tiny_run.trial_model(trial_id)
        pred = Predictor(bundle, InputSchema.from_model(bundle, training_dtypes(tiny_run)))
        np.testing.assert_allclose(pred.matrix(pred.schema.coerce(frame)), bundle.predict_matrix(frame), rtol=1e-12)
    # an ensemble: every member takes the fast path
    import copy

    from automl.ensemble import WeightedEnsemble

    singles = lb[(lb["status"] == "completed") & (lb["candidate"] != "ensemble")]["trial_id"].head(2)
    members = [tiny_run.trial_model(t).pipeline for t in singles]
    ensemble = copy.copy(bundle)
    ensemble.pipeline = WeightedEnsemble(members, [0.3, 0.7], "binary", 2)
    pred = Predictor(ensemble, InputSchema.from_model(ensemble, training_dtypes(tiny_run)))
    assert all(pre is not None for pre, _ in pred._fast.pipeline.groups())  # every member on the fast path
    np.testing.assert_allclose(pred.matrix(pred.schema.coerce(frame)), ensemble.predict_matrix(frame), rtol=1e-12)


def test_fast_forest_sums_trees_like_the_forest():
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestClassifier

    from automl.serving.predictor import FastForest

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 4)), rng.integers(0, 3, 80)
    clf = RandomForestClassifier(n_estimators=7, n_jobs=1, random_state=0).fit(X, y)
    reg = ExtraTreesRegressor(n_estimators=7, n_jobs=1, random_state=0).fit(X, X[:, 0])
    assert FastForest.applies(clf) and FastForest.applies(reg)
    np.testing.assert_array_equal(FastForest(clf).predict_proba(X[:9]), clf.predict_proba(X[:9]))
    np.testing.assert_array_equal(FastForest(reg).predict(X[:9]), reg.predict(X[:9]))


def test_softmax_svc_ovr_equals_scikit_learns():
    from sklearn.svm import SVC
    from sklearn.utils.multiclass import _ovr_decision_function

    from automl.candidates.estimators import SoftmaxSVC, ovr_from_ovo

    rng = np.random.default_rng(5)
    for n_classes in (3, 10):
        X, y = rng.normal(size=(200, 4)), rng.integers(0, n_classes, 200)
        dec = SVC(decision_function_shape="ovo").fit(X, y).decision_function(X)
        dec[:3] = 0.0  # ties go to the pair's first class, as in scikit-learn
        np.testing.assert_array_equal(ovr_from_ovo(dec, n_classes), _ovr_decision_function(dec < 0, -dec, n_classes))
        ours = SoftmaxSVC(C=3.0).fit(X, y)
        theirs = SVC(C=3.0, decision_function_shape="ovr").fit(X, y)
        np.testing.assert_array_equal(ours.decision_function(X), theirs.decision_function(X))


def test_serve_option_errors(tiny_run):
    from automl.errors import ConfigError
    from automl.serving.server import load_endpoint, serve_options

    res = automl_cli("serve", f"run_dir={tiny_run.run_dir}", "trial=nope")
    assert res.returncode == 2 and "trial='nope'" in res.stderr and tiny_run.best_trial_id in res.stderr
    assert "Traceback" not in res.stderr
    for args, words in ((["serve.backend=flask"], "serve.backend"), (["response_keys=[score]"], "response_keys"),
                        (["port=99999"], "port"), (["api_key="], "api_key"), (["bogus=1"], "unknown key 'bogus'")):
        with pytest.raises(ConfigError, match=re.escape(words)):
            serve_options([f"run_dir={tiny_run.run_dir}", *args])
    import socket

    from automl.serving.server import _check_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ConfigError, match="cannot listen"):
            _check_port("127.0.0.1", busy.getsockname()[1])
    for args, words in ((["capture.enabled=true"], "capture.destination"),
                        (["capture.enabled=true", "capture.destination=/tmp/x", "capture.sampling_percentage=150"],
                         "sampling_percentage")):
        with pytest.raises(ConfigError, match=words):
            load_endpoint(serve_options([f"run_dir={tiny_run.run_dir}", *args]))


@pytest.mark.slow
def test_ray_serve_backend_answers_the_same(server, tiny_run, rows):
    from ray import serve

    from automl.serving.server import serve_options, serve_ray

    port = free_port()
    opts = serve_options([f"run_dir={tiny_run.run_dir}", f"port={port}", "serve.backend=ray", "serve.replicas=1",
                          f"api_key={KEY}"])
    serve_ray(opts, block=False)  # on this process's Ray (the tiny_run fixture started it)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ping(url, timeout=180)
        assert post(url, csv_body(rows), key=None).status_code == 401
        for body, ctype in ((csv_body(rows), "text/csv"),
                            (json.dumps({"instances": records(rows)}), "application/json")):
            got = post(url, body, ctype)
            assert got.status_code == 200, got.text
            assert got.json() == post(server["url"], body, ctype).json()
        assert post(url, "0.1,abc,red\n").status_code == 400
    finally:
        serve.shutdown()


DRIFTS = {
    "extra_column_check": (lambda df: df.assign(coupon="SPRING"), "coupon", 200),
    "missing_column_check": (lambda df: df.drop(columns=["color"]), "color", 400),
    "data_type_check": (lambda df: df.assign(x1="thirty"), "x1", 400),
}


@pytest.mark.parametrize("check", list(DRIFTS))
def test_drift_through_capture_reaches_the_monitor(thread_server, tiny_run, tmp_path, check):
    """Raw request rows are captured (rejected ones too), so `automl monitor` sees what clients sent."""
    drift, feature, status = DRIFTS[check]
    dest = tmp_path / "capture"
    url, endpoint = thread_server(f"run_dir={tiny_run.run_dir}", "capture.enabled=true",
                                  f"capture.destination={dest}", "capture.sampling_percentage=100")
    sent = drift(make_binary_frame(120, seed=11)[["x1", "x2", "color"]])
    res = post(url, json.dumps({"instances": records(sent)}), "application/json", key=None)
    assert res.status_code == status, res.text
    endpoint.capture.close()
    res = automl_cli("monitor", f"run_dir={tiny_run.run_dir}", f"data={dest}", f"output={tmp_path}/mon")
    assert res.returncode == 3, res.stderr[-1500:]
    found = json.loads((tmp_path / "mon" / "constraint_violations.json").read_text())["violations"]
    assert {(v["constraint_check_type"], v["feature_name"]) for v in found} == {(check, feature)}
