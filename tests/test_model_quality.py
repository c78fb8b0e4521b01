"""Model-quality monitoring: inference ids at the endpoint, later labels joined with the capture,
the run's metrics with bootstrap intervals against constraints written at fit time, and their
violations through the real `automl serve` and `automl monitor`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn import metrics as skm

from automl.cli import main
from automl.errors import ConfigError
from automl.metrics import METRICS
from automl.monitor.bootstrap import metric_samples, resample_counts
from automl.monitor.checks import monitoring_config
from automl.monitor.command import Watcher, load_baseline
from automl.monitor.groundtruth import CapturedPredictions, Joined, join
from automl.monitor.quality import check_quality, quality_constraints
from conftest import automl_cli, make_binary_frame, start_serve
from test_report import chromium  # noqa: F401  (the headless Chromium fixture)
from test_serving import wait_ping

N_REQUESTS = 80  # one-row and three-row requests in turn: 160 rows
LABELLED = 0.7  # the share of requests whose labels arrive later


# ----------------------------------------------------------------------------- the pieces
def _problem(problem_type: str, n: int, rng: np.random.Generator):
    """Random labels, predictions and probabilities as automl.metrics takes them."""
    if problem_type == "regression":
        y = rng.normal(size=n)
        return y, y + rng.normal(scale=0.5, size=n), None, 2
    k = 2 if problem_type == "binary" else 4
    y = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), size=n)
    proba[np.arange(n), y] += 0.3  # some skill
    proba /= proba.sum(1, keepdims=True)
    proba[:7] = proba[0]  # tied scores
    return y, proba.argmax(1), proba, k


@pytest.mark.parametrize("problem_type", ["binary", "multiclass", "regression"])
def test_vectorised_bootstrap_equals_automl_metrics_on_each_resample(problem_type):
    rng = np.random.default_rng(3)
    y, pred, proba, k = _problem(problem_type, 60, rng)
    W = np.vstack([np.ones(60), resample_counts(60, 3, rng)])
    for name, metric in METRICS[problem_type].items():
        got = metric_samples(problem_type, name, W, y, pred, proba, 1, k)
        arg = pred if problem_type == "regression" else (proba if metric.needs_proba else np.eye(k)[pred])
        want = [metric.fn(y, arg, 1, w) for w in W]  # a resample is its rows weighted by their counts
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)


def test_resample_counts_draw_n_rows_each():
    W = resample_counts(50, 200, np.random.default_rng(0))
    assert W.shape == (200, 50) and (W.sum(1) == 50).all() and len({tuple(r) for r in W}) == 200


def test_quality_constraints_use_an_absolute_margin_or_a_relative_one():
    cons = quality_constraints("binary", {"auc": 0.91, "logloss": 0.3, "f1": float("nan")}, margin=0.05,
                               relative_margin=0.2)
    assert cons == [{"metric": "auc", "baseline": 0.91, "threshold": 0.86, "comparison": "greater_than"},
                    {"metric": "logloss", "baseline": 0.3, "threshold": 0.36, "comparison": "less_than"}]
    reg = quality_constraints("regression", {"rmse": 10.0, "r2": 0.8})
    assert {c["metric"]: c["threshold"] for c in reg} == {"rmse": 12.0, "r2": 0.75}


def _joined(labels, predictions, n_captured=None) -> Joined:
    n = len(labels)
    return Joined(list(labels), list(predictions), [""] * n, [""] * n, n_captured or n, n, 0)


def test_a_violation_needs_the_whole_interval_past_the_threshold():
    cons = {"model_quality": [{"metric": "accuracy", "baseline": 0.9, "threshold": 0.85,
                               "comparison": "greater_than"}]}
    preds = [{"predicted_label": "a"}] * 100
    near = check_quality(_joined(["a"] * 80 + ["b"] * 20, preds), cons, "binary", ["a", "b"], 1)
    m = near.metrics["accuracy"]  # 0.80: below the threshold, but its interval reaches above it
    assert m["value"] == pytest.approx(0.8) and m["lower"] < 0.8 < 0.85 < m["upper"] and not near.violations
    far = check_quality(_joined(["a"] * 60 + ["b"] * 40, preds), cons, "binary", ["a", "b"], 1)
    assert far.metrics["accuracy"]["upper"] < 0.85 and [v.constraint_check_type for v in far.violations] == [
        "model_quality_check"]
    assert far.metrics["accuracy"]["constant"] == pytest.approx(0.6)  # the majority class on the same rows


def test_rows_without_labels_are_counted_and_zero_joined_rows_give_no_verdict(caplog):
    captured = CapturedPredictions(keys=[["r1:0", "r1"], ["r2:0", "r2:x"]],
                                   predictions=[{"predicted_label": "a"}] * 2, trial_ids=["t", "t"],
                                   timestamps=["", ""])
    joined = join(captured, {"r1": "a", "elsewhere": "b"})
    assert joined.counts() == {"captured_predictions": 2, "labels": 2, "joined": 1, "predictions_without_label": 1,
                               "rejected_requests": 0}
    cons = {"model_quality": [{"metric": "accuracy", "threshold": 0.5, "comparison": "greater_than"}]}
    none = check_quality(join(captured, {"other": "a"}), cons, "binary", ["a", "b"], 1)
    assert not none.violations and not none.metrics and "no model-quality verdict" in none.note


def test_regression_rows_get_their_metrics_and_the_mean_as_the_constant():
    rng = np.random.default_rng(1)
    y = rng.normal(10, 2, 200)
    pred = y + rng.normal(0, 1, 200)
    cons = {"model_quality": quality_constraints("regression", {"rmse": 0.5, "r2": 0.95, "mae": 0.4, "mse": 0.25})}
    res = check_quality(_joined([str(v) for v in y], [{"predicted_label": float(p)} for p in pred]), cons,
                        "regression", [], 1)
    m = res.metrics
    assert m["rmse"]["value"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert m["r2"]["value"] == pytest.approx(skm.r2_score(y, pred)) and m["r2"]["constant"] == pytest.approx(0)
    assert m["rmse"]["threshold"] == pytest.approx(0.6) and m["rmse"]["lower"] > 0.6  # about 1: twice as bad
    assert {v.feature_name for v in res.violations} == {f"model quality ({n})" for n in ("rmse", "mse", "mae", "r2")}


@pytest.mark.parametrize("edit, words", [
    ({"model_quality": [{"metric": "rmse", "threshold": 1, "comparison": "less_than"}]}, "binary run has"),
    ({"model_quality": [{"metric": "auc", "threshold": "high", "comparison": "greater_than"}]}, "number threshold"),
    ({"monitoring": {"model_quality_check": {"confidence": 1.5}}}, "confidence"),
])
def test_a_bad_model_quality_edit_is_a_config_error(edit, words):
    cons = {"model_quality": [], **edit}
    with pytest.raises(ConfigError, match=words):
        check_quality(_joined(["a"], [{"predicted_label": "a"}]), cons, "binary", ["a", "b"], 1)


def test_the_fit_keys_of_the_margins_have_defaults_and_refuse_a_negative_margin():
    from automl.config import compose_config

    cfg = compose_config(["monitor.quality_margin=0.1"])
    assert cfg.monitor.quality_margin == 0.1 and cfg.monitor.quality_relative_margin == 0.2
    with pytest.raises(ConfigError, match="monitor.quality_relative_margin must be a number >= 0"):
        compose_config(["monitor.quality_relative_margin=-0.5"])


def test_the_monitoring_block_has_the_model_quality_defaults():
    assert monitoring_config({})["model_quality_check"] == {"enabled": True, "confidence": 0.95,
                                                            "n_bootstrap": 1000, "min_rows": 30}


# ----------------------------------------------------------------------------- fair and degraded batches
@pytest.fixture(scope="module")
def pool(tiny_run):
    """Fresh rows with their true labels and the run's answers as the endpoint gives them."""
    df = make_binary_frame(4000, seed=123)
    proba = tiny_run.predict_proba(df)
    labels = tiny_run.predict(df)
    p_label = proba.to_numpy()[np.arange(len(df)), [list(proba.columns).index(v) for v in labels]]
    preds = [{"predicted_label": lab, "probability": float(p)} for lab, p in zip(labels, p_label)]
    return df["y"].to_numpy(), preds


def test_fair_batches_rarely_alarm_and_flipped_labels_do(tiny_run, pool):
    """200 random fair batches of 112 labelled rows: at most one false alarm; 30% flipped: caught."""
    truth, preds = pool
    cons = json.loads((Path(tiny_run.run_dir) / "baseline" / "constraints.json").read_text())
    assert {c["metric"] for c in cons["model_quality"]} == set(METRICS["binary"]) - {"precision", "recall"}
    summary, rng = tiny_run.summary, np.random.default_rng(7)
    pos = summary["classes"].index(summary["positive_class"])
    fair_alarms, caught = 0, 0
    for b in range(200):
        idx = rng.choice(len(truth), 112, replace=False)
        labels = truth[idx]
        res = check_quality(_joined(labels, [preds[i] for i in idx]), cons, "binary", summary["classes"], pos)
        fair_alarms += bool(res.violations)
        if b < 40:
            flip = rng.random(len(idx)) < 0.3
            bad = np.where(flip, np.where(labels == "yes", "no", "yes"), labels)
            caught += bool(check_quality(_joined(bad, [preds[i] for i in idx]), cons, "binary",
                                         summary["classes"], pos).violations)
    assert fair_alarms <= 1, f"{fair_alarms} false alarms in 200 fair batches"
    assert caught >= 38, f"30% flipped labels caught in only {caught} of 40 batches"


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def served(tiny_run, tmp_path_factory):
    """A real `automl serve` with capture on; one-row and three-row requests, some with X-Inference-Id."""
    capture = tmp_path_factory.mktemp("mq_capture")
    proc, url = start_serve(tiny_run.run_dir, "capture.enabled=true", f"capture.destination={capture}",
                            "capture.rotate_s=0.5")
    frame = make_binary_frame(2 * N_REQUESTS, seed=11)
    sent = []  # (inference id, rows of the frame, response objects)
    try:
        wait_ping(url, proc)
        start = 0
        for i in range(N_REQUESTS):
            size = 1 if i % 2 else 3
            part = frame.iloc[start:start + size]
            start += size
            headers = {"Content-Type": "text/csv"}
            if i % 4 != 3:  # a quarter without an id: the endpoint makes one
                headers["X-Inference-Id"] = f"order-{i}"
            res = requests.post(f"{url}/invocations", data=part[["x1", "x2", "color"]].to_csv(index=False, header=False),
                                headers=headers, timeout=30)
            assert res.status_code == 200, res.text
            given = res.headers.get("X-Inference-Id")
            assert given == headers.get("X-Inference-Id", given) and given
            sent.append((given, part, res.json()["predictions"]))
        bad = requests.post(f"{url}/invocations", data="1,2,red\n", headers={"Content-Type": "text/csv",
                                                                            "X-Inference-Id": "a b"}, timeout=30)
        assert bad.status_code == 400 and "X-Inference-Id" in bad.json()["error"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)  # writes what the capture still buffers
    generated = [s[0] for i, s in enumerate(sent) if i % 4 == 3]
    assert len(set(generated)) == len(generated) and not any(g.startswith("order-") for g in generated)
    return {"capture": capture, "sent": sent}


def _labels_file(path: Path, sent, flip_share: float = 0.0, seed: int = 5):
    """Labels for 70% of the requests (ids `<id>` for one-row requests, `<id>:<row>` otherwise), plus
    labels of requests never captured; returns the joined reference: (true labels, response objects)."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(sent), int(LABELLED * len(sent)), replace=False)
    lines, truth, objs = [{"inference_id": "never-sent", "label": "yes"}], [], []
    for j in sorted(chosen):
        rid, part, preds = sent[j]
        for r, (label, obj) in enumerate(zip(part["y"], preds)):
            if flip_share and rng.random() < flip_share:
                label = "no" if label == "yes" else "yes"
            lines.append({"inference_id": rid if len(part) == 1 else f"{rid}:{r}", "label": label})
            truth.append(label)
            objs.append(obj)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    else:  # a folder: half the labels as JSON Lines, the later half as CSV
        path.mkdir()
        half = len(lines) // 2
        (path / "part-0.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines[:half]))
        pd.DataFrame(lines[half:]).to_csv(path / "part-1.csv", index=False)
    return np.array(truth), objs


def _reference(truth, objs, pos_label="yes"):
    """The run's binary metrics on the joined rows, by scikit-learn."""
    pred = np.array([o["predicted_label"] for o in objs])
    p_yes = np.array([o["probability"] if o["predicted_label"] == pos_label else 1 - o["probability"] for o in objs])
    yt, yp = truth == pos_label, pred == pos_label
    return {"accuracy": skm.accuracy_score(truth, pred), "f1": skm.f1_score(yt, yp),
            "precision": skm.precision_score(yt, yp), "recall": skm.recall_score(yt, yp),
            "balanced_accuracy": skm.balanced_accuracy_score(truth, pred), "auc": skm.roc_auc_score(yt, p_yes),
            "logloss": skm.log_loss(yt, np.c_[1 - p_yes, p_yes])}


@pytest.mark.slow
def test_later_labels_join_the_capture_and_flipped_labels_violate(served, tiny_run, tmp_path):
    sent = served["sent"]
    fair_truth, fair_objs = _labels_file(tmp_path / "labels.jsonl", sent)
    res = automl_cli("monitor", f"run_dir={tiny_run.run_dir}", f"data={served['capture']}",
                     f"ground_truth={tmp_path / 'labels.jsonl'}", f"output={tmp_path / 'fair'}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(fair_truth)} of {2 * N_REQUESTS} prediction(s) joined" in res.stdout
    out = json.loads((tmp_path / "fair" / "model_quality.json").read_text())
    assert out["counts"]["joined"] == len(fair_truth) > 0.7 * N_REQUESTS  # every row of 56 requests
    assert out["counts"]["labels"] == len(fair_truth) + 1  # one label whose request was never captured
    assert out["counts"]["predictions_without_label"] == 2 * N_REQUESTS - len(fair_truth)
    for name, want in _reference(fair_truth, fair_objs).items():
        assert out["metrics"][name]["value"] == pytest.approx(want, rel=1e-9), name
        m = out["metrics"][name]
        assert m["lower"] <= m["value"] <= m["upper"] and not m["violated"]
        assert (m["threshold"] is None) == (name in ("precision", "recall"))  # reported, not constrained
    assert out["metrics"]["auc"]["constant"] == 0.5
    assert "Model quality" in (tmp_path / "fair" / "report.html").read_text()

    flipped_truth, _ = _labels_file(tmp_path / "flipped_labels", sent, flip_share=0.3)  # a folder: jsonl + csv
    res = automl_cli("monitor", f"run_dir={tiny_run.run_dir}", f"data={served['capture']}",
                     f"ground_truth={tmp_path / 'flipped_labels'}", f"output={tmp_path / 'flipped'}")
    assert res.returncode == 3, res.stdout + res.stderr
    assert json.loads((tmp_path / "flipped" / "model_quality.json").read_text())["counts"]["joined"] == len(
        flipped_truth)
    found = json.loads((tmp_path / "flipped" / "constraint_violations.json").read_text())["violations"]
    assert {v["constraint_check_type"] for v in found} == {"model_quality_check"}
    assert any(v["feature_name"] == "model quality (accuracy)" for v in found)
    page = (tmp_path / "flipped" / "report.html").read_text()
    assert page.count('<td class="v">violated</td>') == len(found) and "<h2>model quality" not in page  # one section


@pytest.mark.slow
def test_bad_ground_truth_is_a_one_line_error(served, tiny_run, tmp_path, capsys):
    no_label = tmp_path / "no_label.csv"
    no_label.write_text("inference_id,outcome\norder-0:0,yes\n")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\x00\xff{not json\n")
    cases = ((no_label, "has no column label"), (tmp_path / "missing.jsonl", "nothing to read"),
             (garbage, "cannot parse"))
    for path, words in cases:
        code = main(["monitor", f"run_dir={tiny_run.run_dir}", f"data={served['capture']}",
                     f"ground_truth={path}", f"output={tmp_path / path.stem}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and words in err[0] and "ground_truth" in err[0], err
    table = tmp_path / "batch.csv"
    make_binary_frame(40, seed=2).to_csv(table, index=False)
    assert main(["monitor", f"run_dir={tiny_run.run_dir}", f"data={table}", f"ground_truth={no_label}"]) == 2
    assert "capture files" in capsys.readouterr().err


@pytest.mark.slow
def test_watch_mode_keeps_each_metric_over_the_batches(served, tiny_run, tmp_path, chromium):
    lines = b"".join(p.read_bytes() for p in sorted(served["capture"].glob("capture-*.jsonl"))).splitlines(True)
    truth, _ = _labels_file(tmp_path / "labels.jsonl", served["sent"])
    watched = tmp_path / "watched"
    watched.mkdir()
    stats, cons = load_baseline(str(tiny_run.run_dir))
    meta = {"run_dir": str(tiny_run.run_dir), "data": str(watched), "metric": "f1"}
    watcher = Watcher(str(watched), stats, cons, str(tmp_path / "out"), 1.0, meta,
                      ground_truth=str(tmp_path / "labels.jsonl"))
    half = len(lines) // 2
    for n, part in enumerate((lines[:half], lines[half:])):
        (watched / f"capture-20260101T00000{n}-1-{n:06d}.jsonl").write_bytes(b"".join(part))
        assert watcher.poll() is not None
    history = json.loads((tmp_path / "out" / "model_quality_history.json").read_text())["batches"]
    assert len(history) == 2 and all(b["metrics"]["accuracy"]["threshold"] == history[0]["metrics"]["accuracy"][
        "threshold"] for b in history)
    assert sum(b["joined"] for b in history) == len(truth)
    page = (tmp_path / "out" / "model_quality.html").read_text()
    assert page.count('class="threshold"') == 5 and page.count('class="batch"') == 2 * 7  # 7 metrics, 5 constrained
    chromium.call("Page.enable")
    chromium.call("Page.navigate", url=(tmp_path / "out" / "model_quality.html").as_uri())
    chromium.wait_event("Page.loadEventFired")
    drawn = chromium.evaluate("""Array.from(document.querySelectorAll('svg.quality-chart')).map(function(svg){
        var box = svg.getBoundingClientRect(), line = svg.querySelector('polyline.threshold');
        var dots = Array.from(svg.querySelectorAll('circle.batch')).map(function(c){
            var r = c.getBoundingClientRect(); return r.top >= box.top && r.bottom <= box.bottom && r.width > 0;});
        return {metric: svg.dataset.metric, line: line ? line.getBoundingClientRect().width : 0, dots: dots};})""")
    assert len(drawn) == 7 and all(len(d["dots"]) == 2 and all(d["dots"]) for d in drawn), drawn
    assert sorted(d["metric"] for d in drawn if d["line"] > 0) == ["accuracy", "auc", "balanced_accuracy", "f1",
                                                                    "logloss"]


@pytest.mark.slow
def test_watch_mode_before_any_label_arrives_checks_the_data_and_waits(served, tiny_run, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    first = sorted(served["capture"].glob("capture-*.jsonl"))[0]
    (watched / first.name).write_bytes(first.read_bytes())
    stats, cons = load_baseline(str(tiny_run.run_dir))
    watcher = Watcher(str(watched), stats, cons, str(tmp_path / "out"), 1.0,
                      {"run_dir": str(tiny_run.run_dir), "data": str(watched), "metric": "f1"},
                      ground_truth=str(tmp_path / "labels-not-yet/"))
    outcome = watcher.poll()
    assert outcome is not None and outcome.quality.counts["joined"] == 0 and not outcome.quality.violations
    assert "no model-quality verdict" in outcome.quality.note and watcher.n_violations == 0


@pytest.mark.slow
def test_a_run_without_model_quality_constraints_gets_them_from_its_leaderboard(served, tiny_run, tmp_path):
    from automl.monitor.quality import run_quality_check

    _labels_file(tmp_path / "labels.jsonl", served["sent"])
    stats, cons = load_baseline(str(tiny_run.run_dir))
    older = {k: v for k, v in cons.items() if k != "model_quality"}  # as an earlier release wrote it
    files = [str(p) for p in sorted(served["capture"].glob("capture-*.jsonl"))]
    res = run_quality_check(files, str(tmp_path / "labels.jsonl"), str(tiny_run.run_dir), older)
    written = {c["metric"]: c["threshold"] for c in cons["model_quality"]}
    assert {n: m["threshold"] for n, m in res.metrics.items() if m["threshold"] is not None} == written
