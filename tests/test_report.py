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
from sklearn.metrics import confusion_matrix

from automl.analysis.plots import pyplot
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


def test_confusion_matrix_of_many_classes_writes_only_the_non_zero_counts():
    # 30 classes (the suite's leaf table): 900 count labels took 1.2 s to draw, a third of
    # report.html's time at a 30 s budget; past MAX_ANNOTATED_CLASSES zeros are left blank.
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(30), 20)
    labels = np.where(rng.random(len(y)) < 0.1, rng.integers(0, 30, len(y)), y)
    fig = F.confusion(y, labels, [f"class {i}" for i in range(30)])
    counts = [t.get_text() for t in fig.axes[0].texts]
    assert len(counts) == int((confusion_matrix(y, labels) > 0).sum()) < 100
    assert "0" not in counts
    small = F.confusion(labels[:40] % 3, y[:40] % 3, ["a", "b", "c"])
    assert len(small.axes[0].texts) == 9  # few classes: every cell, zeros included
    pyplot().close("all")


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
    only_linear = {"include": ["dpp1-linear"]}
    run = automl.fit(df, target="t", output_dir=str(tmp_path / "reg"), budget={"max_trials": 2, "time_limit_s": 60},
                     candidates=only_linear)
    page = (Path(run.run_dir) / REPORT_FILE).read_text()
    for alt in ("actual vs predicted", "residuals", "feature importance", "pareto size"):
        assert f'alt="{alt}"' in page, alt
    assert 'alt="confusion matrix"' not in page and 'alt="roc"' not in page
    assert "skewed or heavy-tailed target" in page


def test_best_per_candidate_keeps_each_candidates_best_and_marks_the_pareto_rows():
    from automl.report.decision import best_per_candidate

    lb = pd.DataFrame({
        "trial_id": list("abcdefg"), "candidate": ["svm", "svm", "knn", "knn", "linear", "xgb", "mlp"],
        "algorithm": ["svm", "svm", "knn", "knn", "linear", "xgboost", "mlp"],
        "status": ["completed"] * 6 + ["failed"],
        "objective": [0.95, 0.99, 0.97, 0.96, 0.90, 0.96, 0.999],
        "latency_ms_single_row": [1.0, 2.0, 2.5, 0.5, 0.4, 3.0, 0.1],
        "model_size_bytes": [5e5, 6e5, 2e6, 2e6, 1e3, 1e5, 10.0]})
    best = best_per_candidate(lb, greater_is_better=True)
    assert list(best["candidate"]) == ["svm", "knn", "xgb", "linear"]  # by score; the failed mlp is out
    assert list(best["trial_id"]) == ["b", "c", "f", "e"]
    # svm: best score; linear: fastest and smallest; xgb: smaller than svm; knn: beaten by svm on all three
    assert dict(zip(best["candidate"], best["pareto"])) == {"svm": True, "knn": False, "xgb": True, "linear": True}
    lower = lb.assign(objective=1 - lb["objective"])  # a loss: lower is better
    assert list(best_per_candidate(lower, greater_is_better=False)["trial_id"]) == ["b", "c", "f", "e"]


def test_score_axes_keep_to_the_useful_range_and_a_narrow_latency_axis_has_several_labels():
    scores = np.r_[np.linspace(0.95, 0.99, 30), 0.10]  # one outlier would squash the axis
    lo, hi = F.useful_range(scores, greater_is_better=True)
    assert 0.85 < lo < 0.95 and 0.99 < hi < 1.0
    assert F.useful_range(1 - scores, greater_is_better=False)[1] < 0.15
    lb = pd.DataFrame({"trial_id": [str(i) for i in range(31)], "candidate": ["svm"] * 31, "status": "completed",
                       "objective": scores, "trial_number": range(31),
                       "latency_ms_single_row": np.linspace(1.1, 2.9, 31)})
    fig = F.objective_by_trial(lb, "accuracy", True)
    assert fig.axes[0].get_ylim()[0] > 0.85
    fig = F.pareto(lb, "latency_ms_single_row", "predict latency (ms, one row)", "accuracy", True, "3")
    fig.canvas.draw()
    ax = fig.axes[0]
    left, right = ax.get_xlim()
    shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and left <= t.get_position()[0] <= right]
    assert len(shown) >= 3, shown
    assert ax.get_ylim()[0] > 0.85
    F.img(fig, "p")


def test_report_leads_with_the_decision_and_ends_with_the_data_profile(tiny_run):
    import re

    page = (Path(tiny_run.run_dir) / REPORT_FILE).read_text()
    ids = re.findall(r'<section id="([^"]+)"', page)
    assert ids[0] == "decision" and ids[1] == "model" and ids[-1] == "data", ids
    decision = page[page.index('<section id="decision"'):page.index("</section>")]
    summary = tiny_run.summary
    assert summary["best"]["candidate"] in decision and f"{summary['best']['score']:.5f}" in decision
    assert f"validation {summary['metric']}" in decision and f"test {summary['metric']}" in decision
    done = tiny_run.leaderboard[tiny_run.leaderboard["status"] == "completed"]
    table = decision[decision.index('id="candidates-table"'):]
    assert table.count("<tr") - 1 == done["candidate"].nunique()  # one row per candidate (and the header)
    assert "\u2605" in table  # at least the best-scoring row is Pareto-optimal
    model = page[page.index('<section id="model"'):]
    assert 'id="per-class-table"' in model and 'alt="calibration curve"' in model
    assert "calibration" in summary["best"] and summary["best"]["calibration"]["method"] in (
        "none", "temperature", "isotonic")


@pytest.mark.slow
def test_report_fits_1280_px_and_opens_with_the_decision(tiny_run, chromium):
    """At 1280 px nothing is wider than the page (wide tables scroll inside their own box), the
    header's facts are all in view, and the first section is the decision."""
    report = Path(tiny_run.run_dir) / REPORT_FILE
    dt = chromium
    dt.call("Runtime.enable")
    dt.call("Page.enable")
    dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    dt.call("Page.navigate", url=report.as_uri())
    dt.wait_event("Page.loadEventFired")
    res = dt.evaluate("""(function(){
        var W=document.documentElement.clientWidth, wide=[];
        document.querySelectorAll('body *').forEach(function(el){
            if(el.closest('.scroll') && !el.classList.contains('scroll')) return;  // scrolls inside its box
            var r=el.getBoundingClientRect();
            if(r.width>0 && (r.right>W+0.5 || r.left<-0.5)) wide.push(el.tagName+'.'+el.className+' '+Math.round(r.right));
        });
        var facts=Array.from(document.querySelectorAll('header .facts span')).map(function(s){
            var r=s.getBoundingClientRect(); return r.right<=W+0.5 && r.height<60;});
        var first=document.querySelector('main section');
        return {W:W, scrollW:document.documentElement.scrollWidth, wide:wide, facts:facts, first:first.id,
                firstTitle:first.querySelector('h2').textContent,
                cal:Array.from(document.querySelectorAll('img.plot')).filter(function(i){
                    return i.alt==='calibration curve' && i.complete && i.naturalWidth>0;}).length};})()""")
    assert res["W"] == 1280 and res["scrollW"] <= 1280, res
    assert res["wide"] == [], res["wide"][:10]
    assert res["facts"] and all(res["facts"]), res
    assert res["first"] == "decision" and res["firstTitle"] == "Decision"
    assert res["cal"] == 1
