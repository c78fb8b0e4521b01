"""Every user error of `automl fit`/`automl predict`: one line, exit 2, no traceback."""
import pytest

from conftest import automl_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text("a,b,y\n")
    (d / "ok.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    (d / "all_missing.csv").write_text("a,y\n" + "".join(f"{i},\n" for i in range(20)))
    (d / "single.csv").write_text("a,y\n" + "".join(f"{i},1\n" for i in range(20)))
    (d / "binary.bin").write_bytes(b"PK\x03\x04 not really a zip \x00\x01")
    (d / "broken.parquet").write_bytes(b"this is not parquet")
    return d


CASES = [
    ("missing file", ["data.path={d}/nope.csv", "data.target=y"], "file not found"),
    ("unreadable file", ["data.path={d}/broken.parquet", "data.target=y"], "cannot parse"),
    ("empty file", ["data.path={d}/empty.csv", "data.target=y"], "empty"),
    ("header only", ["data.path={d}/header_only.csv", "data.target=y"], "no data rows"),
    ("absent target", ["data.path={d}/ok.csv", "data.target=label"], "columns are: a, b, y"),
    ("all-missing target", ["data.path={d}/all_missing.csv", "data.target=y"], "all missing"),
    ("single-valued target", ["data.path={d}/single.csv", "data.target=y"], "single value"),
    ("unknown metric", ["data.path={d}/ok.csv", "data.target=y", "metric=bogus"], "metric 'bogus' is unknown"),
    ("metric misfit", ["data.path={d}/ok.csv", "data.target=y", "problem_type=regression", "metric=auc"], "does not fit"),
    ("metric misfit inferred", ["data.path={d}/ok.csv", "data.target=y", "metric=rmse"], "does not fit"),
    ("unknown problem type", ["problem_type=ranking"], "problem_type must be one of"),
    ("unknown config key", ["foo=1"], "foo"),
    ("unknown nested key", ["budget.max_trails=3"], "max_trails"),
    ("bad value type", ["budget.max_trials=many"], "max_trials"),
    ("re-rank share out of range", ["validation.rerank_share=1.5"], "validation.rerank_share must be in [0, 1); got 1.5"),
    ("unknown processing value", ["data.path={d}/ok.csv", "data.target=y", "candidates.dpp4-extra_trees.processing.scale=bogus"],
     "candidates.dpp4-extra_trees.processing: scale='bogus' is unknown; use one of none, standard"),
]


@pytest.mark.parametrize("name, args, expected", CASES, ids=[c[0] for c in CASES])
def test_fit_errors_are_one_line(files, tmp_path, name, args, expected):
    res = automl_cli("fit", *[a.format(d=files) for a in args], f"output_dir={tmp_path}/out", timeout=120)
    assert res.returncode == 2, res.stderr
    lines = [l for l in res.stderr.strip().splitlines() if not l.startswith("[automl]")]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert expected in lines[0], lines[0]


def test_verbose_shows_traceback(files, tmp_path):
    res = automl_cli("fit", f"data.path={files}/nope.csv", "verbose=true", f"output_dir={tmp_path}/o", timeout=120)
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_predict_errors(files, tmp_path):
    res = automl_cli("predict", f"run_dir={tmp_path}/missing", f"input={files}/ok.csv", f"output={tmp_path}/p.csv")
    assert res.returncode == 2 and "run_dir" in res.stderr and "Traceback" not in res.stderr
    res = automl_cli("predict", "bogus=1")
    assert res.returncode == 2 and "unknown key 'bogus'" in res.stderr
