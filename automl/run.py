"""A finished run, loaded from its folder: leaderboard, summary and the model."""
from __future__ import annotations

import io
import logging
from typing import Any, Dict, Optional, Union

import pandas as pd

from automl import artifacts as art
from automl.data.io import read_table
from automl.errors import ArtifactError
from automl.manifest import load_verified_pickle
from automl.model import ModelBundle

Frame = Union[pd.DataFrame, str]
log = logging.getLogger(__name__)
MODELS_DIR = "models"  # refit non-best trials, cached as models/<trial_id>.pkl


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
        self._trial_models: Dict[str, ModelBundle] = {}

    @property
    def model(self) -> ModelBundle:
        if self._model is None:
            if not self.summary.get("best"):
                raise ArtifactError(f"run {self.run_dir} has no model (mode={self.summary.get('mode')}); run a full fit")
            # A pickle is code: load it only if it matches the run's manifest.json (sha256).
            self._model = load_verified_pickle(self.run_dir, art.MODEL_FILE, self.storage_options)
        return self._model

    @property
    def leaderboard(self) -> pd.DataFrame:
        if self._leaderboard is None:
            text = art.read_text(art.join(self.run_dir, art.LEADERBOARD_FILE), self.storage_options)
            self._leaderboard = pd.read_csv(io.StringIO(text), dtype={"trial_id": str})
        return self._leaderboard

    @property
    def best_trial_id(self) -> Optional[str]:
        return (self.summary.get("best") or {}).get("trial_id")

    def trial_model(self, trial_id: Optional[str] = None) -> ModelBundle:
        """The model of any trial: the best one's ``model.pkl``, else refit and cached in ``models/``."""
        from automl.refit import refit_trial, save_trial_model

        trial_id = str(trial_id) if trial_id not in (None, "") else self.best_trial_id
        if trial_id and trial_id == self.best_trial_id:
            return self.model
        if trial_id in self._trial_models:
            return self._trial_models[trial_id]
        row = self._trial_row(trial_id)  # unknown or failed trial: an error listing valid ids
        rel = f"{MODELS_DIR}/{trial_id}.pkl"
        bundle = None
        if art.exists(art.join(self.run_dir, rel), self.storage_options):
            try:  # listed in manifest.json when it was cached
                bundle = load_verified_pickle(self.run_dir, rel, self.storage_options)
            except ArtifactError as exc:  # a cache: refit rather than load an unverified pickle
                log.warning("not loading the cached %s (%s); refitting trial %s", rel, exc, trial_id)
        if bundle is None:
            bundle = refit_trial(self, row)
            try:
                save_trial_model(self, rel, bundle)
            except (OSError, PermissionError, ArtifactError) as exc:  # a read-only run folder: keep it in memory
                log.warning("trial %s refit but not cached in %s (%s: %s)", trial_id, self.run_dir,
                            type(exc).__name__, exc)
        self._trial_models[trial_id] = bundle
        return bundle

    def _trial_row(self, trial_id: Optional[str]) -> pd.Series:
        lb = self.leaderboard
        ids = lb["trial_id"].astype(str) if "trial_id" in lb else pd.Series([], dtype=str)
        match = lb[ids == trial_id]
        if not trial_id or match.empty:
            done = ids[lb["status"] == "completed"].tolist() if "status" in lb else ids.tolist()
            shown = ", ".join(done[:5]) + (" …" if len(done) > 5 else "")
            raise ArtifactError(f"trial={trial_id!r} is not a trial of run {self.run_dir}; "
                                f"valid ids include: {shown or '(none)'}; see its leaderboard.csv")
        row = match.iloc[0]
        if row.get("status") != "completed":
            raise ArtifactError(f"trial={trial_id} has status {row.get('status')!r} "
                                f"({row.get('error') or 'no error recorded'}); pick a completed trial from leaderboard.csv")
        return row

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
