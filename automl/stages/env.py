"""What every fit stage may read: the config, the folder being written and the clock."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

from omegaconf import DictConfig

from automl.search.resume import RunState

# After "done in": the manifest, the staging folder's move and, when this fit started a local Ray,
# stopping it (ray.shutdown waits for its raylet and GCS to exit: 1.2-1.4 s of a 2.0-2.3 s gap from
# "done in" to the process' end on 2 cores, 60 s runs of the suite); without Ray 0.1 s.
EXIT_S = 0.3
RAY_EXIT_S = 2.0


@dataclass
class RunEnv:
    cfg: DictConfig
    out: str  # the folder written: output_dir, or the staging folder that replaces it (rundir/staging.py)
    so: Dict[str, Any]  # storage options of ``out``
    started: float  # time.time() when the fit began
    deadline: float  # when the steps end: the budget's end less EXIT_S and the time earlier attempts spent
    state: RunState  # resume bookkeeping: earlier trials and spent time (search/resume.py)

    def stops_ray_at_exit(self) -> None:
        """This fit started Ray: unless it joined a cluster (ray.address), the process stops that
        Ray at exit, so the steps end RAY_EXIT_S before the budget instead of EXIT_S. Called
        where Ray is started, the one place that knows."""
        if not self.cfg.ray.address:
            self.deadline -= RAY_EXIT_S - EXIT_S
