"""Out-of-fold (OOF) predictions of the search's trials, as the selection reads and blends them."""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from automl.rundir.trials import load_oof  # noqa: F401 (the selection's modules import it from here)


def covered_rows(oof: np.ndarray) -> np.ndarray:
    """The rows that have an OOF prediction (not NaN)."""
    return ~np.isnan(oof if oof.ndim == 1 else oof[:, 0])


def blend(oofs: Dict[str, np.ndarray], members: List[Tuple[str, float]]) -> np.ndarray:
    """The weighted blend of the members' OOF predictions (probabilities renormalised per row)."""
    oof = sum(w * oofs[t] for t, w in members)
    if oof.ndim == 2:
        oof = oof / oof.sum(axis=1, keepdims=True)
    return oof
