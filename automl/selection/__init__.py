"""Choosing the final model after the search (the select stage): the ensemble and its gate, the
re-rank, bagged fold models, stacking, the refit.

``SelectSpec`` carries the ``select.*`` config keys to the select stage (final.py: ``select_final``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

FINAL_MODEL_KINDS = ("refit", "bagged", "auto")
GATES = ("bootstrap", "score")
CALIBRATIONS = ("auto", "temperature", "isotonic", "none")  # select.calibration (selection/calibration.py)


@dataclass
class SelectSpec:
    """How the final model is built and when an ensemble or stack is kept (``select.*`` keys)."""

    final_model: str = "refit"  # refit | bagged | auto (see selection/bagging.py)
    gate: str = "score"  # score: any better OOF score (McNemar for accuracy) | bootstrap: paired bootstrap over OOF rows
    gate_confidence: float = 0.95  # the paired gain's lower bound at this level must be > 0
    gate_resamples: int = 200
    stack: bool = False  # try a second level on the members' OOF predictions (selection/stacking.py)
    calibration: str = "auto"  # auto | temperature | isotonic | none (selection/calibration.py)
    max_latency_ms: Optional[float] = None  # choose among trials measured under this single-row latency (choose.py)
    max_size_mb: Optional[float] = None  # ... and under this model size (10^6 bytes)
