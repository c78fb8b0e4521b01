"""`automl serve` explains predictions when asked (issue 19): a real server on a loopback port,
its explanations against run.explain for the same rows; the default answer is unchanged."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import requests

from conftest import VENV_BIN, free_port, make_binary_frame
from test_serving import csv_body, records, wait_ping


@pytest.fixture(scope="module")
def endpoint(tiny_run):
    port = free_port()
    exe = VENV_BIN / "automl"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "automl"]
    proc = subprocess.Popen(cmd + ["serve", f"run_dir={tiny_run.run_dir}", f"port={port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ping(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def rows():
    return make_binary_frame(40, seed=11)[["x1", "x2", "color"]].head(12)


def post(url: str, body: str, ctype: str = "text/csv", query: str = "", **headers):
    return requests.post(f"{url}/invocations{query}", data=body, timeout=60,
                         headers={"Content-Type": ctype, **headers})


@pytest.mark.slow
def test_explain_true_returns_the_contributions_of_run_explain(endpoint, tiny_run, rows):
    expected = tiny_run.explain(rows)
    res = post(endpoint, csv_body(rows), query="?explain=true")
    assert res.status_code == 200, res.text
    preds = res.json()["predictions"]
    assert len(preds) == len(rows)
    for (_, want), pred in zip(expected.iterrows(), preds):
        expl = pred["explanation"]
        assert expl["class"] == want["class"] and expl["space"] == expected.attrs["space"]
        assert expl["base_value"] == pytest.approx(want["base_value"], abs=1e-9)
        got = {c["feature"]: c["contribution"] for c in expl["contributions"]}
        assert len(got) == min(5, len(tiny_run.model.feature_columns))  # top 5 by default (3 features here)
        for feature, value in got.items():
            assert value == pytest.approx(want[feature], abs=1e-9), feature
        sizes = [abs(c["contribution"]) for c in expl["contributions"]]
        assert sizes == sorted(sizes, reverse=True)
    # the prediction itself is the one of the default answer
    plain = post(endpoint, csv_body(rows)).json()["predictions"]
    assert [{k: v for k, v in p.items() if k != "explanation"} for p in preds] == plain
    assert all("explanation" not in p for p in plain)


@pytest.mark.slow
def test_explain_key_in_the_json_body_with_top_k(endpoint, tiny_run, rows):
    expected = tiny_run.explain(rows.head(3))
    body = json.dumps({"instances": records(rows.head(3)), "explain": {"top_k": 2}})
    preds = post(endpoint, body, "application/json").json()["predictions"]
    for (_, want), pred in zip(expected.iterrows(), preds):
        contribs = pred["explanation"]["contributions"]
        features = list(tiny_run.model.feature_columns)
        top = sorted(features, key=lambda f: -abs(want[f]))[:2]
        assert [c["feature"] for c in contribs] == top
        np.testing.assert_allclose([c["contribution"] for c in contribs], [want[f] for f in top], atol=1e-9)
    # "explain": false: the plain answer
    assert "explanation" not in post(endpoint, json.dumps({"instances": records(rows.head(1)), "explain": False}),
                                     "application/json").json()["predictions"][0]


@pytest.mark.slow
def test_bad_explain_requests_get_a_4xx_with_the_fix(endpoint, rows):
    for query, status, words in (("?explain=maybe", 400, "explain=true"), ("?explain=true&top_k=0", 400, "top_k"),
                                 ("?explain=true&top_k=x", 400, "whole number")):
        res = post(endpoint, csv_body(rows.head(1)), query=query)
        assert res.status_code == status and words in res.json()["error"], (query, res.text)
    res = post(endpoint, csv_body(rows.head(1)), query="?explain=true", Accept="text/csv")
    assert res.status_code == 406 and "application/json" in res.json()["error"]
