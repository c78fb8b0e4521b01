"""What every fit stage may read: the config, the folder being written and the clock."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

from omegaconf import DictConfig

from automl.search.resume import RunState


@dataclass
class RunEnv:
    cfg: DictConfig
    out: str  # the folder written: output_dir, or the staging folder that replaces it (rundir/staging.py)
    so: Dict[str, Any]  # storage options of ``out``
    started: float  # time.time() when the fit began
    deadline: float  # the budget's end, less the time earlier attempts spent (resume=true)
    state: RunState  # resume bookkeeping: earlier trials and spent time (search/resume.py)
