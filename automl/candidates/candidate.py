"""One candidate: a processing recipe plus an algorithm and its search space (``dpp0-xgboost``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class Candidate:
    name: str
    algorithm: str
    processing: Dict[str, Any]
    space: Dict[str, Any]
    description: str = ""
    reasons: List[str] = field(default_factory=list)
    # The memory plan's down-sample (search/memory.py; not written to the candidate's YAML): the
    # training rows per fold its trials use and the rows its final model is refit on (None: all).
    memory_train_rows: Optional[int] = None
    memory_refit_rows: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        return {"algorithm": self.algorithm, "description": self.description,
                "processing": self.processing, "space": self.space}
