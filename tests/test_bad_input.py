"""A table of malformed and awkward inputs. Each is either handled correctly (read, typed and
fitted by a real candidate pipeline, in process and without Ray) or refused through the real
CLI entry point with one line that names the problem (exit 2, no traceback). Rows are never
dropped without a logged count."""
from __future__ import annotations

import gzip
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import pytest

from automl.cli import main as cli_main
from automl.config import compose_config
from automl.data.io import read_table
from automl.data.types import FEATURE_TYPES, infer_column_types
from automl.problem import encode_target, resolve_problem
from automl.runner import _drop_bad_targets, load_training_data

RNG = np.random.default_rng(7)


def _base(n: int = 60) -> pd.DataFrame:
    x = RNG.normal(size=n)
    return pd.DataFrame({"x": x, "c": RNG.choice(["a", "b", "c"], n), "y": np.where(x > 0, "yes", "no")})


def _text(path: Path, text: str, encoding: str = "utf-8") -> None:
    path.write_bytes(text.encode(encoding))


def _csv(df: pd.DataFrame, **kw) -> str:
    return df.to_csv(index=False, **kw)


@dataclass
class Case:
    name: str
    file: str
    write: Callable[[Path], None]
    target: str = "y"
    error: Optional[str] = None           # expected words of the one-line error (None: must fit)
    check: Optional[Callable[[pd.DataFrame], None]] = None  # on the table as read
    dropped: Optional[int] = None         # rows dropped with a logged count
    extra: tuple = ()                     # extra CLI overrides


def _dates(p: Path) -> None:
    n = 60
    days = pd.date_range("2021-01-01", periods=n, freq="7D")
    fmts = ["%Y-%m-%d", "%d/%m/%Y %H:%M", "%b %d, %Y", "%Y%m%dT%H%M%S"]
    col = [d.strftime(fmts[i % 4]) for i, d in enumerate(days)]
    df = _base(n)
    df["when"] = col
    p.write_text(_csv(df))


def _excel_sheets(p: Path) -> None:
    with pd.ExcelWriter(p) as xw:
        pd.DataFrame({"note": ["cover sheet"]}).to_excel(xw, sheet_name="cover", index=False)
        _base().to_excel(xw, sheet_name="train", index=False)


def _nested_parquet(p: Path) -> None:
    df = _base()
    df["tags"] = [["t1", "t2"][: i % 3] for i in range(len(df))]
    df["meta"] = [{"k": int(i % 4), "s": "v"} for i in range(len(df))]
    df.to_parquet(p, index=False)


def _ragged(p: Path) -> None:
    lines = ["x,c,y"] + [f"{v:.3f},a,{'yes' if v > 0 else 'no'}" for v in RNG.normal(size=30)]
    lines[7] += ",surplus"
    p.write_text("\n".join(lines) + "\n")


def _short_rows(p: Path) -> None:
    lines = ["x,c,y"] + [f"{v:.3f},a,{'yes' if v > 0 else 'no'}" for v in RNG.normal(size=30)]
    lines[5] = "0.5,a"  # a missing trailing field: the target is missing on that row
    p.write_text("\n".join(lines) + "\n")


def _quoted_newlines(p: Path) -> None:
    df = _base()
    df["note"] = [f"line one\nline two {i}, with comma" for i in range(len(df))]
    p.write_text(_csv(df))


def _semicolon_decimal_comma(p: Path) -> None:
    df = _base()
    body = df.to_csv(index=False, sep=";", decimal=",")
    p.write_text(body)


def _many_levels(p: Path) -> None:
    n = 20000
    x = RNG.normal(size=n)
    levels = np.array([f"lvl{i:05d}" for i in range(10000)])
    pd.DataFrame({"x": x, "big": levels[RNG.integers(0, 10000, n)], "y": (x > 0).astype(int)}).to_csv(p, index=False)


def _hundred_classes(p: Path) -> None:
    y = np.repeat([f"class_{i:03d}" for i in range(100)], 2)
    x = np.arange(200) + RNG.normal(scale=0.1, size=200)
    pd.DataFrame({"x": x, "z": RNG.normal(size=200), "y": y}).to_csv(p, index=False)


def _huge_values(p: Path) -> None:
    df = _base()
    df["x"] = df["x"].astype(object)
    df.loc[3, "x"] = 1e308
    df.loc[4, "x"] = -1e300
    df["big"] = np.linspace(1e200, 1e250, len(df))
    p.write_text(_csv(df))


def _regression(n: int = 60) -> pd.DataFrame:
    x = RNG.normal(size=n)
    return pd.DataFrame({"x": x, "c": RNG.choice(["a", "b"], n), "y": 3 * x + RNG.normal(size=n)})


def _nan_inf_target(p: Path) -> None:
    df = _regression()
    df["y"] = df["y"].astype(object)
    df.loc[[1, 2], "y"] = np.nan
    df.loc[3, "y"] = "inf"
    df.loc[4, "y"] = "-inf"
    p.write_text(_csv(df))


def _mixed(p: Path) -> None:
    df = _base()
    df["mixed"] = [i % 7 if i % 3 else f"s{i % 4}" for i in range(len(df))]
    df["mixed_float"] = [str(v) if i % 5 else "n/a" for i, v in enumerate(RNG.normal(size=len(df)))]
    p.write_text(_csv(df))


def _all_missing(p: Path) -> None:
    df = _base()
    df["empty_num"] = np.nan
    df["empty_txt"] = None
    p.write_text(_csv(df))


def _unicode_target(p: Path) -> None:
    df = _base().rename(columns={"y": "Zielgröße (ja/nein) ✓"})
    p.write_text(_csv(df), encoding="utf-8")


def _check_cols(*names):
    def check(df):
        assert list(df.columns)[: len(names)] == list(names), list(df.columns)
    return check


def _check_type(col, kind):
    def check(df):
        assert infer_column_types(df.drop(columns=["y"]))[col] == kind, infer_column_types(df)
    return check


def _check_value(col, value):
    def check(df):
        assert value in set(df[col]), sorted(map(str, set(df[col])))[:5]
    return check


CASES = [
    Case("latin-1 encoding", "a.csv", lambda p: _text(p, _csv(_base().assign(c=lambda d: d.c + "é")), "latin-1"),
         check=_check_value("c", "aé")),
    Case("cp1252 encoding (euro sign)", "a.csv",
         lambda p: _text(p, _csv(_base().assign(c=lambda d: d.c + "€")), "cp1252"), check=_check_value("c", "a€")),
    Case("utf-8 with BOM", "a.csv", lambda p: _text(p, "\ufeff" + _csv(_base())), check=_check_cols("x", "c", "y")),
    Case("utf-16 with BOM", "a.csv", lambda p: _text(p, _csv(_base()), "utf-16"), check=_check_cols("x", "c", "y")),
    Case("duplicate column names", "a.csv", lambda p: p.write_text("x,x,y\n1,2,yes\n3,4,no\n5,6,yes\n"),
         error="duplicate column name"),
    Case("header only", "a.csv", lambda p: p.write_text("x,c,y\n"), error="no data rows"),
    Case("empty file", "a.csv", lambda p: p.write_text(""), error="is empty"),
    Case("one row", "a.csv", lambda p: p.write_text("x,c,y\n1.0,a,yes\n"), error="single value"),
    Case("NaN and inf target (regression)", "a.csv", _nan_inf_target, dropped=4),
    Case("target all missing", "a.csv", lambda p: p.write_text("x,y\n1,\n2,\n3,\n"), error="all missing"),
    Case("mixed-type columns", "a.csv", _mixed, check=_check_type("mixed", "categorical")),
    Case("all-missing columns", "a.csv", _all_missing, check=_check_type("empty_txt", "constant")),
    Case("10,000-level categorical", "a.csv", _many_levels, check=_check_type("big", "categorical")),
    Case("100 classes, 2 rows each", "a.csv", _hundred_classes,
         check=lambda df: len(resolve_problem(df["y"], "auto", "auto", "y").classes) == 100 or pytest.fail()),
    Case("dates in several formats", "a.csv", _dates, check=_check_type("when", "datetime")),
    Case("ragged rows (extra field)", "a.csv", _ragged, error="line 8"),
    Case("short rows (missing fields)", "a.csv", _short_rows, dropped=1),
    Case("quoted newlines", "a.csv", _quoted_newlines, check=lambda df: len(df) == 60 or pytest.fail(str(len(df)))),
    Case("semicolon delimiter, decimal comma", "a.csv", _semicolon_decimal_comma,
         check=lambda df: pd.api.types.is_float_dtype(df["x"]) or pytest.fail(str(df.dtypes))),
    Case("huge numeric values", "a.csv", _huge_values),
    Case("excel, several sheets (named)", "a.xlsx", _excel_sheets, extra=("data.sheet=train",)),
    Case("excel, unknown sheet", "a.xlsx", _excel_sheets, extra=("data.sheet=nope",), error="sheet 'nope'"),
    Case("parquet with nested types", "a.parquet", _nested_parquet, check=_check_value("tags", '["t1", "t2"]')),
    Case("target name with spaces and unicode", "a.csv", _unicode_target, target="Zielgröße (ja/nein) ✓"),
    Case("target not a column", "a.csv", lambda p: p.write_text(_csv(_base())), target="label",
         error="'label' is not a column"),
    Case("gzip-compressed csv", "a.csv.gz", lambda p: p.write_bytes(gzip.compress(_csv(_base()).encode()))),
    Case("tab-separated .txt", "a.txt", lambda p: p.write_text(_base().to_csv(index=False, sep="\t"))),
    Case("binary garbage named .csv", "a.csv", lambda p: p.write_bytes(bytes(range(256)) * 20),
         error="does not look like a text table"),
    Case("json lines with a broken line", "a.jsonl",
         lambda p: p.write_text('{"x": 1, "y": "a"}\n{"x": 2, "y": \n'), error="cannot parse"),
    Case("whitespace around header names", "a.csv", lambda p: p.write_text(" x , c ,y \n" + _csv(_base(), header=False)),
         check=_check_cols("x", "c", "y")),
    Case("trailing delimiter on every row", "a.csv",
         lambda p: p.write_text("\n".join(line + "," for line in _csv(_base()).strip().split("\n")) + "\n")),
    Case("only the target column", "a.csv", lambda p: p.write_text(_csv(_base()[["y"]])), error="no usable feature"),
    Case("only constant and ID features", "a.csv",
         lambda p: p.write_text(_csv(pd.DataFrame({"id": range(60), "k": 1, "y": ["a", "b"] * 30}))),
         error="no usable feature"),
    Case("boolean-like target strings", "a.csv",
         lambda p: p.write_text(_csv(_base().assign(y=lambda d: np.where(d.x > 0, "True", "False"))))),
    Case("inf and missing tokens in features", "a.csv",
         lambda p: p.write_text(_csv(_base().assign(x=lambda d: d.x.astype(object).where(d.index % 7 > 0, "inf")
                                                    .where(d.index % 11 > 0, "NA"))))),
    Case("integer-coded ID-like target", "a.csv",
         lambda p: p.write_text(_csv(pd.DataFrame({"x": RNG.normal(size=60), "y": np.arange(60) * 1.5})))),
]


def _fit_small(df: pd.DataFrame, target: str, extra=()) -> None:
    """The in-process path of `automl fit` up to and including one real candidate pipeline fit."""
    from automl.candidates.generate import generate_candidates
    from automl.search.trial import build_pipeline, predict_matrix

    cfg = compose_config([*extra], values={"data": {"target": target, "path": "<dataframe>"}})
    frame, _ = load_training_data(cfg, frame=df)
    info = resolve_problem(frame[target], "auto", "auto", target)
    frame = _drop_bad_targets(frame, target, info.problem_type, "training")
    X = frame.drop(columns=[target])
    types = infer_column_types(X)
    features = {c: t for c, t in types.items() if t in FEATURE_TYPES}
    assert features, types
    y = encode_target(frame[target], info)
    cands, _ = generate_candidates(cfg, info.problem_type, len(frame), features)
    chosen = [c for c in cands if c.algorithm in ("linear", "xgboost")]
    assert chosen
    for cand in chosen:
        params = {"model.n_estimators": 10} if cand.algorithm == "xgboost" else {}
        pipe = build_pipeline(cand, params, features, info.problem_type, 0)
        pipe.fit(X[list(features)], y)
        out = predict_matrix(pipe, X[list(features)].head(20), info.problem_type, len(info.classes))
        assert np.all(np.isfinite(out)), (cand.name, out[:3])


@pytest.fixture
def fresh_cli_logging():
    """The CLI binds its log handler to the sys.stderr of the moment; give each test its own."""
    root = logging.getLogger("automl")
    saved = list(root.handlers)
    root.handlers.clear()
    yield
    root.handlers[:] = saved


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path, capsys, caplog, fresh_cli_logging):
    path = tmp_path / case.file
    case.write(path)
    overrides = [f"data.path={path}", f"data.target={case.target}", *case.extra]
    if case.error is not None:
        # The real CLI entry point (in process; no Ray is needed to refuse bad data).
        code = cli_main(["fit", *overrides, f"output_dir={tmp_path / 'run'}", "budget.max_trials=1"])
        err = capsys.readouterr().err.strip()
        assert code == 2, err
        assert "Traceback" not in err
        last = err.splitlines()[-1]
        assert last.startswith("automl fit: error:") and case.error in last, last
        return
    caplog.set_level(logging.INFO, logger="automl")
    sheet = next((o.split("=", 1)[1] for o in case.extra if o.startswith("data.sheet=")), None)
    df = read_table(str(path), sheet=sheet)
    if case.check:
        case.check(df)
    _fit_small(df, case.target, case.extra)
    messages = "\n".join(r.getMessage() for r in caplog.records)
    if case.dropped is not None:
        assert f"dropped {case.dropped} of" in messages, messages


def test_a_bad_input_through_the_console_script(tmp_path):
    from conftest import automl_cli

    (tmp_path / "a.csv").write_text("x,x,y\n1,2,yes\n3,4,no\n")
    res = automl_cli("fit", f"data.path={tmp_path}/a.csv", "data.target=y", f"output_dir={tmp_path}/run")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "duplicate column name" in res.stderr.strip().splitlines()[-1]


def test_table_has_at_least_thirty_cases():
    assert len(CASES) >= 30 and len({c.name for c in CASES}) == len(CASES)
