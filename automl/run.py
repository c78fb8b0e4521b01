"""A finished run, loaded from its folder: leaderboard, summary and the model."""
from __future__ import annotations

import io
from typing import Any, Dict, Optional, Union

import pandas as pd

from automl import artifacts as art
from automl.data.io import read_table
from automl.errors import ArtifactError
from automl.model import ModelBundle

Frame = Union[pd.DataFrame, str]


def _frame(data: Frame) -> pd.DataFrame:
    return read_table(data, what="input") if isinstance(data, str) else data


class Run:
    """What ``automl.fit`` returns and ``automl.load(run_dir)`` gives back."""

    def __init__(self, run_dir: str, storage_options: Optional[Dict[str, Any]] = None):
        self.run_dir = run_dir.rstrip("/")
        self.storage_options = storage_options or {}
        if not art.exists(art.join(self.run_dir, art.SUMMARY_FILE), self.storage_options):
            raise ArtifactError(
                f"run_dir {run_dir} holds no {art.SUMMARY_FILE}; pass the folder of a finished `automl fit` run"
            )
        self.summary: Dict[str, Any] = art.read_json(art.join(self.run_dir, art.SUMMARY_FILE), self.storage_options)
        self._model: Optional[ModelBundle] = None
        self._leaderboard: Optional[pd.DataFrame] = None

    @property
    def model(self) -> ModelBundle:
        if self._model is None:
            if not self.summary.get("best"):
                raise ArtifactError(f"run {self.run_dir} has no model (mode={self.summary.get('mode')}); run a full fit")
            self._model = art.load_pickle(art.join(self.run_dir, art.MODEL_FILE), self.storage_options)
        return self._model

    @property
    def leaderboard(self) -> pd.DataFrame:
        if self._leaderboard is None:
            text = art.read_text(art.join(self.run_dir, art.LEADERBOARD_FILE), self.storage_options)
            self._leaderboard = pd.read_csv(io.StringIO(text))
        return self._leaderboard

    @property
    def best_score(self) -> Optional[float]:
        return (self.summary.get("best") or {}).get("score")

    @property
    def test_score(self) -> Optional[float]:
        return self.summary.get("test_score")

    def predict(self, data: Frame):
        return self.model.predict(_frame(data))

    def predict_proba(self, data: Frame) -> pd.DataFrame:
        return self.model.predict_proba(_frame(data))

    def predict_frame(self, data: Frame) -> pd.DataFrame:
        return self.model.predict_frame(_frame(data))

    def __repr__(self) -> str:
        best = self.summary.get("best") or {}
        return (f"Run({self.run_dir!r}, problem_type={self.summary.get('problem_type')!r}, "
                f"metric={self.summary.get('metric')!r}, best={best.get('candidate')!r}, "
                f"score={best.get('score')})")


def load(run_dir: str, storage_options: Optional[Dict[str, Any]] = None) -> Run:
    return Run(run_dir, storage_options)
