"""What every section of report.html reads: the run folder's summary, leaderboard and training
rows, the model, and (computed once, on first use) the chosen model's out-of-fold predictions."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Dict, Optional

import numpy as np
import pandas as pd

ENSEMBLE_ID = "ensemble"  # the leaderboard's trial id of a kept ensemble or stack


@dataclass
class ReportContext:
    """One run folder, read once; a section builder takes it and returns HTML ("" to skip)."""

    out: str  # the run folder's URL
    so: Dict[str, Any]  # fsspec storage options
    summary: Dict[str, Any]  # summary.json
    lb: pd.DataFrame  # leaderboard.csv, in rank order
    df: pd.DataFrame  # data/train.parquet
    bundle: Any = None  # the saved model (automl.model.ModelBundle), None when the run has none
    seed: int = 0
    deadline: Optional[float] = None  # time.time() by which the fit must end (costly parts are skipped)
    extra: Dict[str, Any] = field(default_factory=dict)  # what one section computes for a later one

    @property
    def best(self) -> Dict[str, Any]:
        return self.summary.get("best") or {}

    @property
    def metric(self) -> str:
        return str(self.summary["metric"])

    @property
    def greater_is_better(self) -> bool:
        return bool(self.summary.get("greater_is_better", True))

    @property
    def problem_type(self) -> str:
        return str(self.summary["problem_type"])

    @property
    def chosen(self) -> Optional[str]:
        tid = self.best.get("trial_id")
        return None if tid is None else str(tid)

    @cached_property
    def info(self):
        from automl.problem import ProblemInfo

        s = self.summary
        return ProblemInfo(self.problem_type, self.metric, self.greater_is_better, "",
                           classes=list(s.get("classes") or []), positive_class=s.get("positive_class"))

    @cached_property
    def y(self) -> np.ndarray:
        """The training rows' target, encoded as the model's columns are."""
        from automl.problem import encode_target

        return encode_target(self.df[self.summary["target"]], self.info)

    @cached_property
    def oof(self) -> Optional[np.ndarray]:
        """The chosen model's out-of-fold predictions (None when the run kept none)."""
        from automl.report.explain import load_oof

        oof = load_oof(self.out, self.so, self.best)
        return oof if oof is not None and len(oof) == len(self.y) else None

    @cached_property
    def covered(self) -> Optional[np.ndarray]:
        """The rows that have an out-of-fold prediction."""
        if self.oof is None:
            return None
        return ~np.isnan(self.oof if self.oof.ndim == 1 else self.oof[:, 0])

    @cached_property
    def oof_labels(self) -> Optional[np.ndarray]:
        """The chosen model's labels on the covered rows (its tuned binary threshold, else arg-max)."""
        if self.oof is None or self.problem_type == "regression":
            return None
        pp, threshold, pos = self.oof[self.covered], self.best.get("threshold"), self.info.pos_index
        if self.problem_type == "binary" and threshold is not None:
            return np.where(pp[:, pos] >= threshold, pos, 1 - pos)
        return np.argmax(pp, axis=1)
