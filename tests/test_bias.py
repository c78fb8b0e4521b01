"""Bias metrics of a facet column (issue 19, point 4): CI, DPL and DPPL with bootstrap intervals,
in bias.json, report.html and run.bias; a bad facet is a one-line error (docs/bias.md)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.explain.bias import bias_frame, facet_bias
from conftest import automl_cli
from test_estimator import OTHER_CANDIDATES

N_A, N_B = 600, 400  # group B is the smaller one: the comparison is B against the rest
YES_A, YES_B = 360, 120  # 60% of A and 30% of B have the favourable label: B 30 points less often


def unfair_frame(seed: int = 0) -> pd.DataFrame:
    """Group B gets 'yes' 30 points less often than A (exactly: 60% against 30%); x1 predicts the label."""
    rng = np.random.default_rng(seed)
    parts = []
    for group, n, yes in (("A", N_A, YES_A), ("B", N_B, YES_B)):
        x1 = rng.normal(size=n)
        order = np.argsort(-(x1 + rng.normal(scale=0.7, size=n)))
        y = np.full(n, "no", dtype=object)
        y[order[:yes]] = "yes"
        parts.append(pd.DataFrame({"group": group, "x1": x1, "x2": rng.uniform(0, 10, size=n), "y": y}))
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def covers(interval: dict, value: float) -> bool:
    return interval["low"] <= value <= interval["high"]


def hand_gap(group: np.ndarray, d: str, favourable: np.ndarray) -> float:
    """Share favourable of the rest minus that of group d (numpy, no automl)."""
    return float(favourable[group != d].mean() - favourable[group == d].mean())


# ----------------------------------------------------------------------------- the metrics
def test_ci_dpl_dppl_match_hand_computed_numbers_and_the_intervals_cover_them():
    df = unfair_frame()
    rng = np.random.default_rng(1)
    label = (df["y"] == "yes").to_numpy(dtype=float)
    pred = np.where(rng.random(len(df)) < 0.15, 1 - label, label)  # a model right 85% of the time
    doc = facet_bias(df["group"], label, pred, seed=0)
    (c,) = doc["comparisons"]
    g = df["group"].to_numpy()
    n_a, n_d = (g == "A").sum(), (g == "B").sum()
    assert c["group"] == "B" and (c["n"], c["n_rest"]) == (N_B, N_A)
    assert c["ci"]["value"] == pytest.approx((n_a - n_d) / (n_a + n_d)) == pytest.approx(0.2)
    assert c["dpl"]["value"] == pytest.approx(hand_gap(g, "B", label)) == pytest.approx(0.30)
    assert c["dppl"]["value"] == pytest.approx(hand_gap(g, "B", pred))
    for m in ("ci", "dpl", "dppl"):
        assert covers(c[m], c[m]["value"]) and c[m]["low"] > 0, (m, c[m])  # B's gap is real: 0 is outside


def test_the_intervals_are_those_of_a_plain_row_bootstrap():
    """The cell-count shortcut is the row bootstrap: same interval as resampling rows in numpy."""
    df = unfair_frame()
    label = (df["y"] == "yes").to_numpy(dtype=float)
    g = df["group"].to_numpy()
    rng = np.random.default_rng(7)
    draws = []
    for _ in range(2000):
        i = rng.integers(0, len(df), len(df))
        draws.append(hand_gap(g[i], "B", label[i]))
    low, high = np.percentile(draws, [2.5, 97.5])
    dpl = facet_bias(df["group"], label, None, seed=0, resamples=2000)["comparisons"][0]["dpl"]
    assert dpl["low"] == pytest.approx(low, abs=0.012) and dpl["high"] == pytest.approx(high, abs=0.012)


def test_a_fair_table_gives_intervals_that_contain_zero():
    rng = np.random.default_rng(3)
    n = 2000
    facet = pd.Series(rng.choice(["A", "B"], n))
    label, pred = (rng.random(n) < 0.4).astype(float), (rng.random(n) < 0.4).astype(float)
    (c,) = facet_bias(facet, label, pred, seed=0)["comparisons"]
    for m in ("ci", "dpl", "dppl"):
        assert covers(c[m], 0.0), (m, c[m])


def test_a_facet_with_more_than_two_values_sets_each_against_the_rest():
    rng = np.random.default_rng(4)
    g = rng.choice(["north", "south", "west"], 900, p=[0.5, 0.3, 0.2])
    label = (rng.random(900) < np.where(g == "west", 0.2, 0.5)).astype(float)
    doc = facet_bias(pd.Series(g), label, None, seed=0)
    assert [c["group"] for c in doc["comparisons"]] == ["north", "south", "west"]
    west = doc["comparisons"][2]
    assert west["dpl"]["value"] == pytest.approx(hand_gap(g, "west", label))
    assert west["ci"]["value"] == pytest.approx(((g != "west").sum() - (g == "west").sum()) / 900)
    assert west["dppl"] is None and doc["n_predicted"] == 0  # no predictions given: no DPPL
    frame = bias_frame(doc)
    assert list(frame.index) == ["north", "south", "west"] and frame.loc["west", "dpl"] == west["dpl"]["value"]


def test_regression_compares_mean_targets_and_predictions():
    rng = np.random.default_rng(5)
    g = rng.choice(["A", "B"], 500, p=[0.6, 0.4])
    y = rng.normal(size=500) + np.where(g == "B", -2.0, 0.0)
    (c,) = facet_bias(pd.Series(g), y, y + rng.normal(scale=0.1, size=500), seed=0)["comparisons"]
    assert c["dpl"]["value"] == pytest.approx(y[g == "A"].mean() - y[g == "B"].mean())
    assert covers(c["dpl"], 2.0) and c["dppl"]["low"] > 1.5


def test_the_plain_reading_says_less_often_more_often_or_within_the_noise():
    from automl.report.bias import readings

    def doc(measure, *gaps):
        comps = [{"group": f"G{i}", "n": 10, "n_rest": 30, "dpl": {"value": v, "low": lo, "high": hi}, "dppl": None}
                 for i, (v, lo, hi) in enumerate(gaps)]
        return {"measure": measure, "favourable": "yes", "n_rows": 40, "confidence": 0.95, "comparisons": comps}

    less, more, fair = readings(doc("share favourable", (0.12, 0.08, 0.16), (-0.05, -0.09, -0.01), (0.01, -0.02, 0.04)))
    assert "Group G0 receives the favourable outcome (yes) 12.0 points less often than the rest in the training " \
           "labels (95% interval 8.0 to 16.0)" in less
    assert "G1 receives the favourable outcome (yes) 5.0 points more often" in more
    assert "(95% interval 1.0 to 9.0)" in more
    assert "differ by 1.0 points, within the noise: the 95% interval -2.0 to 4.0 includes 0" in fair
    (mean,) = readings(doc("mean", (2.5, 1.5, 3.5)))
    assert "Group G0's mean target is 2.5 lower than the rest's (95% interval 1.5 to 3.5)" in mean


def test_an_ensembles_out_of_fold_labels_are_its_members_blend_at_the_tuned_threshold(tmp_path):
    from automl.rundir.bias import chosen_oof, oof_favourable

    a = np.array([[0.9, 0.1], [0.4, 0.6], [np.nan, np.nan], [0.2, 0.8]])
    b = np.array([[0.7, 0.3], [0.8, 0.2], [np.nan, np.nan], [0.6, 0.4]])
    for tid, oof in (("t1", a), ("t2", b)):
        (tmp_path / "trials" / tid).mkdir(parents=True)
        np.save(tmp_path / "trials" / tid / "oof.npy", oof)
    best = {"trial_id": "ensemble", "members": [{"trial_id": "t1", "weight": 0.75}, {"trial_id": "t2", "weight": 0.25}]}
    blend = chosen_oof(str(tmp_path), {}, best)
    np.testing.assert_allclose(blend[[0, 1, 3]], (0.75 * a + 0.25 * b)[[0, 1, 3]])
    fav = oof_favourable(blend, ["no", "yes"], "yes", "yes", threshold=0.45)  # P(yes): 0.15, 0.5, -, 0.7
    np.testing.assert_array_equal(fav[[0, 1, 3]], [0.0, 1.0, 1.0])
    assert np.isnan(fav[2])  # no out-of-fold prediction: not counted in DPPL
    assert np.array_equal(oof_favourable(blend, ["no", "yes"], "no", "yes", threshold=0.6)[[0, 1, 3]], [1.0, 1.0, 0.0])
    assert chosen_oof(str(tmp_path), {}, {"trial_id": "missing"}) is None


# ----------------------------------------------------------------------------- a run with a facet
@pytest.fixture(scope="module")
def bias_run(tmp_path_factory):
    """A fit of the unfair table with explain.facet=group (linear only, forked workers, 2 folds)."""
    import automl

    out = tmp_path_factory.mktemp("bias_run")
    return automl.fit(unfair_frame(), target="y", output_dir=str(out), explain={"facet": "group"},
                      budget={"max_trials": 2, "time_limit_s": 20}, search={"executor": "local", "ensemble": False},
                      validation={"n_folds": 2, "rerank_top": 0}, notebooks=False,
                      candidates={name: {"enabled": False} for name in OTHER_CANDIDATES})


def oof_yes(run) -> np.ndarray:
    """The chosen trial's out-of-fold label 'yes', by its tuned threshold (numpy on the run's files)."""
    best = run.summary["best"]
    oof = np.load(Path(run.run_dir) / "trials" / str(best["trial_id"]) / "oof.npy")
    pos = run.summary["classes"].index("yes")
    if best.get("threshold") is not None:
        return (oof[:, pos] >= best["threshold"]).astype(float)
    return (oof.argmax(axis=1) == pos).astype(float)


@pytest.mark.slow
def test_a_fit_with_a_facet_writes_bias_json_with_the_hand_computed_numbers(bias_run):
    doc = json.loads((Path(bias_run.run_dir) / "bias.json").read_text())
    train = bias_run.training_rows()
    g, label = train["group"].to_numpy(), (train["y"] == "yes").to_numpy(dtype=float)
    assert (doc["facet"], doc["favourable"], doc["favourable_from"]) == ("group", "yes", "the positive class")
    assert doc["facet_is_feature"] and "out-of-fold" in doc["predictions"]
    (c,) = doc["comparisons"]
    assert c["group"] == "B"
    assert c["ci"]["value"] == pytest.approx(0.2) and c["dpl"]["value"] == pytest.approx(0.3)
    assert c["dppl"]["value"] == pytest.approx(hand_gap(g, "B", oof_yes(bias_run)))
    assert c["dpl"]["value"] == pytest.approx(hand_gap(g, "B", label))
    for m in ("ci", "dpl", "dppl"):
        assert covers(c[m], c[m]["value"]), (m, c[m])
    assert "bias.json" in json.loads((Path(bias_run.run_dir) / "manifest.json").read_text())["files"]
    # run.bias() gives the same table; run.bias(df) uses the model's predictions on df
    assert bias_run.bias().loc["B", "dppl"] == pytest.approx(c["dppl"]["value"])
    new = unfair_frame(seed=9)
    table = bias_run.bias(new)
    predicted = (bias_run.predict(new) == "yes").astype(float)
    assert table.loc["B", "dppl"] == pytest.approx(hand_gap(new["group"].to_numpy(), "B", predicted))
    assert table.loc["B", "dpl"] == pytest.approx(0.3) and table.attrs["predictions"].endswith("on the table")


@pytest.mark.slow
def test_the_report_shows_the_bias_section_in_headless_chromium(bias_run, chromium):
    page = Path(bias_run.run_dir) / "report.html"
    text = page.read_text()
    assert '<section id="bias"><h2>Bias</h2>' in text
    assert "Group B receives the favourable outcome (yes) 30.0 points less often than the rest in the training labels" \
        in text
    dt = chromium
    for domain in ("Runtime", "Log", "Page"):
        dt.call(f"{domain}.enable")
    dt.call("Page.navigate", url=page.as_uri())
    dt.wait_event("Page.loadEventFired")
    seen = dt.evaluate("""(function(){var s=document.getElementById('bias'); var r=s.getBoundingClientRect();
        return {h:r.height, w:r.width, rows:s.querySelectorAll('#bias-table tbody tr').length,
                heads:Array.from(s.querySelectorAll('#bias-table th')).map(function(t){return t.textContent;}),
                lead:s.querySelector('ul.lead li').textContent};})()""")
    assert seen["rows"] == 1 and seen["h"] > 50 and seen["w"] > 300, seen
    assert any(h.startswith("DPPL") for h in seen["heads"]) and "30.0 points less often" in seen["lead"], seen
    assert dt.errors() == []


# ----------------------------------------------------------------------------- bad facets
@pytest.fixture(scope="module")
def unfair_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("bias_data") / "unfair.csv"
    unfair_frame().to_csv(path, index=False)
    return path


def test_an_unknown_facet_is_one_line_naming_the_closest_column_exit_2(unfair_csv, tmp_path):
    res = automl_cli("fit", f"data.path={unfair_csv}", "data.target=y", "explain.facet=gruop",
                     f"output_dir={tmp_path}/out", timeout=120)
    assert res.returncode == 2, res.stderr
    lines = [l for l in res.stderr.strip().splitlines() if not l.startswith("[automl]")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "explain.facet 'gruop' is not a column of the table (did you mean 'group'?)" in lines[0], lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("args, expected", [
    (["explain.facet=group", "explain.facet_positive=maybe"], "explain.facet_positive='maybe' is not a class"),
    (["explain.facet=x1"], "explain.facet 'x1' has 1000 distinct values"),
    (["explain.facet=y"], "explain.facet 'y' is the target"),
    (["explain.facet_positive=yes"], "explain.facet_positive is set without explain.facet"),
], ids=["not a class", "too many values", "the target", "positive without facet"])
def test_other_bad_facets_are_one_line_errors(unfair_csv, tmp_path, capsys, args, expected):
    from automl.cli import main

    code = main(["fit", f"data.path={unfair_csv}", "data.target=y", f"output_dir={tmp_path}/out", *args])
    err = [l for l in capsys.readouterr().err.strip().splitlines() if not l.startswith("[automl]")]
    assert code == 2 and len(err) == 1 and expected in err[0], err


from test_report import chromium  # noqa: E402,F401 - the headless Chromium fixture of the report test
