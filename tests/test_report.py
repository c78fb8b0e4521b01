"""report.html: written by a full fit, self-contained, and rendered by headless Chromium with no
console errors, every plot drawn, a sortable leaderboard, and a screenshot saved."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.report import REPORT_FILE
from automl.report import figures as F
from conftest import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=None, open_timeout=30)
        self.next_id = 0
        self.events: list = []

    def call(self, method: str, timeout: float = 60, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.time() + timeout
        while time.time() < deadline:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)
        raise TimeoutError(method)

    def wait_event(self, method: str, timeout: float = 60) -> dict:
        deadline = time.time() + timeout
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while time.time() < deadline:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            self.events.append(msg)
            if msg.get("method") == method:
                return msg
        raise TimeoutError(method)

    def evaluate(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"])
        return res["result"].get("value")

    def errors(self) -> list:
        out = []
        for ev in self.events:
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"].get("text"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(str(p.get("args")))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(p["entry"].get("text"))
        return out


@pytest.fixture
def chromium(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required: apt-get install -y chromium")
    port = free_port()
    proc = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--remote-debugging-port={port}",
                             f"--user-data-dir={tmp_path / 'profile'}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ws_url = None
    for _ in range(150):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=1) as resp:
                pages = [t for t in json.load(resp) if t.get("type") == "page"]
            if pages:
                ws_url = pages[0]["webSocketDebuggerUrl"]
                break
        except OSError:
            pass
        time.sleep(0.2)
    assert ws_url, "chromium did not open its DevTools port"
    client = DevTools(ws_url)
    yield client
    client.ws.close()
    proc.terminate()
    proc.wait(timeout=20)


def test_full_fit_writes_report_and_notebooks(tiny_run):
    run_dir = Path(tiny_run.run_dir)
    for name in (REPORT_FILE, "data_exploration.ipynb", "candidate_definitions.ipynb", "summary.json"):
        assert (run_dir / name).exists(), name
    page = (run_dir / REPORT_FILE).read_text()
    # self-contained: no external scripts, styles or images
    assert "<script src" not in page and "<link rel=\"stylesheet\"" not in page
    assert "http://" not in page and "https://" not in page
    for section in ("Data", "Insights", "Leaderboard", "Search", "Chosen model", "Every trial"):
        assert f">{section}</h" in page, section
    # every trial's hyperparameters are listed
    lb = tiny_run.leaderboard
    for col in [c for c in lb.columns if c.startswith("model.")]:
        assert col in page


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tiny_run, chromium, tmp_path):
    report = Path(tiny_run.run_dir) / REPORT_FILE
    dt = chromium
    dt.call("Runtime.enable")
    dt.call("Log.enable")
    dt.call("Page.enable")
    dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    dt.call("Page.navigate", url=report.as_uri())
    dt.wait_event("Page.loadEventFired")
    plots = dt.evaluate("""Array.from(document.querySelectorAll('img.plot')).map(function(i){
        var r=i.getBoundingClientRect();
        return {alt:i.alt, complete:i.complete, nw:i.naturalWidth, nh:i.naturalHeight, w:r.width, h:r.height};})""")
    alts = {p["alt"] for p in plots}
    expected = {"target", "prediction power", "objective by trial", "scores by candidate", "pareto latency",
                "pareto size", "confusion matrix", "roc", "precision recall", "feature importance"}
    if "Feature importance skipped: the run's time budget was used up" in report.read_text():
        expected.discard("feature importance")  # tiny_run's budget ran out on a very busy machine
    assert expected <= alts, expected - alts
    for p in plots:
        assert p["complete"] and p["nw"] > 0 and p["nh"] > 0 and p["w"] > 0 and p["h"] > 0, p
    # the leaderboard sorts on click: objective ascending, then descending
    order = dt.evaluate("""(function(){
        var t=document.getElementById('leaderboard-table');
        var heads=Array.from(t.tHead.rows[0].cells).map(function(c){return c.textContent;});
        var col=heads.indexOf('objective'); var th=t.tHead.rows[0].cells[col];
        function values(){return Array.from(t.tBodies[0].rows).map(function(r){return r.cells[col].getAttribute('data-v');})
            .filter(function(v){return v!=='';}).map(parseFloat);}
        th.click(); var up=values(); th.click(); var down=values(); return {up:up, down:down};})()""")
    assert order["up"] == sorted(order["up"]) and order["down"] == sorted(order["down"], reverse=True)
    assert len(order["up"]) >= 2
    assert dt.evaluate("document.querySelectorAll('#trials-table tbody tr').length") == len(tiny_run.leaderboard)
    height = dt.evaluate("document.documentElement.scrollHeight")
    dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=int(height), deviceScaleFactor=1, mobile=False)
    shot = dt.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    import base64

    out_dir = Path(os.environ.get("AUTOML_SCREENSHOT_DIR", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / "report.png"
    png.write_bytes(base64.b64decode(shot["data"]))
    assert png.stat().st_size > 20_000
    assert dt.errors() == []


def test_model_figures_for_regression_and_multiclass():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    pred = y + rng.normal(scale=0.3, size=200)
    for fig in (F.actual_vs_predicted(y, pred), F.residuals(y, pred)):
        assert F.img(fig, "x").startswith('<img class="plot"')
    labels = rng.integers(0, 3, 100)
    assert "base64," in F.img(F.confusion(labels, (labels + (rng.random(100) < 0.2)) % 3, ["a", "b", "c"]), "cm")


def test_pareto_front():
    cost = np.array([1.0, 2.0, 3.0, 4.0, 2.5])
    score = np.array([0.5, 0.7, 0.6, 0.9, 0.7])
    assert F.pareto_mask(cost, score, True).tolist() == [True, True, False, True, False]
    assert F.pareto_mask(cost, -score, False).tolist() == [True, True, False, True, False]
    lb = pd.DataFrame({"trial_id": list("abcde"), "candidate": ["x", "y", "x", "y", "x"], "status": "completed",
                       "objective": score, "model_size_bytes": cost * 1e4, "trial_number": range(5)})
    assert "base64," in F.img(F.pareto(lb, "model_size_bytes", "model size (bytes)", "f1", True, "d"), "p")


@pytest.mark.slow
def test_regression_report_shows_actual_vs_predicted_and_residuals(tiny_run, tmp_path):
    """A second small fit in the same process (Ray is already up from ``tiny_run``)."""
    import automl

    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(list("xyz"), n)})
    df["t"] = np.exp(df["a"] + 0.3 * rng.normal(size=n))
    only_linear = {name: {"enabled": False} for name in ("dpp0-xgboost", "dpp2-mlp", "dpp3-random_forest",
                                                         "dpp4-extra_trees", "dpp5-svm", "dpp6-knn")}
    run = automl.fit(df, target="t", output_dir=str(tmp_path / "reg"), budget={"max_trials": 2, "time_limit_s": 60},
                     candidates=only_linear)
    page = (Path(run.run_dir) / REPORT_FILE).read_text()
    for alt in ("actual vs predicted", "residuals", "feature importance", "pareto size"):
        assert f'alt="{alt}"' in page, alt
    assert 'alt="confusion matrix"' not in page and 'alt="roc"' not in page
    assert "skewed or heavy-tailed target" in page
