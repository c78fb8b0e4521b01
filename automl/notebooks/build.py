"""The two notebooks of a run folder, built with nbformat and saved with their outputs.

``data_exploration.ipynb`` profiles the training rows; ``candidate_definitions.ipynb`` shows
each candidate (processing and why, algorithm, search space), how the search runs and how the
final model is chosen, and trains one candidate end to end. Code cells read only the run
folder's files, relative to the notebook, so the notebook reruns wherever the folder goes.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Dict, List, Optional

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from automl import artifacts as art
from automl.rundir.layout import (CANDIDATES_DIR, CANDIDATES_NOTEBOOK, CONFIG_FILE, DATA_DIR, EXPLORATION_NOTEBOOK,
                                  SUMMARY_FILE)

log = logging.getLogger(__name__)

EXPLORATION = EXPLORATION_NOTEBOOK
CANDIDATES = CANDIDATES_NOTEBOOK
EXPLORATION_SECTIONS = ("Dataset summary", "Target analysis", "Columns", "Prediction power",
                        "Correlations", "Insights")
CANDIDATE_SECTIONS = ("How the search runs", "Candidates", "Train one candidate end to end")
TRAINING_TAG = "automl-trains"  # cells with this tag run when the user executes the notebook, not at fit time

_LOAD = """\
import json
import matplotlib.pyplot as plt
import pandas as pd
import yaml
from automl import analysis
from automl.analysis import plots

summary = json.load(open("summary.json"))          # the run's problem type, target, column types
config = yaml.safe_load(open("config.yaml"))       # the run's resolved config
df = pd.read_parquet("data/train.parquet")         # the exact training rows (target included)
target, problem_type = summary["target"], summary["problem_type"]
column_types = summary["column_types"]
seed = config.get("seed", 0)
print(f"{len(df):,} rows x {df.shape[1]} columns; target {target!r}; problem type {problem_type}")"""


_EXPLAIN = """\
import os
import matplotlib.pyplot as plt
import automl

if os.path.exists("model.skops"):  # the finished run folder
    run = automl.load(".")
    rows = df.drop(columns=[summary["target"]]).sample(min(200, len(df)), random_state=0)
    contributions = run.explain(rows)   # one row per row, one column per input column, base_value
    print(contributions.attrs["method"], "| output space:", contributions.attrs["space_description"])
    features = list(run.model.feature_columns)
    contributions[features].abs().mean().sort_values().tail(20).plot.barh(title="mean |contribution|")
    plt.show()
    display(contributions.head())
else:
    print("No model yet (this notebook is written before training): run this cell in the finished run folder")"""


def _metadata() -> Dict[str, Any]:
    return {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}}


def scale_note(summary: Dict[str, Any]) -> List[nbformat.NotebookNode]:
    """A distributed run (summary.json ``scale.mode``): one markdown cell saying which statistics
    are exact over every row and which come from the training sample; none otherwise."""
    scale = summary.get("scale") or {}
    if scale.get("mode") != "distributed":
        return []
    rows = scale.get("rows") or {}
    train = int(rows.get("train", summary.get("n_rows", 0)))
    exact = ", ".join(scale.get("exact") or ["row counts", "class counts", "numeric count/missing/mean/std/min/max"])
    sampled = ", ".join(c for c in scale.get("sampled") or [] if c != "the notebooks' statistics")
    return [new_markdown_cell(
        "> **Distributed run: this notebook works on a sample.** The run read "
        f"{int(summary.get('n_rows_read', 0)):,} rows ({', '.join(f'{k} {int(v):,}' for k, v in rows.items())}).\n>\n"
        f"> - **Exact**, streamed over every row (`summary.json`, `baseline/statistics.json`): {exact}.\n"
        f"> - **From the sample**: every table and figure below is computed on `data/train.parquet`, a stratified "
        f"sample of {int(scale.get('sample_rows', 0)):,} of the {train:,} training rows; so are the {sampled}.")]


def exploration_notebook(summary: Dict[str, Any]) -> nbformat.NotebookNode:
    """The data exploration notebook (cells only; outputs come from executing it)."""
    cells = [
        new_markdown_cell(
            f"# Data exploration: `{summary.get('target')}`\n\n"
            "Written by `automl fit` from this run folder's `data/train.parquet` (the training rows) and "
            "`summary.json`. It is saved with its outputs; *Run All* recomputes every table and figure."),
        *scale_note(summary),
        new_code_cell(_LOAD),
        new_markdown_cell("## 1. Dataset summary\nRows, columns, duplicate rows, missing values, the detected "
                          "problem type and why, and how many columns of each inferred type."),
        new_code_cell("analysis.dataset_summary(df, target, problem_type, summary['problem_type_reason'], "
                      "column_types)"),
        new_markdown_cell("## 2. Target analysis\nClassification: class frequencies and imbalance. "
                          "Regression: distribution, skew and outliers."),
        new_code_cell("target_info = analysis.target_analysis(df[target], problem_type)\ndisplay(target_info)\n"
                      "plots.plot_target(df[target], problem_type)\nplt.show()"),
        new_markdown_cell("## 3. Columns\nType, missing %, cardinality and descriptive statistics of every "
                          "column. ID-like and constant columns are not used as features."),
        new_code_cell("analysis.column_table(df.drop(columns=[target]), column_types)"),
        new_markdown_cell("## 4. Prediction power\nEach feature on its own: a shallow decision tree, "
                          "cross-validated on up to 5,000 rows, scored from 0 (chance) to 1 (perfect)."),
        new_code_cell("power = analysis.prediction_power(df, target, problem_type, column_types, seed=seed)\n"
                      "display(power.head(20).to_frame())\nplots.plot_power(power)\nplt.show()"),
        new_markdown_cell("## 5. Correlations among the top numeric features\nSpearman correlation of the "
                          "numeric features with the most prediction power."),
        new_code_cell("corr = analysis.top_correlations(df, power, column_types, seed=seed)\ndisplay(corr)\n"
                      "plots.plot_correlations(corr)\nplt.show()"),
        new_markdown_cell("## 6. Insights\nProblems found, most severe first, each with a suggested action."),
        new_code_cell("insights = analysis.find_insights(df, target, problem_type, column_types, power,\n"
                      "                                  validation=config.get('validation'))\n"
                      "pd.set_option('display.max_colwidth', None)\n"
                      "insights if len(insights) else 'no problems found'"),
    ]
    return new_notebook(cells=cells, metadata=_metadata())


def candidates_notebook(summary: Dict[str, Any], names: List[str]) -> nbformat.NotebookNode:
    """The candidate definitions notebook; one section per candidate in ``names``."""
    cells = [
        new_markdown_cell(
            "# Candidate definitions\n\n"
            "Each candidate is a data-processing pipeline plus an algorithm and a search space, stored as "
            "`candidates/<name>.yaml` exactly as this run used it. Edit those files (or copies), delete the "
            "ones you do not want, and rerun the search from them with one command:\n\n"
            "```\nautoml fit data.path=<this run>/data/train.parquet "
            f"data.target={summary.get('target')} candidates_dir=<this run>/candidates\n```\n\n"
            "Saved with its outputs; *Run All* recomputes them, and trains one candidate end to end."),
        *scale_note(summary),
        new_code_cell(
            "import pandas as pd\n"
            "from automl.notebooks.helpers import (candidates_overview, cheapest, load_candidates, processing_steps,\n"
            "                                      read_run, search_settings, search_space_table, train_candidate)\n\n"
            "summary, config, df = read_run('.')\n"
            "problem_type = summary['problem_type']\n"
            "feature_types = {c: summary['column_types'][c] for c in summary['features']}\n"
            "candidates = load_candidates('candidates', feature_types)\n"
            "pd.set_option('display.max_colwidth', None)\n"
            "candidates_overview(candidates)"),
        new_markdown_cell("## How the search runs\nOne Ray Tune experiment covers every candidate; this is how it "
                          "searches, validates, and chooses the final model."),
        new_code_cell("search_settings(config, summary)"),
        new_markdown_cell("## Candidates\nFor each candidate: its processing steps and why they were chosen from "
                          "the column types, its algorithm, and its search space."),
    ]
    for name in names:
        cells += [
            new_markdown_cell(f"### `{name}`"),
            new_code_cell(f"cand = candidates[{name!r}]\n"
                          "print(f'algorithm: {cand.algorithm} - {cand.description}')\n"
                          "print('why this processing:')\n"
                          "for reason in cand.reasons:\n    print('  -', reason)\n"
                          "display(processing_steps(cand))\n"
                          "search_space_table(cand, problem_type)"),
        ]
    cells += [
        new_markdown_cell("## Explain the final model\nPer-feature contributions (SHAP values) of the model "
                          "`automl fit` chose, one per input column, as report.html shows them (docs/explain.md). "
                          "The notebook is written before training, so run this cell once the fit has finished."),
        new_code_cell(_EXPLAIN),
        new_markdown_cell("## Train one candidate end to end\nThe cheapest candidate, at its search space's start "
                          "values, cross-validated exactly as a search trial is (`automl.search.trial.evaluate`); "
                          "on up to 2,000 rows so this runs in seconds (`max_rows=None` uses all rows). "
                          "`automl fit` leaves this one cell unrun, so that writing the notebook trains nothing "
                          "(`mode=candidates_only` means no training): run it, or *Run All*."),
        new_code_cell("cand = cheapest(candidates)\nprint('training', cand.name)\n"
                      "train_candidate(cand, df, summary, config, max_rows=2000).to_frame()",
                      metadata={"tags": [TRAINING_TAG]}),
    ]
    return new_notebook(cells=cells, metadata=_metadata())


def _local_path(url: str) -> Optional[str]:
    if url.startswith("file://"):
        return url[len("file://"):]
    return None if "://" in url else url


def _stage(out: str, so: Dict[str, Any], summary: Dict[str, Any], workdir: str) -> None:
    """A local folder the cells can read: summary.json as it stands, and the run's files."""
    with open(os.path.join(workdir, SUMMARY_FILE), "w") as fh:
        json.dump(summary, fh, indent=2, default=art._jsonable)
    local = _local_path(out)
    for rel in (CONFIG_FILE, DATA_DIR, CANDIDATES_DIR):
        dst = os.path.join(workdir, rel)
        if local is not None:
            os.symlink(os.path.abspath(os.path.join(local, rel)), dst)
        else:
            import fsspec

            fs, root = fsspec.core.url_to_fs(art.join(out, rel), **so)
            fs.get(root, dst, recursive=fs.isdir(root))


def build_notebooks(out: str, so: Dict[str, Any], summary: Dict[str, Any]) -> List[str]:
    """Build, execute (in process) and write both notebooks into the run folder; returns their URLs."""
    workdir = tempfile.mkdtemp(prefix="automl-nb-")
    try:
        _stage(out, so, summary, workdir)
        written = []
        for name, nb in ((EXPLORATION, exploration_notebook(summary)),
                         (CANDIDATES, candidates_notebook(summary, list(summary.get("candidates", []))))):
            from automl.notebooks.execute import run_cells

            run_cells(nb, workdir, skip_tag=TRAINING_TAG)
            url = art.join(out, name)
            art.write_text(url, nbformat.writes(nb), so)
            written.append(url)
        return written
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def write_notebooks(out: str, so: Dict[str, Any], summary: Dict[str, Any], strict: bool = False) -> List[str]:
    """``build_notebooks`` for the runner: logs the time taken; a failure is a warning, not an error."""
    started = time.time()
    try:
        written = build_notebooks(out, so, summary)
    except Exception as exc:
        if strict:
            raise
        log.warning("notebooks not written (%s: %s); the run goes on", type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return []
    log.debug("wrote %s in %.1f s", " and ".join(u.rsplit("/", 1)[-1] for u in written), time.time() - started)
    return written
