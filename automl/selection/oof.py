"""Out-of-fold (OOF) predictions of the search's trials, as the selection reads and blends them."""
from __future__ import annotations

import io
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from automl import artifacts as art
from automl.rundir.layout import trial_oof_file


def load_oof(out: str, trial_id: str, so: Dict[str, Any]) -> Optional[np.ndarray]:
    """A trial's ``oof.npy`` from the run folder ``out``, as floats; None when it is missing or unreadable."""
    try:
        return np.load(io.BytesIO(art.read_bytes(art.join(out, trial_oof_file(trial_id)), so))).astype(float)
    except Exception:
        return None


def covered_rows(oof: np.ndarray) -> np.ndarray:
    """The rows that have an OOF prediction (not NaN)."""
    return ~np.isnan(oof if oof.ndim == 1 else oof[:, 0])


def blend(oofs: Dict[str, np.ndarray], members: List[Tuple[str, float]]) -> np.ndarray:
    """The weighted blend of the members' OOF predictions (probabilities renormalised per row)."""
    oof = sum(w * oofs[t] for t, w in members)
    if oof.ndim == 2:
        oof = oof / oof.sum(axis=1, keepdims=True)
    return oof
