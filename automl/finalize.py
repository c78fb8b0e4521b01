"""The select stage under its former name, for callers and tests written against it.

The selection itself lives in automl/selection/ (final.py: :func:`select_final` returns a typed
:class:`~automl.selection.final.Selection`). ``finalize`` keeps the old return value, a tuple.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import pandas as pd

from automl.problem import ProblemInfo
from automl.search.scheduling import refit_within  # noqa: F401 (tests and callers import it from here)
from automl.search.trial import TrialContext
from automl.selection import SelectSpec
from automl.selection.final import ENSEMBLE_ID, Selection, select_final  # noqa: F401 (re-exported)
from automl.selection.oof import load_oof  # noqa: F401 (the report reads a trial's OOF predictions with it)
from automl.selection.rerank import RerankSpec


def finalize(ctx: TrialContext, lb: pd.DataFrame, rows: List[Dict[str, Any]], info: ProblemInfo,
             deadline: float, out: str, so: Dict[str, Any], ensemble: bool = True,
             rerank_spec: Optional[RerankSpec] = None, select: Optional[SelectSpec] = None):
    """Return (fitted estimator, description dict, threshold, leaderboard with an ensemble row if kept):
    :func:`automl.selection.final.select_final` as a tuple."""
    sel = select_final(ctx, lb, rows, info, deadline, out, so, ensemble=ensemble, rerank_spec=rerank_spec,
                       select=select)
    return sel.model, sel.record(), sel.threshold, sel.leaderboard
