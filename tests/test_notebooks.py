"""The run folder's notebooks: written by `automl fit mode=candidates_only`, saved with outputs,
structured in the documented sections, and re-executable under nbclient."""
from __future__ import annotations


import nbformat
import pytest
from nbclient import NotebookClient

from automl.notebooks import (CANDIDATE_SECTIONS, CANDIDATES, EXPLORATION, EXPLORATION_SECTIONS,
                              TRAINING_TAG)
from conftest import automl_cli
from test_analysis import planted_frame


@pytest.fixture(scope="module")
def candidates_run(tmp_path_factory):
    """A candidates-only run (no training) on data with a planted leak, ID column and -999."""
    base = tmp_path_factory.mktemp("nb")
    data = base / "planted.csv"
    planted_frame().to_csv(data, index=False)
    out = base / "run"
    proc = automl_cli("fit", f"data.path={data}", "data.target=y", "mode=candidates_only", f"output_dir={out}")
    assert proc.returncode == 0, proc.stderr
    return out


def _text(nb) -> str:
    """Every output of every code cell, as text (plain, HTML and streams)."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            data = out.get("data", {})
            parts += [data.get("text/plain", ""), data.get("text/html", "")]
    return "\n".join(parts)


def _headings(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _insights_output(nb) -> str:
    cell = next(c for c in nb.cells if c.cell_type == "code" and "find_insights" in c.source)
    return "\n".join(o.get("data", {}).get("text/html", "") + o.get("data", {}).get("text/plain", "")
                     for o in cell.outputs)


def test_candidates_only_writes_notebooks_and_candidates_but_no_model(candidates_run):
    assert (candidates_run / EXPLORATION).exists() and (candidates_run / CANDIDATES).exists()
    assert sorted(p.name for p in (candidates_run / "candidates").glob("*.yaml"))
    assert (candidates_run / "summary.json").exists()
    assert not (candidates_run / "model.pkl").exists()
    assert not (candidates_run / "leaderboard.csv").exists()


def test_exploration_notebook_structure_outputs_and_insights(candidates_run):
    nb = nbformat.read(candidates_run / EXPLORATION, as_version=4)
    nbformat.validate(nb)
    headings = _headings(nb)
    for name in EXPLORATION_SECTIONS:
        assert name in headings, name
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs for c in code), "saved with outputs: every code cell shows something"
    assert all(c.execution_count for c in code)
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # target, prediction power, correlations
    insights = _insights_output(nb)
    assert "possible target leakage" in insights and "leak" in insights
    assert "ID-like column" in insights and "row_id" in insights
    assert "number disguised as missing" in insights and "-999" in insights


def test_candidate_notebook_structure(candidates_run):
    nb = nbformat.read(candidates_run / CANDIDATES, as_version=4)
    headings = _headings(nb)
    for name in CANDIDATE_SECTIONS:
        assert name in headings, name
    for path in (candidates_run / "candidates").glob("*.yaml"):
        assert f"`{path.stem}`" in headings  # one section per candidate file
    assert "candidates_dir=" in headings  # the rerun command
    text = _text(nb)
    assert "searcher" in text and "validation" in text and "how the final model is chosen" in text
    assert "why this processing" in text and "range" in text
    # writing the notebook trains nothing: the one training cell is saved unrun, every other cell ran
    code = [c for c in nb.cells if c.cell_type == "code"]
    training = [c for c in code if TRAINING_TAG in c.metadata.get("tags", [])]
    assert len(training) == 1 and "train_candidate" in training[0].source and not training[0].outputs
    assert all(c.outputs for c in code if c not in training)


@pytest.mark.slow
def test_both_notebooks_execute_under_nbclient(candidates_run, tmp_path):
    for name in (EXPLORATION, CANDIDATES):
        nb = nbformat.read(candidates_run / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
        NotebookClient(nb, timeout=180, kernel_name="python3",
                       resources={"metadata": {"path": str(candidates_run)}}).execute()
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors, errors
        nbformat.write(nb, tmp_path / name)
        if name == EXPLORATION:
            insights = _insights_output(nb)
            assert "possible target leakage" in insights and "ID-like column" in insights
            assert "number disguised as missing" in insights
            figures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                       if "image/png" in o.get("data", {})]
            assert len(figures) >= 3  # the figures are reproduced by execution
        else:
            last = [c for c in nb.cells if c.cell_type == "code"][-1]
            shown = _text(nbformat.from_dict({"cells": [last]}))
            assert "completed" in shown and "objective" in shown  # a candidate was trained end to end
