"""The run folder's notebooks: data exploration and candidate definitions (see build.py)."""
from __future__ import annotations

from automl.notebooks.build import (
    CANDIDATE_SECTIONS,
    CANDIDATES,
    EXPLORATION,
    EXPLORATION_SECTIONS,
    TRAINING_TAG,
    build_notebooks,
    write_notebooks,
)

__all__ = ["CANDIDATE_SECTIONS", "CANDIDATES", "EXPLORATION", "EXPLORATION_SECTIONS", "TRAINING_TAG",
           "build_notebooks", "write_notebooks"]
