"""What the search leaves in ``trials/<id>/``, read back: a trial's out-of-fold predictions."""
from __future__ import annotations

import io
from typing import Any, Dict, Optional

import numpy as np

from automl import artifacts as art
from automl.rundir.layout import trial_oof_file


def load_oof(out: str, trial_id: str, so: Dict[str, Any]) -> Optional[np.ndarray]:
    """A trial's ``oof.npy`` from the run folder ``out``, as floats; None when it is missing or unreadable."""
    try:
        return np.load(io.BytesIO(art.read_bytes(art.join(out, trial_oof_file(trial_id)), so))).astype(float)
    except Exception:
        return None
