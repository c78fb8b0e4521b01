"""A finished run, loaded from its folder: leaderboard, summary and the model.

Models load from skops files with a fixed list of trusted types (automl/rundir/modelfile.py);
``allow_pickle=True`` also loads the ``model.pkl`` pickles of earlier releases.
"""
from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

import pandas as pd

from automl import artifacts as art
from automl.data.io import read_table
from automl.errors import ArtifactError
from automl.rundir.manifest import MANIFEST_FILE, check_trial_id, load_verified_model, read_manifest, read_verified
from automl.model import ModelBundle
from automl.rundir.layout import LEADERBOARD_FILE, TRAIN_DATA_FILE, trial_model_file
from automl.rundir.modelfile import LEGACY_MODEL_FILE, LEGACY_SUFFIX, MODEL_FILE, pickle_refusal
from automl.rundir.summary import RunSummary, read_summary

if TYPE_CHECKING:
    from automl.explain import Explainer

Frame = Union[pd.DataFrame, str]
log = logging.getLogger(__name__)


def _frame(data: Frame) -> pd.DataFrame:
    return read_table(data, what="input") if isinstance(data, str) else data


class Run:
    """What ``automl.fit`` returns and ``automl.load(run_dir)`` gives back."""

    def __init__(self, run_dir: str, storage_options: Optional[Dict[str, Any]] = None, allow_pickle: bool = False):
        self.run_dir = run_dir.rstrip("/")
        self.storage_options = storage_options or {}
        self.allow_pickle = bool(allow_pickle)  # load pickles (earlier releases' model.pkl): trusted sources only
        self.summary: RunSummary = read_summary(self.run_dir, self.storage_options)  # typed, and a mapping
        self._model: Optional[ModelBundle] = None
        self._leaderboard: Optional[pd.DataFrame] = None
        self._trial_models: Dict[str, ModelBundle] = {}

    @property
    def model(self) -> ModelBundle:
        if self._model is None:
            if not self.summary.get("best"):
                raise ArtifactError(f"run {self.run_dir} has no model (mode={self.summary.get('mode')}); run a full fit")
            self._model = load_verified_model(self.run_dir, self._model_file(), self.storage_options,
                                              self.allow_pickle)
        return self._model

    def _model_file(self) -> str:
        """``model.skops``, or the ``model.pkl`` of an earlier release, as the manifest lists it."""
        files = read_manifest(self.run_dir, self.storage_options)["files"]
        for rel in (MODEL_FILE, LEGACY_MODEL_FILE):
            if rel in files:
                return rel
        raise ArtifactError(f"{MODEL_FILE} in {self.run_dir} is not listed in {MANIFEST_FILE}; refusing to load a "
                            "model the fit did not write; pass the folder of a complete `automl fit` run")

    @property
    def leaderboard(self) -> pd.DataFrame:
        if self._leaderboard is None:
            so = self.storage_options
            if art.exists(art.join(self.run_dir, MANIFEST_FILE), so):  # refit trusts its rows: verify them
                text = read_verified(self.run_dir, LEADERBOARD_FILE, so).decode("utf-8")
            else:
                text = art.read_text(art.join(self.run_dir, LEADERBOARD_FILE), so)
            self._leaderboard = pd.read_csv(io.StringIO(text), dtype={"trial_id": str})
        return self._leaderboard

    @property
    def best_trial_id(self) -> Optional[str]:
        return (self.summary.get("best") or {}).get("trial_id")

    def trial_model(self, trial_id: Optional[str] = None) -> ModelBundle:
        """The model of any trial: the best one's ``model.skops``, else refit and cached in ``models/``."""
        from automl.rundir.refit import refit_trial, save_trial_model

        trial_id = check_trial_id(trial_id) if trial_id not in (None, "") else self.best_trial_id
        if trial_id and trial_id == self.best_trial_id:
            return self.model
        if trial_id in self._trial_models:
            return self._trial_models[trial_id]
        row = self._trial_row(trial_id)  # unknown or failed trial: an error listing valid ids
        bundle = self._cached_trial_model(trial_id)
        if bundle is None:
            bundle = refit_trial(self, row)
            try:
                save_trial_model(self, trial_id, bundle)
            except (OSError, PermissionError, ArtifactError) as exc:  # a read-only run folder: keep it in memory
                log.warning("trial %s refit but not cached in %s (%s: %s)", trial_id, self.run_dir,
                            type(exc).__name__, exc)
        self._trial_models[trial_id] = bundle
        return bundle

    def _cached_trial_model(self, trial_id: str) -> Optional[ModelBundle]:
        """A trial's cached model if it verifies (a pickle only with allow_pickle), else None."""
        files = read_manifest(self.run_dir, self.storage_options)["files"]
        for rel in (trial_model_file(trial_id), trial_model_file(trial_id, LEGACY_SUFFIX)):
            if rel not in files or not art.exists(art.join(self.run_dir, rel), self.storage_options):
                continue
            if rel.endswith(LEGACY_SUFFIX) and not self.allow_pickle:
                log.info("%s; refitting trial %s instead", pickle_refusal(rel), trial_id)
                continue
            try:
                return load_verified_model(self.run_dir, rel, self.storage_options, self.allow_pickle)
            except ArtifactError as exc:  # a cache: refit rather than load a file that does not verify
                log.warning("not loading the cached %s (%s); refitting trial %s", rel, exc, trial_id)
        return None

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

    def training_rows(self) -> pd.DataFrame:
        """``data/train.parquet``: the rows the model was fitted on (target included)."""
        return pd.read_parquet(io.BytesIO(art.read_bytes(art.join(self.run_dir, TRAIN_DATA_FILE),
                                                         self.storage_options)))

    def explainer(self, trial: Optional[str] = None) -> "Explainer":
        """The explainer of a trial's model (the best one by default); its background rows are a
        seeded sample of the training rows, read on first need (automl/explain)."""
        from automl.explain import Explainer

        key = str(trial or self.best_trial_id)
        cache = self.__dict__.setdefault("_explainers", {})
        if key not in cache:
            cache[key] = Explainer(self.trial_model(trial), background=self.training_rows)
        return cache[key]

    def explain(self, data: Frame, trial: Optional[str] = None, target_class: Any = None) -> pd.DataFrame:
        """Per-feature contributions (SHAP values) of a trial's model (the best one, maybe an ensemble,
        by default): one row per row of ``data``, one column per input column, ``base_value`` and, for
        classification, ``class`` (the class explained: ``target_class``, else the positive class or
        the predicted one). ``base_value`` + the row's sum is the model's raw output in the space
        that ``.attrs["space"]`` names (margin, probability or value); see docs/explain.md."""
        return self.explainer(trial).frame(_frame(data), target_class)

    def bias(self, data: Optional[Frame] = None, facet: Optional[str] = None,
             favourable: Any = None, seed: int = 0) -> pd.DataFrame:
        """Bias metrics of a facet column (CI, DPL, DPPL with 95% bootstrap intervals): one row per
        compared group. Without ``data``: the training rows and the chosen model's out-of-fold
        predictions, as ``bias.json``; with it: its target column (when present) and the model's
        predictions on it. ``facet``/``favourable`` default to the run's ``explain.facet`` and
        ``explain.facet_positive``; ``.attrs`` says what was compared (docs/bias.md)."""
        from automl.explain.bias import bias_frame, check_facet
        from automl.rundir.bias import configured_facet, table_bias, training_bias

        conf = configured_facet(self.run_dir, self.storage_options)
        facet = facet or conf.get("facet")
        if not facet:
            from automl.errors import ConfigError

            raise ConfigError("run.bias needs a facet column: run.bias(df, facet='COLUMN'), or a run fitted with "
                              "explain.facet=COLUMN")
        favourable = favourable if favourable is not None else conf.get("facet_positive")
        frame = _frame(data) if data is not None else self.training_rows()
        check_facet(facet, list(frame.columns), str(self.summary["target"]), values=frame.get(facet))
        if data is None:
            return bias_frame(training_bias(self.run_dir, self.storage_options, facet, favourable, seed))
        return bias_frame(table_bias(self.summary, self.model, frame, facet, favourable, seed))

    def __repr__(self) -> str:
        best = self.summary.get("best") or {}
        return (f"Run({self.run_dir!r}, problem_type={self.summary.get('problem_type')!r}, "
                f"metric={self.summary.get('metric')!r}, best={best.get('candidate')!r}, "
                f"score={best.get('score')})")


def load(run_dir: str, storage_options: Optional[Dict[str, Any]] = None, allow_pickle: bool = False) -> Run:
    """The finished run in ``run_dir``. ``allow_pickle=True`` also loads the pickled models of
    earlier releases (a pickle can run code: only for run folders from a source you trust)."""
    return Run(run_dir, storage_options, allow_pickle=allow_pickle)
