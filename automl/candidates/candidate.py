"""One candidate: a processing recipe plus an algorithm and its search space (``dpp0-xgboost``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List


@dataclass
class Candidate:
    name: str
    algorithm: str
    processing: Dict[str, Any]
    space: Dict[str, Any]
    description: str = ""
    reasons: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {"algorithm": self.algorithm, "description": self.description,
                "processing": self.processing, "space": self.space}
